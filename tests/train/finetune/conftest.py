"""Fixtures of the fine-tuning tests: tiny pipeline folders per family, small clip shards.

Each family's folder is built once per session (`train.finetune.tiny`, random weights from
configs, as diffusers' own pipeline tests do) and must be treated as read-only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

# Per family: (frame buckets, size buckets) on its grid, small enough for CPU steps.
GRIDS = {
    "wan": ([9, 17], [[32, 32], [32, 48]]),
    "ltx": ([9, 17], [[32, 32], [32, 64]]),
    "cogvideox": ([9, 17], [[32, 32], [32, 48]]),
}


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> Callable[[str], Path]:
    """`tiny_pipeline(family) -> folder` of a saved tiny random pipeline (read-only)."""
    from train.finetune.tiny import save_tiny_pipeline

    made: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in made:
            made[family] = save_tiny_pipeline(family, tmp_path_factory.mktemp(f"tiny_{family}"))
        return made[family]

    return get


def moving_square(frames: int, height: int, width: int, shift: int) -> np.ndarray:
    """uint8 [T, H, W, 3]: a red square crossing a dark frame, `shift` px further each clip."""
    video = np.full((frames, height, width, 3), 20, np.uint8)
    side = min(height, width) // 2
    for t in range(frames):
        x = (2 * t + shift) % max(1, width - side)
        video[t, height // 4 : height // 4 + side, x : x + side] = (220, 40, 30)
    return video


@pytest.fixture(scope="session")
def clip_shards(tmp_path_factory, shard_writer) -> Callable[..., str]:
    """`clip_shards(n=4, sizes=((48, 48), (48, 72)), frames=24, fps=12.0) -> glob` of
    captioned moving-square clips (curation's record fields), written once per argument set."""
    made: dict[tuple, str] = {}

    def get(n: int = 4, sizes=((48, 48), (48, 72)), frames: int = 24, fps: float = 12.0) -> str:
        args = (n, tuple(map(tuple, sizes)), frames, fps)
        if args not in made:
            samples = []
            for i in range(n):
                h, w = sizes[i % len(sizes)]
                key = f"{i:016x}_0000000_{frames:07d}"
                record = {
                    "clip_id": key, "caption": f"a red square moving right, clip {i}",
                    "fps": fps, "n_frames": frames, "duration_s": frames / fps,
                    "width": w, "height": h, "sample_weight": 1.0,
                }  # fmt: skip
                samples.append((key, moving_square(frames, h, w, 3 * i), record))
            out = tmp_path_factory.mktemp("clip_shards")
            made[args] = shard_writer(out, samples, fps, max_samples=2)
        return made[args]

    return get


# Clips of mixed shapes and lengths at 12 fps, and where GRIDS["wan"] at 12 fps puts them:
# key -> (height, width, frames, caption, sample_weight, bucket name or drop reason).
# Square and portrait clips go to 32x32 (nearest aspect ratio), wide ones to 32x48; the
# longest frame bucket the clip fills; the last three are dropped.
MIXED = {
    "square_a": (48, 48, 24, "a red square moving right", 1.0, "17x32x32"),
    "square_b": (40, 40, 20, "a small red square moving right", 2.0, "17x32x32"),
    "portrait": (72, 48, 18, "a tall red square moving right", 0.5, "17x32x32"),
    "wide_a": (48, 72, 24, "a wide red square moving right", 1.5, "17x32x48"),
    "wide_b": (36, 54, 17, "a wide red square moving left", 3.0, "17x32x48"),
    "square_short": (48, 48, 12, "a short red square", 1.0, "9x32x32"),
    "wide_short": (48, 72, 9, "a short wide red square", 0.25, "9x32x48"),
    "too_short": (48, 48, 6, "a very short red square", 1.0, "too_short"),
    "no_caption": (48, 48, 24, "", 1.0, "no_caption"),
    "too_small": (12, 12, 24, "a tiny red square", 1.0, "too_small"),
}
MIXED_FPS = 12.0


@pytest.fixture(scope="session")
def mixed_shards(tmp_path_factory, shard_writer) -> str:
    """Glob of the MIXED clips (3 per shard), curation's record fields, written once."""
    samples = []
    for i, (key, (h, w, frames, caption, weight, _)) in enumerate(MIXED.items()):
        record = {
            "clip_id": key, "caption": caption, "fps": MIXED_FPS, "n_frames": frames,
            "duration_s": frames / MIXED_FPS, "width": w, "height": h, "sample_weight": weight,
        }  # fmt: skip
        samples.append((key, moving_square(frames, h, w, 3 * i), record))
    return shard_writer(tmp_path_factory.mktemp("mixed_shards"), samples, MIXED_FPS, max_samples=3)


@pytest.fixture(scope="session")
def mixed() -> dict[str, tuple]:
    """MIXED (above): test modules cannot import the conftest."""
    return MIXED
