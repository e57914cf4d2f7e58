"""Perceptual-hash stage (1:1 per video): 64-bit DCT hashes of a clip's sampled frames.

Row in:  a transcoded video record (`stage_dir` holds the split's low-res samples).
Row out: the same record; every scoreable clip gains `phash`: one hex string
         (16 digits) per sampled frame, `--dedup.hash_fps` per second, in time order.

The hashes need no model and survive re-encoding, resizing and small shifts, so
the collection-wide dedup (`pipeline/pack/dedup.py`, at pack time) can find a shot
used twice in one video or across videos by Hamming distance. They are kept in
time order at a fixed rate, because one frame alike proves little (a bright
object crossing the same spot of a dark frame gives a close hash): a repeat
matches frame after frame at one time offset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config.curate import CurateConfig
from pipeline.stages.base import ClipScorer
from pipeline.stages.lowres import clip_lowres


def dct_hash(rgb: np.ndarray) -> int:
    """pHash: the signs of the 8x8 lowest DCT frequencies of a 32x32 grey frame vs their median.

    The 32x32 frame is histogram-equalised first, so a dim textured background counts as
    much as one bright object: without it, two different dark shots whose bright subjects
    pass the same spot hash alike (measured on synthetic footage: 5 false pairs in 1,110
    at 8 bits, against 0 with equalisation; every true repeat matched either way).
    """
    import cv2

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    small = cv2.equalizeHist(cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA))
    low = cv2.dct(small.astype(np.float32))[:8, :8].ravel()
    bits = low > np.median(low[1:])  # the DC term carries brightness, not structure
    return int(np.packbits(bits).view(">u8")[0])


def clip_hashes(frames: np.ndarray, stride: int) -> list[str]:
    """Hex hashes of every `stride`-th frame."""
    return [f"{dct_hash(f):016x}" for f in frames[::stride]]


class PerceptualHashStage(ClipScorer):
    """Ray Data stage (1:1): perceptual hashes of every scoreable clip of one video."""

    def __init__(self, cfg: CurateConfig) -> None:
        self.stride = max(1, round(cfg.split.sample_fps / cfg.dedup.hash_fps))
        self.perceptual = cfg.dedup.perceptual

    name = "phash"

    def enabled(self) -> bool:
        return self.perceptual

    def score(self, clip: dict[str, Any], folder: Path, video: dict[str, Any]) -> None:
        frames, _ = clip_lowres(folder, clip["start_frame"], clip["end_frame"])
        clip["phash"] = clip_hashes(frames, self.stride)
