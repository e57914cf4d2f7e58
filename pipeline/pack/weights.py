"""Per-clip sample_weight for the trainer's sampler (driver, at pack time).

Clips in: every candidate row after thresholds and dedup (`kept`, `duplicate_of`).
Out:      `sample_weight` on each kept clip (null on rejected ones), mean 1 over the kept.

weight = quality x rarity. For scarce data, weighting beats deleting: a clip that
is merely common stays in the set but is drawn less often.
- quality: for each score named in `--weights.quality_from` (aesthetic by default),
  its percentile rank among the kept clips mapped to 0.5-1.5 (unknown: 1);
- rarity: 1 / n ** `--weights.rarity_power`, with n the size of the clip's kept
  duplicate cluster (`cluster`; with `--dedup.keep all` the cluster's members all
  stay and together count about once), or 1 + the kept clips within
  `--weights.density_threshold` cosine of its CLIP embedding (`density`: crowded
  regions of the data are down-weighted). `auto` uses density when CLIP has
  pretrained weights (random-weight embeddings are all alike), else cluster.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from pipeline.config.curate import CurateConfig
from pipeline.pack.neighbours import neighbour_counts


def percentile_ranks(values: np.ndarray) -> np.ndarray:
    """Rank in [0, 1] of each value among all (ties share their mean rank)."""
    if len(values) < 2:
        return np.full(len(values), 0.5)
    ordered = np.sort(values)
    lo = np.searchsorted(ordered, values, "left")
    hi = np.searchsorted(ordered, values, "right")
    return (lo + (hi - lo - 1) / 2) / (len(values) - 1)


def rarity_mode(cfg: CurateConfig) -> str:
    mode = cfg.weights.rarity
    if mode == "auto":
        return "density" if cfg.clip.enabled and cfg.clip.pretrained else "cluster"
    return mode


def sample_weights(
    clips: list[dict[str, Any]], cfg: CurateConfig, embeddings: dict[str, np.ndarray]
) -> str:
    """Set `sample_weight` on every clip; returns the rarity mode used."""
    for c in clips:
        c["sample_weight"] = None
    kept = [c for c in clips if c["kept"]]
    if not kept:
        return "none"
    quality = np.ones(len(kept))
    for name in cfg.weights.quality_from:
        have = [i for i, c in enumerate(kept) if c.get(name) is not None]
        if len(have) > 1:
            values = np.array([kept[i][name] for i in have], np.float64)
            quality[have] *= 0.5 + percentile_ranks(values)
    mode = rarity_mode(cfg)
    if mode == "density" and not all(c["clip_id"] in embeddings for c in kept):
        mode = "cluster"  # some kept clip has no embedding: density would be wrong
    n = _crowding(kept, mode, cfg, embeddings)
    weight = quality / n**cfg.weights.rarity_power
    weight /= weight.mean()
    for c, w in zip(kept, weight, strict=True):
        c["sample_weight"] = round(float(w), 5)
    return mode


def _crowding(
    kept: list[dict[str, Any]], mode: str, cfg: CurateConfig, embeddings: dict[str, np.ndarray]
) -> np.ndarray:
    """n per kept clip: its cluster size, its neighbourhood size, or 1."""
    if mode == "cluster":
        rep = [c.get("duplicate_of") or c["clip_id"] for c in kept]
        size = Counter(rep)
        return np.array([size[r] for r in rep], np.float64)
    if mode == "density":
        emb = np.stack([embeddings[c["clip_id"]] for c in kept]).astype(np.float32)
        return 1.0 + neighbour_counts(emb, cfg.weights.density_threshold)
    return np.ones(len(kept))
