"""The shot kinds that test transition detection: slow pans, flashes, fades through black.

A splitter must cut where the content changes and nowhere else. The shapes world's hard
cuts, dissolves and black gaps test the first half; these test the second, and fades the
first with a harder case:
- a pan (`--pan-prob`, truth kind "pan") drifts a few pixels per second over soft,
  low-contrast content (fog, sky, water, an out-of-focus wall) for a long time, sometimes
  with a faint blob drifting over it: each frame differs from the last by almost nothing,
  but the first and last frames of a shot differ a lot, so a detector that compares
  against an old frame or accumulates small steps cuts where there is no cut;
- a flash (`--flash-prob`) brightens 1-3 frames inside an ordinary shot, like a camera
  flash or lightning; the content before and after is unchanged, so it is not a cut;
- a fade (`--fade-prob`, truth kind "fade") darkens the outgoing shot to black, holds
  black, and brightens the incoming one: one transition, not two hard cuts.

Each is drawn from its own seeded generator (the shot's seed and a salt), so turning
flashes on changes no other pixel of the footage, and everything here is exact ground truth.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from pipeline.synthetic.config import SynthConfig

# Salts for the per-shot generators: one stream per use, so one never shifts another.
PAN_SALT, PAN_TEXTURE_SALT, FLASH_SALT = 101, 102, 103
PAN_SPEED_PX_S = (2.0, 8.0)  # output pixels per second: slow enough that frames look alike
PAN_VERTICAL_PROB = 0.3  # a pan with a vertical component as well as the horizontal one
PAN_VERTICAL_PX_S = (1.0, 4.0)
PAN_CONTRAST = 0.05  # noise amplitude as a fraction of the scene's level: ~±8 of 255
PAN_GRADIENT = 0.08  # top-to-bottom brightness change, of the level (sky brighter above)
FAINT_SHAPE_PROB = 0.5
FAINT_SHAPE_LEVEL = 6.0  # the blob's peak above the scene, of 255: visible, not an object
# name: (RGB level, caption). Mid-bright and nearly grey, unlike the world's dark backdrops.
PAN_SCENES: dict[str, tuple[tuple[float, float, float], str]] = {
    "fog": ((150.0, 152.0, 156.0), "a slow pan across a grey foggy background"),
    "sky": ((168.0, 184.0, 206.0), "a slow pan across a pale overcast sky"),
    "water": ((92.0, 112.0, 122.0), "a slow pan over calm grey water"),
    "wall": ((176.0, 162.0, 142.0), "a slow pan along an out-of-focus beige wall"),
}
FAINT_SHAPE_CAPTION = ", a faint shape drifting across it"
FLASH_FRAMES = (1, 3)  # inclusive
FLASH_STRENGTH = (0.6, 0.9)  # of the way to white: a dark backdrop goes from ~40 to ~160-230
FLASH_EDGE = 3  # ordinary frames kept on each side of a flash, inside its shot
FADE_HOLD_S = (0.1, 0.5)  # black between the fade out and the fade in


class Renderer(Protocol):
    """Anything that draws a shot's frame at a local index (0 is its first frame)."""

    def frame(self, t: int) -> np.ndarray: ...


@dataclass(frozen=True)
class PanPlan:
    """What a pan shows and how it moves; all of it goes into the truth."""

    scene: str
    caption: str
    velocity_px_s: tuple[float, float]  # content motion in the image (x right, y down)
    faint_shape: bool


def plan_pan(seed: int) -> PanPlan:
    """The pan of the shot seeded `seed` (the same for the renderer and for the truth)."""
    rng = np.random.default_rng([seed, PAN_SALT])
    scene = str(rng.choice(list(PAN_SCENES)))
    vx = float(rng.uniform(*PAN_SPEED_PX_S)) * (1 if rng.random() < 0.5 else -1)
    vy = 0.0
    if rng.random() < PAN_VERTICAL_PROB:
        vy = float(rng.uniform(*PAN_VERTICAL_PX_S)) * (1 if rng.random() < 0.5 else -1)
    faint = bool(rng.random() < FAINT_SHAPE_PROB)
    caption = PAN_SCENES[scene][1] + (FAINT_SHAPE_CAPTION if faint else "")
    return PanPlan(scene, caption, (vx, vy), faint)


