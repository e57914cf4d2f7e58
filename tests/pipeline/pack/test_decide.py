"""Scores become reasons in one place; every rejection names its reasons; what-if adds up."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from pipeline.config.curate import build_config
from pipeline.pack.decide import FILTERS, apply_thresholds, setting
from schemas import REJECT_REASONS, empty_clip, validate_clip


def _clip(**scores) -> dict:
    return empty_clip(clip_id="c", duration_s=3.0, **scores)


def test_thresholds_add_reasons_after_hard_ones_and_null_passes():
    cfg = build_config({})
    clips = [
        _clip(motion_score=0.0, text_area=0.5),
        _clip(motion_score=0.0, reject_reasons=["error"]),
        _clip(motion_score=None, sharpness=None, text_area=None),
        _clip(motion_score=0.05, sharpness=100.0, blank_fraction=0.0, text_area=0.0),
    ]
    apply_thresholds(clips, cfg)
    assert [c["reject_reasons"] for c in clips] == [
        ["low_motion", "text_overlay"],
        ["error", "low_motion"],
        [],
        [],
    ]
    assert [c["kept"] for c in clips] == [False, False, True, True]
    off = build_config({"filters": {"motion": {"min_score": None}}})
    again = [_clip(motion_score=0.0)]
    apply_thresholds(again, off)
    assert again[0]["kept"]


def test_every_filter_names_a_known_reason_and_a_real_setting():
    cfg = build_config({})
    for f in FILTERS:
        assert f.reason in REJECT_REASONS and f.bound in ("min", "max")
        setting(cfg, f.flag)  # raises if the flag does not exist


def test_every_row_carries_scores_and_reasons(junk_curated):
    out, summary, _ = junk_curated
    clips = pq.read_table(out / "clips.parquet").to_pylist()
    for c in clips:
        assert c["kept"] == (not c["reject_reasons"])
        validate_clip(c)
        if c["sha256"]:  # transcoded: every CPU score and the hashes are there
            for name in ("motion_score", "blank_fraction", "sharpness", "text_area", "phash"):
                assert c[name] is not None, (name, c["clip_id"])
    assert summary["seconds"]["kept"] == pytest.approx(
        sum(c["duration_s"] for c in clips if c["kept"]), abs=0.01
    )


def test_what_if_at_the_chosen_threshold_is_what_was_kept(junk_curated):
    _, summary, _ = junk_curated
    kept_s = summary["seconds"]["kept"]
    report = summary["what_if"]
    assert {f.flag for f in FILTERS} <= report.keys() and "dedup.max_hamming" in report
    for flag, entry in report.items():
        chosen = [s for v, s in entry["kept_s"] if v == entry["chosen"]]
        if entry["chosen"] is not None and chosen:
            assert chosen[0] == pytest.approx(kept_s, abs=0.01), flag
    motion = dict(map(tuple, report["filters.motion.min_score"]["kept_s"]))
    values = sorted(motion)
    assert [motion[v] for v in values] == sorted(motion.values(), reverse=True)  # monotone
