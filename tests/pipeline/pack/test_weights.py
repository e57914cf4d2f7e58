"""sample_weight: quality x rarity, mean 1 over the kept clips."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.config.curate import build_config
from pipeline.pack.weights import percentile_ranks, sample_weights
from schemas import empty_clip


def _clips(n: int, **cols) -> list[dict]:
    rows = [empty_clip(clip_id=f"c{i}", kept=True) for i in range(n)]
    for name, values in cols.items():
        for r, v in zip(rows, values, strict=True):
            r[name] = v
    return rows


def test_percentile_ranks_share_ties():
    assert percentile_ranks(np.array([3.0, 1.0, 2.0, 2.0])).tolist() == [1.0, 0.0, 0.5, 0.5]


def test_cluster_members_kept_together_count_about_once():
    clips = _clips(4, duplicate_of=[None, "c0", "c0", None])
    cfg = build_config({"weights": {"rarity": "cluster", "rarity_power": 1.0}})
    assert sample_weights(clips, cfg, {}) == "cluster"
    w = [c["sample_weight"] for c in clips]
    assert np.mean(w) == pytest.approx(1.0, abs=1e-4)
    assert sum(w[:3]) == pytest.approx(w[3], abs=1e-4)


def test_quality_and_density():
    clips = _clips(3, aesthetic=[4.0, 6.0, None])
    cfg = build_config({"weights": {"rarity": "none"}})
    sample_weights(clips, cfg, {})
    assert clips[0]["sample_weight"] < clips[2]["sample_weight"] < clips[1]["sample_weight"]
    emb = {f"c{i}": v for i, v in enumerate(np.eye(3)[[0, 0, 1]])}
    dense = build_config({"weights": {"rarity": "density", "quality_from": []}})
    sample_weights(clips, dense, emb)
    assert clips[0]["sample_weight"] == clips[1]["sample_weight"] < clips[2]["sample_weight"]


def test_rejected_clips_have_no_weight(junk_curated):
    out, summary, _ = junk_curated
    clips = pq.read_table(out / "clips.parquet").to_pylist()
    kept = [c["sample_weight"] for c in clips if c["kept"]]
    assert all(w is not None for w in kept) and np.mean(kept) == pytest.approx(1, abs=1e-3)
    assert all(c["sample_weight"] is None for c in clips if not c["kept"])
    assert summary["weights"]["rarity"] == "cluster"  # random CLIP weights: no density
