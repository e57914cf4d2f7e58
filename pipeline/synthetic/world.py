"""The synthetic world that `pipeline.synthetic.synth` films: shapes, colours, directions, captions.

Later stages (captioning, the shapes benchmark, training) rely on this closed
vocabulary, so it lives in one place. A shot is one filled shape of one colour
moving steadily in one direction over a dark, smooth, per-shot texture; the
background changes hue and pattern at every cut so that a cut is unmistakable
in pixels while each shot stays nearly static apart from the shape.

A video is laid out (`plan_video`) as contiguous segments (shots, black gaps,
dissolves; pans and fades from `shots`), drawn one frame at a time (`render_segments`),
and described exactly (`truth`). Everything random is drawn from a numpy Generator
passed in, so a seed fixes every pixel.
"""

from __future__ import annotations

import colorsys
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from pipeline.synthetic.config import SHAPE_SIZE, SynthConfig
from pipeline.synthetic.junk import JunkRenderer, draw_junk
from pipeline.synthetic.shots import (
    Flash,
    FlashRenderer,
    PanRenderer,
    Renderer,
    fade_frames,
    fade_length,
    plan_flash,
)
from pipeline.synthetic.vocab import (
    CAPTION_TEMPLATES,
    COLOURS,
    DIRECTIONS,
    SHAPES,
    Combo,
)

EDGE = 2  # pixels kept between the shape and the frame border
DISSOLVE_S = 0.5  # cross-fade length, and each ramp of a fade: 12 frames at 24 fps
LONG_SHOT_S = (10.0, 14.0)  # the one long shot of video 0, to exercise max-clip windowing
BLACK_S = (0.5, 1.5)

SegmentKind = Literal["shot", "black", "dissolve", "fade", "static", "flat", "blurry", "ad", "pan"]
# Kinds drawn from a shot's spec (everything but the gaps between shots).
SHOT_KINDS: tuple[str, ...] = ("shot", "static", "flat", "blurry", "ad", "pan")


@dataclass(frozen=True)
class ShotSpec:
    """What one shot shows; pixels are made later from `seed` by `ShotRenderer`."""

    colour: str
    shape: str
    direction: str
    caption: str
    hue: float  # background tint hue in [0, 1)
    seed: int  # seeds the texture and the motion path


def draw_spec(
    rng: np.random.Generator, previous: ShotSpec | None, exclude: Collection[Combo] = ()
) -> ShotSpec:
    """Draw a shot that differs from `previous` in content and in background hue.

    Triples in `exclude` (the held-out list) are redrawn; with none excluded the
    draws are exactly those of old footage, so its bytes do not change.
    """
    while True:
        colour = str(rng.choice(list(COLOURS)))
        shape = str(rng.choice(SHAPES))
        direction = str(rng.choice(list(DIRECTIONS)))
        combo = (colour, shape, direction)
        if combo in exclude:
            continue
        if previous is None or combo != (previous.colour, previous.shape, previous.direction):
            break
    template = CAPTION_TEMPLATES[int(rng.integers(len(CAPTION_TEMPLATES)))]
    caption = template.format(colour=colour, shape=shape, direction=direction)
    # At least a quarter turn of hue away, so consecutive backgrounds differ strongly.
    base = previous.hue if previous is not None else float(rng.random())
    hue = (base + float(rng.uniform(0.25, 0.75))) % 1.0
    return ShotSpec(colour, shape, direction, caption, hue, int(rng.integers(2**62)))


def make_background(rng: np.random.Generator, width: int, height: int, hue: float) -> np.ndarray:
    """A dark, smooth, tinted noise texture (H, W, 3) uint8.

    Two octaves of upsampled random grids: cheap to make once per shot and
    smooth enough that x264 spends its bits on the moving shape.
    """
    sat = rng.uniform(0.5, 0.9)
    val = rng.uniform(0.22, 0.35)
    tint = np.array(colorsys.hsv_to_rgb(hue, sat, val), dtype=np.float32) * 255.0
    shared = _smooth_noise(rng, width, height)
    texture = np.empty((height, width, 3), dtype=np.float32)
    for c in range(3):
        own = _smooth_noise(rng, width, height)
        texture[..., c] = tint[c] * (0.35 + 0.9 * (0.65 * shared + 0.35 * own))
    return np.clip(texture, 0, 255).astype(np.uint8)


