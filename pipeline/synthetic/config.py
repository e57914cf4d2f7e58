"""`SynthConfig`: everything that shapes the synthetic footage (`clipmill synth`'s flags).

Apart from `synth` (which films) and `world` (which draws) because both read it; it reads
only the vocabulary and the junk kinds below them.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.synthetic.junk import JUNK_KINDS
from pipeline.synthetic.vocab import all_combos

# The shape's side as a fraction of the frame's short side: 10 px when the trainer works at
# 32 px, where a 6-px shape (0.2) left a 600-step model at chance on shape and drawing specks.
# `clipmill demo`'s default and bench presets film 0.45 (14 px): shape is learned there
# (RESULTS.md, "Bigger shapes, again").
SHAPE_SIZE = 0.3


@dataclass(frozen=True)
class SynthConfig:
    """Everything that shapes the footage; errors name the `clipmill synth` flag."""

    videos: int = 20
    seed: int = 0
    width: int = 320
    height: int = 180
    fps: float = 24.0
    min_shot_s: float = 1.0
    max_shot_s: float = 6.0
    shots_per_video: tuple[int, int] = (3, 7)
    dissolve_prob: float = 0.25
    black_prob: float = 0.15
    long_shot: bool = True
    duration_s: float | None = None
    # Junk shots (pipeline/synthetic/junk.py): each shot is one with these probabilities.
    static_prob: float = 0.0
    flat_prob: float = 0.0
    blurry_prob: float = 0.0
    ad_prob: float = 0.0
    sign_prob: float = 0.0
    repeat_prob: float = 0.0
    miscaption_prob: float = 0.0
    # (colour, shape, direction) triples never filmed (`vocab.load_holdout`).
    holdout: tuple[tuple[str, str, str], ...] = ()
    # Shots that test transition detection (pipeline/synthetic/shots.py). At 0, nothing
    # is drawn for them, so footage made without them keeps its bytes.
    pan_prob: float = 0.0  # a shot is a slow pan over soft content
    pan_s: tuple[float, float] = (20.0, 60.0)  # a pan's length in seconds
    flash_prob: float = 0.0  # an ordinary shot has 1-3 flash frames
    fade_prob: float = 0.0  # a transition is a fade through black (after dissolve, black)
    shape_size: float = SHAPE_SIZE  # the shape's side / the frame's short side

    def junk_probs(self) -> dict[str, float]:
        return {kind: getattr(self, f"{kind}_prob") for kind in JUNK_KINDS}

    def __post_init__(self) -> None:
        checks = [
            (self.videos >= 1, "--videos must be >= 1"),
            (self.seed >= 0, "--seed must be >= 0"),
            (self.width >= 32 and self.width % 2 == 0, "--width must be even and >= 32"),
            (self.height >= 32 and self.height % 2 == 0, "--height must be even and >= 32"),
            (0 < self.fps <= 240, "--fps must be in (0, 240]"),
            (self.min_shot_s * self.fps >= 2, "--min-shot-s must span at least 2 frames"),
            (self.max_shot_s >= self.min_shot_s, "--max-shot-s must be >= --min-shot-s"),
            (
                1 <= self.shots_per_video[0] <= self.shots_per_video[1],
                "shots_per_video must be (lo, hi) with 1 <= lo <= hi",
            ),
            (
                self.dissolve_prob >= 0
                and self.black_prob >= 0
                and self.dissolve_prob + self.black_prob <= 1,
                "dissolve_prob and black_prob must be >= 0 and sum to <= 1",
            ),
            (
                self.duration_s is None or self.duration_s >= self.min_shot_s,
                "--duration-s must be >= --min-shot-s",
            ),
            (
                min(self.junk_probs().values()) >= 0 and sum(self.junk_probs().values()) <= 1,
                "--{static,flat,blurry,ad,sign,repeat,miscaption}-prob must be >= 0, sum <= 1",
            ),
            (
                set(self.holdout) <= set(all_combos()) and len(self.holdout) < len(all_combos()),
                "--holdout must list some, not all, (colour, shape, direction) triples",
            ),
            (0 <= self.pan_prob <= 1, "--pan-prob must be in [0, 1]"),
            (
                len(self.pan_s) == 2 and 0 < self.pan_s[0] <= self.pan_s[1],
                "--pan-s must be LO HI with 0 < LO <= HI",
            ),
            (0 <= self.flash_prob <= 1, "--flash-prob must be in [0, 1]"),
            (0 <= self.fade_prob <= 1, "--fade-prob must be in [0, 1]"),
            (0.05 <= self.shape_size <= 0.6, "--shape-size must be in [0.05, 0.6]"),
            (
                self.dissolve_prob + self.black_prob + self.fade_prob <= 1,
                "--fade-prob plus dissolve_prob and black_prob must be <= 1",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def frames(self, seconds: float) -> int:
        """Seconds to a whole number of frames (at least one)."""
        return max(1, round(seconds * self.fps))
