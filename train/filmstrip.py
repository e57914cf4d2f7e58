"""Videos as pictures a person can read: one labelled filmstrip per video, time left to right.

Samples at 32 px are too small to judge by eye, and a grid of frames says nothing about
which prompt made which row. Each frame is enlarged by an integer factor (nearest
neighbour: no blur invents detail the model did not draw) to at least `min_px`, and each
strip carries its prompt above it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

GAP = 2  # pixels between frames and between strips
LABEL_PX = 14  # height of the text band above a strip
BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)


def filmstrip(
    videos: np.ndarray, labels: Sequence[str] | None = None, min_px: int = 64
) -> np.ndarray:
    """uint8 `[B, T, H, W, 3]` -> one uint8 `[rows, cols, 3]` image: a labelled strip a video."""
    from PIL import Image, ImageDraw

    videos = np.asarray(videos)
    if videos.ndim != 5 or videos.shape[-1] != 3 or videos.dtype != np.uint8:
        raise ValueError(f"videos must be uint8 [B, T, H, W, 3], got {videos.dtype} {videos.shape}")
    if labels is not None and len(labels) != len(videos):
        raise ValueError(f"{len(labels)} labels for {len(videos)} videos")
    b, t, h, w, _ = videos.shape
    scale = max(1, math.ceil(min_px / min(h, w)))
    fh, fw = h * scale, w * scale
    band = LABEL_PX if labels is not None else 0
    row_h = band + fh + GAP
    image = np.empty((b * row_h + GAP, t * (fw + GAP) + GAP, 3), np.uint8)
    image[:] = BACKGROUND
    big = videos.repeat(scale, axis=2).repeat(scale, axis=3)
    for i in range(b):
        top = i * row_h + GAP + band
        for k in range(t):
            left = GAP + k * (fw + GAP)
            image[top : top + fh, left : left + fw] = big[i, k]
    if labels is not None:
        canvas = Image.fromarray(image)
        draw = ImageDraw.Draw(canvas)
        for i, label in enumerate(labels):
            draw.text((GAP + 1, i * row_h + GAP), str(label), fill=TEXT)
        image = np.asarray(canvas)
    return image