def _smooth_noise(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Noise in [0, 1] with a coarse and a finer octave, float32 (H, W)."""
    total = np.zeros((height, width), dtype=np.float32)
    for cells, weight in ((int(rng.integers(3, 6)), 0.7), (int(rng.integers(10, 16)), 0.3)):
        rows = max(2, round(cells * height / max(width, height)))
        cols = max(2, round(cells * width / max(width, height)))
        grid = rng.random((rows, cols), dtype=np.float32)
        total += weight * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    lo, hi = float(total.min()), float(total.max())
    return (total - lo) / max(hi - lo, 1e-6)


def shape_alpha(shape: str, size: int) -> np.ndarray:
    """Anti-aliased coverage mask (size, size) float32 in [0, 1]: drawn 4x larger, then shrunk."""
    big = 4 * size
    canvas = np.zeros((big, big), dtype=np.uint8)
    if shape == "circle":
        cv2.circle(canvas, (big // 2, big // 2), big // 2 - 1, 255, thickness=-1)
    elif shape == "square":
        canvas[:, :] = 255
    elif shape == "triangle":
        points = np.array([[big // 2, 0], [0, big - 1], [big - 1, big - 1]], dtype=np.int32)
        cv2.fillPoly(canvas, [points], 255)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    small = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


class ShotRenderer:
    """Frames of one shot, for local frame indices in [-margin, n_frames + margin).

    The margin lets a dissolve keep both shots moving through the cross-fade;
    the path is planned over the whole span so the shape stays in frame.
    """

    def __init__(
        self,
        spec: ShotSpec,
        width: int,
        height: int,
        n_frames: int,
        margin: int = 0,
        shape_size: float = SHAPE_SIZE,
    ) -> None:
        rng = np.random.default_rng(spec.seed)
        self.width, self.height, self.margin = width, height, margin
        self.background = make_background(rng, width, height, spec.hue)
        self.size = max(4, round(shape_size * min(width, height)))
        alpha = shape_alpha(spec.shape, self.size)[..., None]
        self.alpha = alpha
        self.ink = alpha * np.array(COLOURS[spec.colour], dtype=np.float32)
        self.start, self.velocity = self._plan_path(rng, spec.direction, n_frames + 2 * margin)

    def _plan_path(
        self, rng: np.random.Generator, direction: str, span: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Start corner and per-frame velocity of a straight, steady path that stays in frame."""
        dx, dy = DIRECTIONS[direction]
        room = np.array([self.width, self.height], dtype=np.float64) - self.size - 2 * EDGE
        axis = 0 if dx else 1
        # Fast enough to register as motion, capped so short shots don't teleport.
        max_step = max(1.0, 0.02 * min(self.width, self.height))
        travel = min(room[axis] * rng.uniform(0.5, 0.95), max_step * max(span - 1, 1))
        start = EDGE + rng.uniform(0.0, 1.0, size=2) * room
        lo = EDGE + rng.uniform(0.0, room[axis] - travel)
        start[axis] = lo if (dx + dy) > 0 else lo + travel
        velocity = np.array([dx, dy], dtype=np.float64) * travel / max(span - 1, 1)
        return start, velocity

    def frame(self, t: int) -> np.ndarray:
        """RGB frame (H, W, 3) uint8 at local index t (0 is the shot's first frame)."""
        out = self.background.copy()
        x, y = np.rint(self.start + self.velocity * (t + self.margin)).astype(int)
        # Clip the sprite to the frame: the path keeps it inside, this is only a guard.
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + self.size, self.width), min(y + self.size, self.height)
        if x1 <= x0 or y1 <= y0:
            return out
        a = self.alpha[y0 - y : y1 - y, x0 - x : x1 - x]
        ink = self.ink[y0 - y : y1 - y, x0 - x : x1 - x]
        region = out[y0:y1, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] = (region * (1.0 - a) + ink + 0.5).astype(np.uint8)
        return out


