"""Blank and blur filters: a grey slate is blank, a blurred shot blurry, a sharp one neither."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from pipeline.stages.technical import technical_scores


def test_scores_from_per_frame_statistics():
    stats = {
        "luma_mean": np.array([120.0, 121.0, 5.0, 80.0]),
        "luma_std": np.array([1.0, 2.0, 3.0, 30.0]),
        "sharpness": np.array([1.0, 2.0, 50.0, 400.0]),
    }
    blank, sharp = technical_scores(stats, max_std=5.0, black_luma=16.0)
    assert blank == 0.75 and sharp == 26.0
    empty = {k: np.zeros(0) for k in stats}
    assert technical_scores(empty, 5.0, 16.0) is None


def test_flat_is_blank_blurry_is_blurry_shots_are_neither(junk_curated, truth_kind):
    out, _, truth = junk_curated
    clips = [c for c in pq.read_table(out / "clips.parquet").to_pylist() if c["sharpness"]]
    seen = set()
    for c in clips:
        label = truth_kind(c, truth)[0]
        seen.add(label)
        if label == "flat":
            assert "blank" in c["reject_reasons"] and c["blank_fraction"] > 0.9
        elif label == "blurry":
            assert "blurry" in c["reject_reasons"] and "blank" not in c["reject_reasons"]
        elif label in ("shot", "sign", "repeat", "ad"):
            assert c["blank_fraction"] == 0 and c["sharpness"] > 15
            assert not {"blank", "blurry"} & set(c["reject_reasons"])
    assert {"flat", "blurry", "shot"} <= seen
