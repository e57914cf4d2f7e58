"""The shipped JSON Schema files match the field tables; records validate."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from schemas import CLIP_SCHEMA, empty_clip, validate_clip
from schemas.records import CLIP_FIELDS, VIDEO_FIELDS, json_schema

ROOT = Path(__file__).parents[2] / "schemas"


@pytest.mark.parametrize(("name", "fields"), [("clip", CLIP_FIELDS), ("video", VIDEO_FIELDS)])
def test_schema_files_are_in_sync(name, fields):
    shipped = json.loads((ROOT / f"{name}.schema.json").read_text())
    assert shipped == json_schema(fields, f"clipmill {name} record"), (
        "run `python -m schemas.records` to regenerate"
    )


def test_a_kept_clip_validates_and_bad_ones_do_not():
    clip = empty_clip(
        clip_id="0123456789abcdef_0000000_0000048",
        video_id="0123456789abcdef",
        source_path="a.mp4",
        scene_index=0,
        window_index=0,
        start_frame=0,
        end_frame=48,
        start_s=0.0,
        end_s=2.0,
        duration_s=2.0,
        fps=24.0,
        kept=True,
    )
    validate_clip(clip)
    with pytest.raises(jsonschema.ValidationError):
        validate_clip({**clip, "reject_reasons": ["because"]})
    with pytest.raises(jsonschema.ValidationError):
        validate_clip({**clip, "clip_id": "a.b"})
    assert set(clip) == set(CLIP_SCHEMA.names)
