"""The bad shots that poison a small dataset, for the filter tests and the demo.

Real footage is full of shots a text-to-video model must not learn from:
slides and frozen frames, flat grey slates, out-of-focus shots, burned-in
ads, and the same shot used twice. `clipmill synth --static-prob 0.1 …` mixes
them into the synthetic world, labelled in `truth.json`, so each filter can be
scored on a shot built to trip it (and on one built to pass it: a small sign).

Kinds (truth `kind`, or `overlay` / `repeat_of` on an ordinary shot):
- `static`  a noisy still: the shot's first frame, frozen, with film grain (fails motion)
- `flat`    a near-uniform grey slate (fails blank, not black so the splitter keeps it)
- `blurry`  an ordinary shot under a heavy Gaussian blur (fails blur)
- `ad`      an ordinary shot under a full-frame advert with three lines of text (fails text)
- `sign`    an ordinary shot with a small "EXIT" sign in a corner (`overlay: "sign"`; passes)
- `repeat`  an earlier shot (this video's or an earlier video's) again, frame for frame
            (`repeat_of: {"file", "shot"}`; dedup keeps one)
- `miscaption` an ordinary shot whose sidecar cue describes the previous shot, as
            misaligned subtitles do (`sidecar_caption`; the truth `caption` stays right)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

# Cumulative draw order; a kind's probability is a SynthConfig field `{kind}_prob`.
# New kinds go last: with their probability 0 the draws (and old footage's bytes) stay the same.
JUNK_KINDS: tuple[str, ...] = ("static", "flat", "blurry", "ad", "sign", "repeat", "miscaption")
AD_LINES = ("MEGA SALE", "50% OFF", "CALL 555 0199")
SIGN_TEXT = "EXIT"
BLUR_SIGMA = 0.035  # of the frame width: at the 96 px analysis width still ~3 px
GRAIN_STD = 12.0
FLAT_STD = 1.5


def draw_junk(rng: np.random.Generator, probs: dict[str, float]) -> str | None:
    """One draw: which junk kind the next shot is, or None for an ordinary shot."""
    u, edge = float(rng.random()), 0.0
    for kind in JUNK_KINDS:
        edge += probs.get(kind, 0.0)
        if u < edge:
            return kind
    return None


def _font_scale(height: int, base: float) -> float:
    return base * height / 180.0


def add_ad(frame: np.ndarray) -> np.ndarray:
    """A bright advert box over most of the frame with three lines of large text."""
    out = frame.copy()
    h, w = out.shape[:2]
    cv2.rectangle(out, (w // 20, h // 15), (w - w // 20, h - h // 15), (250, 230, 40), -1)
    scale, thick = _font_scale(h, 1.1), max(1, round(3 * h / 180))
    for i, line in enumerate(AD_LINES):
        y = round(h * (0.3 + 0.25 * i))
        cv2.putText(
            out, line, (w // 10, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), thick,
            cv2.LINE_AA,
        )  # fmt: skip
    return out


def add_sign(frame: np.ndarray) -> np.ndarray:
    """A small green sign in the top-right corner: natural text that must not reject a clip."""
    out = frame.copy()
    h, w = out.shape[:2]
    x0, y0, x1, y1 = round(0.75 * w), round(0.11 * h), round(0.94 * w), round(0.23 * h)
    cv2.rectangle(out, (x0, y0), (x1, y1), (30, 120, 40), -1)
    org = (x0 + round(0.02 * w), y1 - round(0.03 * h))
    scale, thick = _font_scale(h, 0.45), max(1, round(h / 180))
    cv2.putText(
        out, SIGN_TEXT, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA
    )
    return out


def blur(frame: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(frame, (0, 0), BLUR_SIGMA * frame.shape[1])


def grain(frame: np.ndarray, seed: int, std: float) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, std, frame.shape)
    return np.clip(frame.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def flat_frame(width: int, height: int, hue_seed: int) -> np.ndarray:
    """Mid-grey with a faint tint and faint noise: a slate, a lens cap under lights."""
    rng = np.random.default_rng(hue_seed)
    level = rng.uniform(110, 150) + rng.uniform(-8, 8, size=3)
    base = np.broadcast_to(level.astype(np.float32), (height, width, 3))
    return grain(base.astype(np.uint8), hue_seed, FLAT_STD)


class JunkRenderer:
    """`frame(t)` of a junk or overlaid shot, built on the ordinary shot's renderer."""

    def __init__(self, kind: str, overlay: str | None, shot: Any, seed: int) -> None:
        self.shot = shot
        post: Callable[[np.ndarray], np.ndarray] = lambda f: f  # noqa: E731
        if kind == "blurry":
            post = blur
        elif kind == "ad":
            post = add_ad
        if overlay == "sign":
            post = add_sign
        self.post = post
        self.still: np.ndarray | None = None
        if kind == "static":
            self.still = grain(shot.frame(0), seed, GRAIN_STD)
        elif kind == "flat":
            self.still = flat_frame(shot.width, shot.height, seed)

    def frame(self, t: int) -> np.ndarray:
        if self.still is not None:
            return self.still
        return self.post(self.shot.frame(t))