class PanRenderer:
    """Frames of a pan: a window sliding at constant sub-pixel speed over a larger canvas.

    The canvas covers the whole path (shot plus the dissolve margins), so the window never
    leaves it; bilinear sampling keeps a 0.1 px/frame step smooth instead of a 1 px jump
    every tenth frame.
    """

    def __init__(
        self, seed: int, width: int, height: int, n_frames: int, margin: int, fps: float
    ) -> None:
        self.plan = plan_pan(seed)
        self.width, self.height, self.margin = width, height, margin
        self.step = np.array(self.plan.velocity_px_s) / fps  # pixels per frame
        span = max(n_frames + 2 * margin - 1, 1)
        travel = np.abs(self.step) * span
        # One pixel of border each side: bilinear sampling reads a neighbour.
        size = (width + math.ceil(travel[0]) + 2, height + math.ceil(travel[1]) + 2)
        rng = np.random.default_rng([seed, PAN_TEXTURE_SALT])
        self.canvas = _soft_canvas(rng, size, height, PAN_SCENES[self.plan.scene][0])
        # The window's top-left at s = 0 (the first margin frame), moving by -step.
        self.origin = 1.0 + np.maximum(self.step, 0.0) * span
        self.blob = FaintBlob(rng, width, height, span) if self.plan.faint_shape else None

    def frame(self, t: int) -> np.ndarray:
        s = t + self.margin
        x0, y0 = self.origin - self.step * s
        centre = (x0 + (self.width - 1) / 2, y0 + (self.height - 1) / 2)
        out = cv2.getRectSubPix(self.canvas, (self.width, self.height), centre)
        if self.blob is not None:
            self.blob.add(out, s)
        np.clip(out, 0.0, 255.0, out=out)
        out += 0.5  # round, not truncate
        return out.astype(np.uint8)


def _soft_canvas(
    rng: np.random.Generator, size: tuple[int, int], height: int, level: tuple[float, ...]
) -> np.ndarray:
    """Heavily blurred low-amplitude noise on a vertical gradient, float32 (H, W, 3).

    Feature sizes follow the frame height, not the canvas, so a long pan shows the same
    kind of content as a short one.
    """
    width, tall = size
    noise = np.zeros((tall, width), dtype=np.float32)
    for cell, weight in ((0.6, 0.7), (0.2, 0.3)):  # coarse and finer octave, of the height
        cols, rows = max(2, round(width / (cell * height))), max(2, round(tall / (cell * height)))
        grid = rng.random((rows + 1, cols + 1), dtype=np.float32)
        noise += weight * cv2.resize(grid, (width, tall), interpolation=cv2.INTER_CUBIC)
    noise = cv2.GaussianBlur(noise, (0, 0), 0.03 * height)
    noise = 2.0 * (noise - noise.mean()) / max(float(np.ptp(noise)), 1e-6)  # about [-1, 1]
    ramp = np.linspace(0.5, -0.5, tall, dtype=np.float32)[:, None] * PAN_GRADIENT
    shade = 1.0 + PAN_CONTRAST * noise + ramp
    return np.stack([shade * c for c in level], axis=-1).astype(np.float32)


