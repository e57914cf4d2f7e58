"""The records that cross the curation/training boundary.

Each field is declared once, in a table, and both the Arrow schema (Parquet
manifests) and the JSON Schema (the `{clip_id}.json` sample in the shards) are
derived from it, so the two can never drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import pyarrow as pa

from schemas.vocab import CAPTION_SOURCES, REJECT_REASONS, SPLITS, VIDEO_STATUSES

CLIP_ID_PATTERN = r"^[0-9a-f]{16}_[0-9]{7}_[0-9]{7}$"
VIDEO_ID_PATTERN = r"^[0-9a-f]{16}$"

CAPTION_STRUCT = pa.struct(
    [("text", pa.string()), ("source", pa.string()), ("score", pa.float32())]
)


@dataclass(frozen=True)
class Field:
    """One column: its Arrow type, JSON Schema and whether it may be null."""

    name: str
    arrow: pa.DataType
    json: dict[str, Any]
    nullable: bool = False
    doc: str = ""


_STR = {"type": "string"}
_NUM = {"type": "number"}
_INT = {"type": "integer", "minimum": 0}
_BOOL = {"type": "boolean"}

CLIP_FIELDS: tuple[Field, ...] = (
    Field(
        "clip_id",
        pa.string(),
        {"type": "string", "pattern": CLIP_ID_PATTERN},
        doc="{video_id}_{start_frame:07d}_{end_frame:07d}, end exclusive",
    ),
    Field("video_id", pa.string(), {"type": "string", "pattern": VIDEO_ID_PATTERN}),
    Field("source_path", pa.string(), _STR, doc="the input as the user named it"),
    Field("scene_index", pa.int32(), _INT, doc="which detected scene of the video"),
    Field("window_index", pa.int32(), _INT, doc="which max_clip_s window of the scene"),
    Field("start_frame", pa.int64(), _INT, doc="first source frame (display order, by timestamp)"),
    Field("end_frame", pa.int64(), _INT, doc="source frame after the last one"),
    Field("start_s", pa.float64(), _NUM, doc="source timeline, from the first frame"),
    Field("end_s", pa.float64(), _NUM),
    Field("duration_s", pa.float64(), _NUM),
    Field("fps", pa.float64(), _NUM, True, doc="frame rate of the clip's mp4 (null: not encoded)"),
    Field("n_frames", pa.int32(), _INT, True, doc="frames in the clip's mp4"),
    Field("width", pa.int32(), _INT, True, doc="of the clip's mp4 (after rotation)"),
    Field("height", pa.int32(), _INT, True),
    Field("kept", pa.bool_(), _BOOL),
    Field(
        "reject_reasons",
        pa.list_(pa.string()),
        {"type": "array", "items": {"enum": list(REJECT_REASONS)}},
    ),
    Field("errors", pa.string(), _STR, True, doc="one line per failed step"),
    Field("caption", pa.string(), _STR, True, doc="the primary caption"),
    Field(
        "captions",
        pa.list_(CAPTION_STRUCT),
        {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["text", "source"],
                "properties": {
                    "text": _STR,
                    "source": {"enum": list(CAPTION_SOURCES)},
                    "score": {"type": ["number", "null"]},
                },
            },
        },
        doc="every caption found, with source and score",
    ),
    # Scores: null when the stage was off or had nothing to score (reasons: pipeline/pack/decide).
    Field(
        "motion_score",
        pa.float32(),
        _NUM,
        True,
        doc="mean optical-flow magnitude, in frame widths per second",
    ),
    Field("motion_min", pa.float32(), _NUM, True, doc="motion_score of the stillest grid cell"),
    Field(
        "blank_fraction",
        pa.float32(),
        _NUM,
        True,
        doc="fraction of frames near-uniform or black",
    ),
    Field(
        "sharpness",
        pa.float32(),
        _NUM,
        True,
        doc="median variance of the Laplacian at the analysis width",
    ),
    Field("text_area", pa.float32(), _NUM, True, doc="fraction of the frame under text boxes"),
    Field(
        "text",
        pa.list_(pa.string()),
        {"type": "array", "items": _STR},
        True,
        doc="text read in the clip's frames",
    ),
    Field("clip_score", pa.float32(), _NUM, True, doc="cosine of clip and caption embeddings"),
    Field("aesthetic", pa.float32(), _NUM, True, doc="aesthetic head on the clip embedding"),
    Field(
        "phash",
        pa.list_(pa.string()),
        {"type": "array", "items": {"type": "string", "pattern": "^[0-9a-f]{16}$"}},
        True,
        doc="64-bit DCT hashes of sampled frames, hex",
    ),
    Field(
        "duplicate_of",
        pa.string(),
        {"type": "string", "pattern": CLIP_ID_PATTERN},
        True,
        doc="clip_id kept for this clip's duplicate cluster",
    ),
    Field("sample_weight", pa.float32(), _NUM, True, doc="trainer's sampling weight"),
    Field("shard", pa.string(), _STR, True, doc="shard file name holding the clip"),
    Field("sha256", pa.string(), _STR, True, doc="of the clip's mp4 bytes"),
    # Added after the first manifests: nullable, so older clips.parquet files still read.
    Field(
        "override",
        pa.list_(pa.string()),
        {"type": "array", "items": {"enum": ["keep", "reject", "caption"]}},
        True,
        doc="a person's corrections applied at pack time (OUT/overrides.jsonl)",
    ),
    Field(
        "split",
        pa.string(),
        {"enum": list(SPLITS)},
        True,
        doc="train or val with --val.fraction (null: no split, or not kept)",
    ),
)

VIDEO_FIELDS: tuple[Field, ...] = (
    Field("video_id", pa.string(), _STR, True, doc="null when the file could not be read"),
    Field("source_path", pa.string(), _STR),
    Field("status", pa.string(), {"enum": list(VIDEO_STATUSES)}),
    Field(
        "error",
        pa.string(),
        _STR,
        True,
        doc="one line: why status is error, or a note on an ok video (damage, a bad sidecar)",
    ),
    Field("duplicate_of", pa.string(), _STR, True, doc="source_path of the first copy"),
    Field("size_bytes", pa.int64(), _INT, True),
    Field("duration_s", pa.float64(), _NUM, True),
    Field("fps", pa.float64(), _NUM, True, doc="average frame rate"),
    Field("vfr", pa.bool_(), _BOOL, True, doc="variable frame rate detected"),
    Field("n_frames", pa.int64(), _INT, True),
    Field("width", pa.int32(), _INT, True, doc="displayed, after rotation"),
    Field("height", pa.int32(), _INT, True),
    Field("rotation", pa.int32(), {"type": "integer"}, True),
    Field("codec", pa.string(), _STR, True),
    Field("pix_fmt", pa.string(), _STR, True),
    Field("has_audio", pa.bool_(), _BOOL, True),
    Field("n_clips", pa.int32(), _INT),
    Field("n_kept", pa.int32(), _INT),
)


def arrow_schema(fields: tuple[Field, ...]) -> pa.Schema:
    return pa.schema([pa.field(f.name, f.arrow, nullable=f.nullable) for f in fields])


CLIP_SCHEMA = arrow_schema(CLIP_FIELDS)
VIDEO_SCHEMA = arrow_schema(VIDEO_FIELDS)


def json_schema(fields: tuple[Field, ...], title: str) -> dict[str, Any]:
    """Draft 2020-12 JSON Schema of one record; extra keys are allowed (forward compatible)."""
    props = {}
    for f in fields:
        spec = dict(f.json)
        if f.nullable:
            spec = {"anyOf": [spec, {"type": "null"}]}
        if f.doc:
            spec["description"] = f.doc
        props[f.name] = spec
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "type": "object",
        "required": [f.name for f in fields if not f.nullable],
        "properties": props,
    }


@cache
def clip_json_schema() -> dict[str, Any]:
    """The schema shipped as schemas/clip.schema.json (a test keeps the file in sync)."""
    text = resources.files("schemas").joinpath("clip.schema.json").read_text()
    return json.loads(text)


def validate_clip(record: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when `record` breaks the clip contract."""
    import jsonschema

    jsonschema.validate(record, clip_json_schema())


def empty_clip(**values: Any) -> dict[str, Any]:
    """A clip record with every field present (null/empty where not given)."""
    row: dict[str, Any] = {f.name: None for f in CLIP_FIELDS}
    row.update(reject_reasons=[], captions=[], kept=False)
    row.update(values)
    return row


def empty_video(**values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {f.name: None for f in VIDEO_FIELDS}
    row.update(n_clips=0, n_kept=0)
    row.update(values)
    return row


def write_schema_files(folder: str | None = None) -> None:
    """Regenerate the shipped JSON Schema files from the field tables."""
    from pathlib import Path

    root = Path(folder or Path(__file__).parent)
    for name, fields in (("clip", CLIP_FIELDS), ("video", VIDEO_FIELDS)):
        text = json.dumps(json_schema(fields, f"clipmill {name} record"), indent=2) + "\n"
        (root / f"{name}.schema.json").write_text(text)


if __name__ == "__main__":
    write_schema_files()
