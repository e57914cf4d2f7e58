"""Scoring config: bad values name their flag; thresholds never change the staging fingerprint."""

from __future__ import annotations

import pytest

from pipeline.config.curate import ConfigError, build_config
from pipeline.staging import fingerprint, score_fingerprint


@pytest.mark.parametrize(
    ("values", "flag"),
    [
        ({"filters": {"motion": {"fps": 0}}}, "--filters.motion.fps"),
        ({"filters": {"motion": {"fps": 8}}}, "--filters.motion.fps"),
        ({"filters": {"text": {"max_area": 2}}}, "--filters.text.max_area"),
        ({"filters": {"text": {"frames": 5}}}, "--filters.text.frames"),
        ({"filters": {"blur": {"min_sharpness": -1}}}, "--filters.blur.min_sharpness"),
        ({"filters": {"motion": {"typo": 1}}}, "--filters.motion.typo"),
        ({"clip": {"device": "tpu"}}, "--clip.device"),
        ({"clip": {"aesthetic_head": "/no/such.pth"}}, "--clip.aesthetic_head"),
        ({"dedup": {"keep": "some"}}, "--dedup.keep"),
        ({"dedup": {"max_hamming": 99}}, "--dedup.max_hamming"),
        ({"weights": {"quality_from": ["beauty"]}}, "--weights.quality_from"),
        ({"split": {"sample_fps": 0}}, "--filters.motion.enabled"),
    ],
)
def test_bad_values_name_the_flag(values, flag):
    with pytest.raises(ConfigError, match=flag.replace(".", r"\.")):
        build_config(values)


def test_thresholds_leave_fingerprints_alone_and_scoring_settings_do_not():
    base = build_config({})
    fps = (fingerprint(base), score_fingerprint(base))
    loose = build_config(
        {
            "filters": {"text": {"max_area": 0.5}, "motion": {"min_score": None}},
            "clip": {"min_score": 0.2, "batch_size": 8, "device": "cpu"},
            "dedup": {"threshold": 0.9, "keep": "all"},
            "weights": {"rarity": "none"},
            "shards": {"max_samples": 10},
        }
    )
    assert (fingerprint(loose), score_fingerprint(loose)) == fps
    motion = build_config({"filters": {"motion": {"fps": 1.0}}})
    assert fingerprint(motion) != fps[0] and score_fingerprint(motion) == fps[1]
    clip = build_config({"clip": {"frames": 2}})
    assert fingerprint(clip) == fps[0] and score_fingerprint(clip) != fps[1]


def test_summary_config_round_trips():
    cfg = build_config({"weights": {"quality_from": ["aesthetic", "clip_score"]}})
    assert build_config(cfg.to_dict()) == cfg


def test_clip_runs_only_with_weights_unless_told(tmp_path):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"")  # only its existence is checked at config time
    assert build_config({}).clip.enabled is False
    assert build_config({"clip": {"pretrained": str(weights)}}).clip.enabled is True
    assert build_config({"clip": {"enabled": True}}).clip.enabled is True
    assert (
        build_config({"clip": {"pretrained": str(weights), "enabled": False}}).clip.enabled is False
    )
    with pytest.raises(ConfigError, match="--caption.sources needs CLIP"):
        build_config({"caption": {"sources": ["clip_zeroshot"]}})
