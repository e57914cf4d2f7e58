"""Blank and blur filter stage (1:1 per video): from the split's per-frame statistics.

Row in:  a transcoded video record (`stage_dir` holds `stats.npy` from the split's decode).
Row out: the same record; every scoreable clip gains `blank_fraction` (share of its
         frames that are near-uniform or black) and `sharpness` (median variance of
         the Laplacian at `--split.analysis_width`).

Nothing is decoded or even read but three numbers per frame, which the split
computed on every frame it decoded anyway. The splitter already cuts runs of
black out as `blank` rows; this catches what it cannot: grey slates, lens caps,
clips that are mostly dark, and shots out of focus. Reasons are decided at pack time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config.curate import CurateConfig
from pipeline.stages.base import ClipScorer
from pipeline.stages.lowres import clip_stats

# The splitter's own notion of a black frame: dark and nearly uniform (pipeline/stages/split.py).
BLACK_STD = 10.0


def technical_scores(
    stats: dict[str, np.ndarray], max_std: float, black_luma: float
) -> tuple[float, float] | None:
    """(blank_fraction, sharpness) of one clip's frames; None when it has none."""
    if not len(stats["luma_std"]):
        return None
    std, mean = stats["luma_std"], stats["luma_mean"]
    blank = (std < max_std) | ((mean < black_luma) & (std < BLACK_STD))
    return float(blank.mean()), float(np.median(stats["sharpness"]))


class TechnicalStage(ClipScorer):
    """Ray Data stage (1:1): blank and blur scores of every scoreable clip of one video."""

    def __init__(self, cfg: CurateConfig) -> None:
        self.blank, self.blur, self.black_luma = (
            cfg.filters.blank,
            cfg.filters.blur,
            cfg.split.blank_luma,
        )

    name = "technical"

    def enabled(self) -> bool:
        return self.blank.enabled or self.blur.enabled

    def score(self, clip: dict[str, Any], folder: Path, video: dict[str, Any]) -> None:
        stats = clip_stats(folder, clip["start_frame"], clip["end_frame"])
        scores = technical_scores(stats, self.blank.max_std, self.black_luma)
        if scores is None:
            return
        if self.blank.enabled:
            clip["blank_fraction"] = round(scores[0], 6)
        if self.blur.enabled:
            clip["sharpness"] = round(scores[1], 4)
