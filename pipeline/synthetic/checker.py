"""Read a shapes-world video back: which colour, which shape, which way it moves.

The checker of `clipmill evaluate`. It must work on ground-truth footage at any
size and on a tiny diffusion model's blurry 32x32 samples, so it uses no learned
model and nothing that needs sharp edges:

- object: the world's backgrounds are dark (max channel <= ~110 of 255) and its
  shapes bright (>= ~200), so the object is the connected bright region around
  the frame's brightest point, with its soft coverage (alpha) measured against
  the background ring around it;
- colour: the mean colour of its core, scaled to unit brightness, nearest of the
  five reference colours (so a dim, blurred red is still red);
- shape: moments of the soft alpha, which blur shifts but does not reorder:
  the apex-up triangle is skewed (third moment), a square's projection onto its
  axes is flatter than onto its diagonals (fourth moment), a circle's is the same
  in every direction;
- direction: a least-squares line through the centroid track; the larger of the
  two slopes, and its sign, if the object travels far enough to count as moving.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.synthetic.vocab import COLOURS, DIRECTIONS

MIN_CONTRAST = 40.0  # brightest point above the background median, of 255: else no object
MAX_AREA = 0.25  # an "object" covering more of the frame than this is not one shape
# Of the short side squared: the world's shapes cover 4% (triangles 2%); a few bright
# pixels of noise are not an object (an untrained model's samples are all noise).
MIN_AREA = 0.01
MIN_FILL = 0.35  # of its bounding box: a triangle fills ~0.5, a circle ~0.8
MIN_TRAVEL = 0.03  # of the frame's short side over the clip: less is "not moving"
# Shape thresholds on the moment features (calibrated on synth clips, 32-256 px).
TRIANGLE_SKEW = 0.48
SQUARE_KURT_GAP = -0.45

_REFS = {name: np.array(rgb, np.float32) / max(rgb) for name, rgb in COLOURS.items()}


@dataclass(frozen=True)
class Detection:
    """The object in one frame: centroid (x, y) in pixels, soft area, colour name, features."""

    x: float
    y: float
    area: float
    colour: str
    skew: float  # upward third cumulant of y, scaled: ~0.87 for the apex-up triangle, 0 else
    kurt_gap: float  # axis minus diagonal kurtosis of the projections: < 0 for a square


def find_object(frame: np.ndarray) -> Detection | None:
    """The bright object in an RGB uint8 frame (H, W, 3), or None if there is none."""
    rgb = frame.astype(np.float32)
    value = rgb.max(axis=2)
    background = float(np.median(value))
    peak_y, peak_x = np.unravel_index(int(np.argmax(cv2.blur(value, (2, 2)))), value.shape)
    peak = float(value[peak_y, peak_x])
    if peak - background < MIN_CONTRAST:
        return None
    mask = (value > (background + peak) / 2).astype(np.uint8)
    _, labels = cv2.connectedComponents(mask, connectivity=4)
    core = labels == labels[peak_y, peak_x]
    if core.sum() < MIN_AREA * min(value.shape) ** 2 or core.mean() > MAX_AREA:
        return None
    ys, xs = np.nonzero(core)
    box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    if core.sum() < MIN_FILL * box:  # stringy: bright specks joined up, not a filled shape
        return None
    alpha = _soft_alpha(value, core)
    colour = _colour(rgb, core, value)
    skew, kurt_gap = _moment_features(alpha)
    ys, xs = np.mgrid[: alpha.shape[0], : alpha.shape[1]]
    area = float(alpha.sum())
    x, y = float((alpha * xs).sum() / area), float((alpha * ys).sum() / area)
    return Detection(x, y, area, colour, skew, kurt_gap)


def _soft_alpha(value: np.ndarray, core: np.ndarray) -> np.ndarray:
    """Coverage in [0, 1] around `core`: 0 at the surrounding background, 1 inside.

    The texture varies over the frame, so the background level is the median of
    a ring just outside the object, not of the whole frame.
    """
    size = max(3, round(0.15 * np.sqrt(core.sum())) * 2 + 1)
    kernel = np.ones((size, size), np.uint8)
    near = cv2.dilate(core.astype(np.uint8), kernel).astype(bool)
    ring = cv2.dilate(near.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~near
    low = float(np.median(value[ring])) if ring.any() else float(np.median(value[~near]))
    high = float(np.percentile(value[core], 95))
    alpha = np.clip((value - low) / max(high - low, 1.0), 0.0, 1.0)
    return np.where(near, alpha, 0.0).astype(np.float64)


def _colour(rgb: np.ndarray, core: np.ndarray, value: np.ndarray) -> str:
    """Nearest reference colour to the core's brightest half, both scaled to unit brightness."""
    inside = value[core]
    bright = core & (value >= np.median(inside))
    mean = rgb[bright].mean(axis=0)
    unit = mean / max(float(mean.max()), 1.0)
    return min(_REFS, key=lambda name: float(np.sum((unit - _REFS[name]) ** 2)))


