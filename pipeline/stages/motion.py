"""Motion filter stage (1:1 per video): optical flow on the split's low-res samples.

Row in:  a transcoded video record (`stage_dir` holds `lowres.u8` from the split's decode).
Row out: the same record; every scoreable clip gains `motion_score` (mean Farneback
         flow magnitude in frame widths per second) and `motion_min` (the same for
         the stillest cell of a grid), or an `error`.

No decode: the split already sampled frames at `--split.sample_fps`; pairs are
taken `--filters.motion.fps` apart and shrunk to `--filters.motion.width`.
Dividing by the width and the pair's time gap makes the score independent of
both. Static shots and slideshows score near zero (low_motion); jitter and whip
pans score high (high_motion, off by default). Reasons are decided at pack time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config.curate import CurateConfig
from pipeline.stages.base import ClipScorer
from pipeline.stages.lowres import clip_lowres


def flow_magnitudes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|flow| per pixel from grey frame a to b (pixels), Farneback with a small window."""
    import cv2

    flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 9, 3, 5, 1.1, 0)
    return np.hypot(flow[..., 0], flow[..., 1])


def motion_scores(
    frames: np.ndarray, times: np.ndarray, stride: int, width: int, grid: int
) -> tuple[float, float] | None:
    """(mean, stillest-cell mean) flow in frame widths per second; None with < 2 frames."""
    import cv2

    if len(frames) < 2:
        return None
    stride = min(stride, len(frames) - 1)
    h = max(8, round(frames.shape[1] * width / frames.shape[2]))
    grey = [
        cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (width, h), interpolation=cv2.INTER_AREA)
        for f in frames[::stride]
    ]
    gaps = np.diff(times[::stride])
    cells = np.zeros((grid, grid))
    total = 0.0
    for a, b, dt in zip(grey, grey[1:], gaps, strict=False):
        mag = flow_magnitudes(a, b) / (width * max(float(dt), 1e-3))
        total += float(mag.mean())
        rows = np.array_split(mag, grid, axis=0)
        cells += [[float(c.mean()) for c in np.array_split(r, grid, axis=1)] for r in rows]
    pairs = len(gaps)
    return total / pairs, float(cells.min()) / pairs


class MotionStage(ClipScorer):
    """Ray Data stage (1:1): motion scores of every scoreable clip of one video."""

    name = "motion"

    def __init__(self, cfg: CurateConfig) -> None:
        self.cfg = cfg.filters.motion
        self.stride = max(1, round(cfg.split.sample_fps / self.cfg.fps))

    def enabled(self) -> bool:
        return self.cfg.enabled

    def score(self, clip: dict[str, Any], folder: Path, video: dict[str, Any]) -> None:
        fps = float(video.get("fps") or 25.0)
        frames, index = clip_lowres(folder, clip["start_frame"], clip["end_frame"])
        scores = motion_scores(frames, index / fps, self.stride, self.cfg.width, self.cfg.grid)
        if scores is not None:
            clip["motion_score"], clip["motion_min"] = (round(s, 6) for s in scores)