class FaintBlob:
    """A soft round brightening that drifts straight across the frame during a pan."""

    def __init__(self, rng: np.random.Generator, width: int, height: int, span: int) -> None:
        self.sigma = 0.08 * min(width, height)
        lo, hi = [0.2 * width, 0.2 * height], [0.8 * width, 0.8 * height]
        self.start, self.end = rng.uniform(lo, hi), rng.uniform(lo, hi)
        self.span = span

    def add(self, out: np.ndarray, s: int) -> None:
        """Add the blob at path step `s` to `out` (H, W, 3) float32, in place.

        Only within 4 sigma of its centre (beyond, it adds < 0.01 of a grey level): at 720p
        a whole-frame Gaussian cost five times the rest of the frame.
        """
        x, y = self.start + (self.end - self.start) * (s / self.span)
        reach = math.ceil(4 * self.sigma)
        height, width = out.shape[:2]
        x0, x1 = max(0, round(x) - reach), min(width, round(x) + reach + 1)
        y0, y1 = max(0, round(y) - reach), min(height, round(y) + reach + 1)
        gx = np.exp(-(((np.arange(x0, x1) - x) / self.sigma) ** 2) / 2).astype(np.float32)
        gy = np.exp(-(((np.arange(y0, y1) - y) / self.sigma) ** 2) / 2).astype(np.float32)
        out[y0:y1, x0:x1] += (FAINT_SHAPE_LEVEL * np.outer(gy, gx))[..., None]


@dataclass(frozen=True)
class Flash:
    """Local frames [start, start + len(strengths)) of a shot, each pulled towards white."""

    start: int
    strengths: tuple[float, ...]

    def frames(self) -> range:
        return range(self.start, self.start + len(self.strengths))


def plan_flash(seed: int, length: int, prob: float) -> Flash | None:
    """The flash in the shot seeded `seed` (`length` frames), or None; with `prob` 0 never."""
    if prob <= 0:
        return None
    rng = np.random.default_rng([seed, FLASH_SALT])
    if rng.random() >= prob:
        return None
    count = int(rng.integers(FLASH_FRAMES[0], FLASH_FRAMES[1] + 1))
    room = length - count - 2 * FLASH_EDGE
    if room < 0:  # too short to keep ordinary frames on both sides
        return None
    start = FLASH_EDGE + int(rng.integers(room + 1))
    strengths = tuple(float(s) for s in rng.uniform(*FLASH_STRENGTH, size=count))
    return Flash(start, strengths)


class FlashRenderer:
    """A shot's own frames, with its flash frames brightened (the same content, lit up)."""

    def __init__(self, shot: Renderer, flash: Flash) -> None:
        self.shot, self.flash = shot, flash

    def frame(self, t: int) -> np.ndarray:
        out = self.shot.frame(t)
        if t in self.flash.frames():
            strength = self.flash.strengths[t - self.flash.start]
            lit = out.astype(np.float32) + (255.0 - out) * strength
            out = (lit + 0.5).astype(np.uint8)
        return out


def fade_length(rng: np.random.Generator, cfg: SynthConfig, ramp: int) -> int:
    """Frames of a fade through black: a `ramp`-frame fade out, black, a `ramp`-frame fade in."""
    return 2 * ramp + cfg.frames(float(rng.uniform(*FADE_HOLD_S)))


def fade_parts(start: int, end: int, ramp: int) -> tuple[int, int]:
    """(black_start, black_end) of the fade on frames [start, end)."""
    return start + ramp, end - ramp


def fade_frames(
    before: Renderer, after: Renderer, n_before: int, length: int, ramp: int
) -> Iterator[np.ndarray]:
    """The frames of a fade: both shots keep moving while they dim (like a dissolve)."""
    dimmed = np.zeros(0, dtype=np.uint8)
    for i in range(ramp):
        dimmed = _dim(before.frame(n_before + i), 1.0 - (i + 1) / (ramp + 1))
        yield dimmed
    black = np.zeros_like(dimmed)
    yield from (black for _ in range(length - 2 * ramp))
    for i in range(ramp):
        yield _dim(after.frame(i - ramp), (i + 1) / (ramp + 1))


def _dim(frame: np.ndarray, weight: float) -> np.ndarray:
    return (frame.astype(np.float32) * weight + 0.5).astype(np.uint8)
