"""A long video's split analysis in spans, on several workers, joined into the whole's result.

The split stage's analysis decode reads a whole video on one worker; an hour-long recording
then holds one worker for the whole decode while the others wait. With `--split.chunk_s`, a
long video is cut into spans of frames (`plan_spans`), each analysed by its own worker:

- a span decodes its own frames plus `context_frames` on both sides (the flash filter's,
  the dissolve guard's and the detectors' look-around), seeking to a keyframe before them;
- it keeps per-frame *features* for its own frames only: blank flags, the low-res samples
  and statistics, the cuts its detector found there, TransNetV2's raw scores, the dissolve
  guard's flagged centres and the flash frames (`Detection.features`);
- the last span to finish joins the features and makes every decision once over the whole
  (`Detection.decide`: TransNetV2's thresholds and transition runs, the guard's widening,
  flash cuts), exactly as the one-worker analysis decides them.

Span starts are multiples of `SPAN_ALIGN` frames, so TransNetV2's windows and batches are
the whole video's own. A span that sees any sign of damage (a decode error, a missing or
doubled frame) makes the whole video be analysed in one piece instead, as without spans.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.stages.detectors import (
    FlashFilter,
    SoftTransitionGuard,
    TransNetDetector,
    cuts_from_scores,
    flash_runs,
    long_runs,
    widen,
)

# Span starts: a multiple of TransNetV2's batch of windows (4 windows of 50 frames).
SPAN_ALIGN = TransNetDetector.STEP * 4
# Extra look-around of a span's decode, beyond each detector's own window: PySceneDetect's
# adaptive average and its merging of close cuts settle within a second or two.
SETTLE_S = 2.0


@dataclass(frozen=True)
class Span:
    """Frames [start, end) of a video (end None: to its last frame)."""

    start: int = 0
    end: int | None = None

    def owns(self, index: int) -> bool:
        return index >= self.start and (self.end is None or index < self.end)


def plan_spans(n_frames: int, fps: float, chunk_s: float | None) -> list[Span]:
    """The spans of a video of `n_frames`: about `chunk_s` each, the last one up to twice
    that (a short remainder joins it). One span (the whole) when it is not that long."""
    if chunk_s is None:
        return [Span()]
    size = max(SPAN_ALIGN, round(chunk_s * fps / SPAN_ALIGN) * SPAN_ALIGN)
    count = max(1, n_frames // size)
    spans = [Span(k * size, (k + 1) * size) for k in range(count - 1)]
    return [*spans, Span((count - 1) * size, None)]


def context_frames(fps: float, guard_k: int, flash_max: int) -> int:
    """Frames a span decodes on each side of its own: enough for every detector's window."""
    return TransNetDetector.CONTEXT + 2 * guard_k + flash_max + 2 + round(SETTLE_S * fps)


class Detection:
    """The cut detector and the dissolve guard, fed through the flash filter.

    `push` every frame in order; `features` then gives what a span keeps of it, and
    `decide` the cuts and the transition mask over all spans' features.
    """

    def __init__(
        self, det: Any, guard: SoftTransitionGuard | None, flash: FlashFilter | None
    ) -> None:
        self.det, self.guard, self.flash = det, guard, flash

    def push(self, index: int, rgb: np.ndarray) -> None:
        self._feed(self.flash.push(index, rgb) if self.flash is not None else [(index, rgb)])

    def _feed(self, frames: list[tuple[int, np.ndarray]]) -> None:
        for i, rgb in frames:
            if self.det is not None:
                self.det.push(i, rgb)
            if self.guard is not None:
                self.guard.push(i, rgb)

    def features(self, span: Span, count: int) -> dict[str, Any]:
        """What the span keeps of its `count` own frames (the decode ran past them, unless
        it is the video's last span, whose detectors are flushed here)."""
        last = span.end is None
        if last and self.flash is not None:
            self._feed(self.flash.finish())
        out: dict[str, Any] = {"cuts": [], "centres": [], "flash": []}
        if isinstance(self.det, TransNetDetector):
            single, many = self.det.scores(None if last else count)
            out.update(single=single[:count], many=many[:count])
        elif self.det is not None:
            out["cuts"] = [c for c in self.det.cuts(last) if span.owns(c)]
        if self.guard is not None:
            out["centres"] = [c for c in self.guard.centres if span.owns(c)]
        if self.flash is not None:
            out["flash"] = [i for i in self.flash.flagged if span.owns(i)]
        return out

    def decide(self, parts: list[dict[str, Any]], n: int) -> tuple[list[int], np.ndarray]:
        """(cut frames, transition mask over the n frames) from the spans' features, in order."""
        transition = np.zeros(n, bool)
        if isinstance(self.det, TransNetDetector):
            single = np.concatenate([p["single"] for p in parts])
            many = np.concatenate([p["many"] for p in parts])
            cuts = cuts_from_scores(single, self.det.threshold)
            transition |= long_runs(many > self.det.threshold, 3)
        else:
            cuts = sorted(c for p in parts for c in p["cuts"])
        if self.guard is not None:
            transition |= widen([c for p in parts for c in p["centres"]], self.guard.k, n)
        for s, e in flash_runs([i for p in parts for i in p["flash"]]):
            # Shown the frame before the flash in its place, a detector puts a cut between
            # two different shots at the flash's end (the first frame after it; one frame of
            # slack for TransNetV2's peak). Such a flash is a flash cut: a transition, excluded.
            if any(s <= c <= e + 1 for c in cuts):
                transition[s:e] = True
        return cuts, transition