def _moment_features(alpha: np.ndarray) -> tuple[float, float]:
    """(skew, kurt_gap) of the alpha-weighted pixel distribution (see Detection).

    Cumulants, not normalised moments: blurring adds a Gaussian, whose third and
    fourth cumulants are zero, so κ3 and κ4 of every projection survive blur. They
    are scaled by the shape's own variance, estimated from the area (also kept by
    blur) as A/12 (a square's; a circle's is A/12.6), so a sharp square scores
    kurt_gap -0.6 and a sharp apex-up triangle skew 0.87 at any size and blur.
    """
    ys, xs = np.mgrid[: alpha.shape[0], : alpha.shape[1]]
    area = float(alpha.sum())
    w = alpha / area
    dx, dy = xs - (w * xs).sum(), ys - (w * ys).sum()

    def cumulants(p: np.ndarray) -> tuple[float, float]:
        var = float((w * p * p).sum())
        return float((w * p**3).sum()), float((w * p**4).sum()) - 3 * var * var

    scale = area / 12.0
    kx, (sy, ky) = cumulants(dx)[1], cumulants(dy)
    k1 = cumulants((dx + dy) / np.sqrt(2))[1]
    k2 = cumulants((dx - dy) / np.sqrt(2))[1]
    return -sy / scale**1.5, (kx + ky - k1 - k2) / 2 / scale**2


def classify_shape(skew: float, kurt_gap: float) -> str:
    if skew > TRIANGLE_SKEW:
        return "triangle"
    return "square" if kurt_gap < SQUARE_KURT_GAP else "circle"


def classify_direction(xs: np.ndarray, ys: np.ndarray, frames: np.ndarray, short: int) -> str:
    """'left'/'right'/'up'/'down' from the centroid track, or 'none' if it barely moves."""
    if len(frames) < 2:
        return "none"
    vx = float(np.polyfit(frames, xs, 1)[0])
    vy = float(np.polyfit(frames, ys, 1)[0])
    span = float(frames[-1] - frames[0])
    if max(abs(vx), abs(vy)) * span < MIN_TRAVEL * short:
        return "none"
    step = (int(np.sign(vx)), 0) if abs(vx) >= abs(vy) else (0, int(np.sign(vy)))
    return next(name for name, unit in DIRECTIONS.items() if unit == step)


def _vote(labels: list[str]) -> str:
    names, counts = np.unique(labels, return_counts=True)
    return str(names[int(np.argmax(counts))])


def check_video(frames: np.ndarray) -> dict:
    """Colour, shape, direction, persistence and track smoothness of one clip [T, H, W, 3]."""
    n, height, width = frames.shape[:3]
    found = [(t, d) for t in range(n) if (d := find_object(frames[t])) is not None]
    if not found:
        return {"colour": "none", "shape": "none", "direction": "none", "persistence": 0.0,
                "track_residual": None}  # fmt: skip
    ts = np.array([t for t, _ in found], np.float64)
    xs = np.array([d.x for _, d in found])
    ys = np.array([d.y for _, d in found])
    skew = float(np.median([d.skew for _, d in found]))
    gap = float(np.median([d.kurt_gap for _, d in found]))
    residual = None
    if len(found) >= 3:
        # Smoothness: how far the track strays from a steady straight line, in frame fractions.
        fit_x = np.polyval(np.polyfit(ts, xs, 1), ts)
        fit_y = np.polyval(np.polyfit(ts, ys, 1), ts)
        residual = float(np.sqrt(np.mean((xs - fit_x) ** 2 + (ys - fit_y) ** 2)))
        residual /= min(height, width)
    return {
        "colour": _vote([d.colour for _, d in found]),
        "shape": classify_shape(skew, gap),
        "direction": classify_direction(xs, ys, ts, min(height, width)),
        "persistence": len(found) / n,
        "track_residual": residual,
        "features": {"skew": round(skew, 4), "kurt_gap": round(gap, 4)},
    }