def crossfade(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    """(1 - weight) * a + weight * b, rounded, uint8."""
    mixed = a.astype(np.float32) * (1.0 - weight) + b.astype(np.float32) * weight
    return (mixed + 0.5).astype(np.uint8)


@dataclass(frozen=True)
class Segment:
    """Frames [start, end) of a video; `spec` is set for shot kinds only."""

    start: int
    end: int
    kind: SegmentKind
    spec: ShotSpec | None = None
    overlay: str | None = None  # "sign": small natural text on an ordinary shot
    repeat_of: tuple[str, int] | None = None  # (file, shot index) this shot repeats
    sidecar: str | None = None  # "miscaption" junk: the sidecar's (wrong) text for this shot
    flash: Flash | None = None  # bright frames inside an ordinary shot (`shots.plan_flash`)

    @property
    def length(self) -> int:
        return self.end - self.start


def dissolve_frames(fps: float) -> int:
    """Cross-fade length in frames at `fps` (also the path margin of every shot)."""
    return max(4, round(DISSOLVE_S * fps))


def render_segments(
    segments: Sequence[Segment],
    width: int,
    height: int,
    fps: float,
    shape_size: float = SHAPE_SIZE,
) -> Iterator[np.ndarray]:
    """RGB frames of a planned video, one at a time (never the whole video in memory)."""
    margin = dissolve_frames(fps)
    renderers: dict[int, Renderer] = {}

    def renderer(k: int) -> Renderer:
        if k not in renderers:
            renderers[k] = _renderer(segments[k], width, height, fps, margin, shape_size)
        return renderers[k]

    black = np.zeros((height, width, 3), dtype=np.uint8)
    for k, seg in enumerate(segments):
        for old in [key for key in renderers if key < k - 1]:
            del renderers[old]  # keep at most the shots around a dissolve
        if seg.kind in SHOT_KINDS:
            shot = renderer(k)
            yield from (shot.frame(t) for t in range(seg.length))
        elif seg.kind == "black":
            yield from (black for _ in range(seg.length))
        elif seg.kind == "fade":
            before, after = renderer(k - 1), renderer(k + 1)
            yield from fade_frames(before, after, segments[k - 1].length, seg.length, margin)
        else:
            # Both shots keep moving through the cross-fade (their paths have a margin).
            before, after = renderer(k - 1), renderer(k + 1)
            n_before = segments[k - 1].length
            for i in range(seg.length):
                weight = (i + 1) / (seg.length + 1)
                a, b = before.frame(n_before + i), after.frame(i - seg.length)
                yield crossfade(a, b, weight)


def _renderer(
    seg: Segment, width: int, height: int, fps: float, margin: int, shape_size: float
) -> Renderer:
    """What draws a shot segment: its kind's renderer, under its junk and its flash."""
    assert seg.spec is not None, "only shot segments are rendered from a spec"
    if seg.kind == "pan":
        return PanRenderer(seg.spec.seed, width, height, seg.length, margin, fps)
    shot: Renderer = ShotRenderer(seg.spec, width, height, seg.length, margin, shape_size)
    if seg.kind != "shot" or seg.overlay is not None:
        shot = JunkRenderer(seg.kind, seg.overlay, shot, seg.spec.seed)
    return FlashRenderer(shot, seg.flash) if seg.flash is not None else shot


def plan_video(
    rng: np.random.Generator,
    cfg: SynthConfig,
    with_long_shot: bool,
    pool: list[tuple[str, int, Segment]] | None = None,
    name: str = "",
) -> list[Segment]:
    """Lay out shots and the transitions between them as contiguous segments.

    `pool` collects the plain shots of every video planned so far (`name` is this
    video's file): a `repeat` junk shot copies one of them, from this video or an earlier one.
    """
    min_frames = cfg.frames(cfg.min_shot_s)
    target = cfg.frames(cfg.duration_s) if cfg.duration_s is not None else None
    n_shots = int(rng.integers(cfg.shots_per_video[0], cfg.shots_per_video[1] + 1))
    long_index = (0 if target is not None else int(rng.integers(n_shots))) if with_long_shot else -1
    pool = [] if pool is None else pool
    segments: list[Segment] = []
    cursor, spec, index, last = 0, None, 0, False
    while not last:
        seconds = (
            rng.uniform(*LONG_SHOT_S)
            if index == long_index
            else rng.uniform(cfg.min_shot_s, cfg.max_shot_s)
        )
        length = max(min_frames, cfg.frames(seconds))
        gap_kind, gap = _draw_transition(rng, cfg) if index > 0 else ("hard", 0)
        junk, repeat, length = _draw_kind(rng, cfg, pool, segments, length)
        if target is not None and cursor + gap + length > target - min_frames:
            # Last shot: it takes what is left; drop the gap if that would starve it.
            if target - cursor - gap < min_frames:
                gap_kind, gap = "hard", 0
            length, last, repeat = target - cursor - gap, True, None
        previous = spec
        spec = draw_spec(rng, spec, cfg.holdout) if repeat is None else repeat[2].spec
        if gap:
            segments.append(Segment(cursor, cursor + gap, gap_kind))
            cursor += gap
        kind = junk if junk in ("static", "flat", "blurry", "ad", "pan") else "shot"
        seg = Segment(
            cursor, cursor + length, kind, spec,  # type: ignore[arg-type]
            overlay="sign" if junk == "sign" else None,
            repeat_of=(repeat[0], repeat[1]) if repeat is not None else None,
            # Misaligned subtitles: the cue of this shot still says what the previous one showed.
            sidecar=previous.caption if junk == "miscaption" and previous is not None else None,
            flash=plan_flash(spec.seed, length, cfg.flash_prob) if kind == "shot" else None,
        )  # fmt: skip
        segments.append(seg)
        plain = seg.overlay is None and seg.repeat_of is None and seg.sidecar is None
        if kind == "shot" and plain:
            pool.append((name, len(segments) - 1, seg))
        cursor += length
        index += 1
        last = last or (target is None and index == n_shots)
    return segments


def _draw_kind(
    rng: np.random.Generator,
    cfg: SynthConfig,
    pool: list[tuple[str, int, Segment]],
    segments: list[Segment],
    length: int,
) -> tuple[str | None, tuple[str, int, Segment] | None, int]:
    """(kind, repeat, length) of the next shot: "pan", a junk kind or None (ordinary), the
    shot a repeat copies, and its length. Each is drawn only when asked for, so footage
    without pans or junk keeps its bytes. Never two pans in a row: a cut or dissolve
    between two soft, pale backgrounds would be in the truth but hardly in the pixels."""
    after_pan = bool(segments) and segments[-1].kind == "pan"
    if cfg.pan_prob > 0 and not after_pan and rng.random() < cfg.pan_prob:
        return "pan", None, max(cfg.frames(cfg.min_shot_s), cfg.frames(rng.uniform(*cfg.pan_s)))
    probs = cfg.junk_probs()
    junk = draw_junk(rng, probs) if any(probs.values()) else None
    repeat = _pick_repeat(rng, pool, segments) if junk == "repeat" else None
    if repeat is not None:
        length = repeat[2].length  # frame for frame: same spec, same length, same path
    return junk, repeat, length


def _pick_repeat(
    rng: np.random.Generator, pool: list[tuple[str, int, Segment]], segments: list[Segment]
) -> tuple[str, int, Segment] | None:
    """An earlier plain shot to repeat, never the one just before (that would hide the cut)."""
    previous = next((s for s in reversed(segments) if s.spec is not None), None)
    choices = [p for p in pool if p[2] is not previous]
    return choices[int(rng.integers(len(choices)))] if choices else None


def _draw_transition(rng: np.random.Generator, cfg: SynthConfig) -> tuple[str, int]:
    """The transition before a shot: ("hard", 0), ("dissolve", n), ("black", n) or ("fade", n).

    Fades come last in the draw, so with `fade_prob` 0 the draws are those of old footage."""
    draw = rng.random()
    if draw < cfg.dissolve_prob:
        return "dissolve", dissolve_frames(cfg.fps)
    if draw < cfg.dissolve_prob + cfg.black_prob:
        return "black", cfg.frames(rng.uniform(*BLACK_S))
    if draw < cfg.dissolve_prob + cfg.black_prob + cfg.fade_prob:
        return "fade", fade_length(rng, cfg, dissolve_frames(cfg.fps))
    return "hard", 0
