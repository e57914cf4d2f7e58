"""Footage drawn for the split's tests (`draw`): soft textures, pans, shots, blends, flashes.

At 192×108 and 24 fps, twice the analysis width (96), so a pan of 8 px/s here is 4 px/s
where the dissolve guard looks.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from pipeline.config.curate import SplitConfig
from pipeline.staging import SplitStage
from pipeline.staging_spans import PENDING, SpansStage

W, H, FPS = 192, 108, 24.0


def soft_texture(seed: int, width: int, height: int, sigma: float, amp: float, mean: float):
    """Blurred noise with luma std `amp` around `mean`, lightly tinted: fog, sky, a soft wall."""
    noise = np.random.default_rng(seed).standard_normal((height, width)).astype(np.float32)
    tex = cv2.GaussianBlur(noise, (0, 0), sigma)
    tex = (tex - tex.mean()) / tex.std() * amp + mean
    tint = np.array([1.0, 0.95, 0.85] if seed % 2 else [0.8, 0.95, 1.05], np.float32)
    return np.ascontiguousarray(tex[..., None] * tint)


def pan(seed: int, n: int, speed: float, sigma: float = 4.0, amp: float = 20.0) -> list:
    """n frames of a camera panning `speed` px/s (±30%, slowly varying) across soft content."""
    tex = soft_texture(seed, W + int(abs(speed) * 1.3 * n / FPS) + 24, H + 24, sigma, amp, 110)
    x = 12.0 if speed > 0 else tex.shape[1] - W - 12.0
    frames = []
    for i in range(n):
        patch = cv2.getRectSubPix(tex, (W, H), (x + W / 2, 12 + H / 2))
        frames.append(np.clip(patch + 0.5, 0, 255).astype(np.uint8))
        x += speed / FPS * (1 + 0.3 * np.sin(i / 40.0))
    return frames


def shot(seed: int, n: int, mean: float = 70.0) -> list:
    """An ordinary shot: a yellow disc crossing a tinted, textured background."""
    tex = soft_texture(seed, W, H, 3.0, 30.0, mean)
    frames = []
    for i in range(n):
        f = tex.copy()
        cv2.circle(f, (20 + int(i * 1.5) % (W - 40), H // 2), 14, (230, 200, 60), -1)
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    return frames


def crossfade(a: list, b: list) -> list:
    n = len(a)
    return [blend(x, y, (i + 1) / (n + 1)) for i, (x, y) in enumerate(zip(a, b, strict=True))]


def blend(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    return (a.astype(np.float32) * (1 - w) + b.astype(np.float32) * w + 0.5).astype(np.uint8)


def flash(frame: np.ndarray, kind: str) -> np.ndarray:
    """A flash frame: washed out to near-white, or the same picture strongly brightened."""
    f = frame.astype(np.float32)
    g = 235 + 0.1 * f if kind == "white" else 1.8 * f + 60
    return np.clip(g, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def draw() -> SimpleNamespace:
    """The drawing helpers above, and the footage's size and rate (W, H, FPS)."""
    return SimpleNamespace(
        soft_texture=soft_texture, pan=pan, shot=shot, crossfade=crossfade, blend=blend,
        flash=flash, W=W, H=H, FPS=FPS,
    )  # fmt: skip


def _split_in_spans(stage: SplitStage, cfg: SplitConfig, video: dict, seed: int) -> dict:
    rows = SpansStage(cfg, str(stage.work))({"video": json.dumps(video)})
    random.Random(seed).shuffle(rows)  # workers finish in any order
    out = [json.loads(stage(r)["video"]) for r in rows]
    joined = [v for v in out if not v.get(PENDING)]
    assert len(rows) >= 2 and len(joined) == 1  # exactly one span joins the video
    return joined[0]


@pytest.fixture(scope="session")
def split_in_spans() -> Callable[[SplitStage, SplitConfig, dict, int], dict]:
    """`(stage, cfg, video, seed) -> joined row`: a long video through the real span stages
    (`SpansStage`, then `stage` on each span row in a shuffled order); exactly one span
    joins the video."""
    return _split_in_spans
