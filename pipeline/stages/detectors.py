"""Online shot-boundary detectors over the low-resolution frames of one decode.

Every detector sees each frame once, in order (`push`), and holds only a small
window, so memory stays flat for any video length. `finish` returns cut frames
(index of the first frame of a new shot) and transition frames to exclude.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import numpy as np


class Detector(Protocol):
    def push(self, index: int, rgb: np.ndarray) -> None: ...
    def finish(self) -> tuple[list[int], np.ndarray]:
        """(cut frames, boolean mask of transition frames or an empty array)."""
        ...


class SceneDetectDetector:
    """PySceneDetect's ContentDetector / AdaptiveDetector, fed our frames directly."""

    def __init__(self, kind: str, fps: float, threshold: float) -> None:
        from scenedetect import FrameTimecode
        from scenedetect.detectors import AdaptiveDetector, ContentDetector

        self._tc, self._fps = FrameTimecode, fps
        # min_scene_len is tiny on purpose: short scenes become `too_short` rows
        # downstream instead of being merged into a neighbour across a real cut.
        if kind == "adaptive":
            self._det = AdaptiveDetector(adaptive_threshold=threshold, min_scene_len=2)
        else:
            self._det = ContentDetector(threshold=threshold, min_scene_len=2)
        self._cuts: list[int] = []
        self._last = -1

    def push(self, index: int, rgb: np.ndarray) -> None:
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        self._cuts += [
            int(t.frame_num) for t in self._det.process_frame(self._tc(index, self._fps), bgr)
        ]
        self._last = index

    def finish(self) -> tuple[list[int], np.ndarray]:
        if self._last >= 0:
            self._cuts += [
                int(t.frame_num) for t in self._det.post_process(self._tc(self._last, self._fps))
            ]
        return sorted({c for c in self._cuts if 0 < c <= self._last}), np.zeros(0, bool)


class TransNetDetector:
    """TransNetV2 over sliding 100-frame windows (step 50), streamed, batched.

    Mirrors `TransNetV2.predict_frames` (25 frames of context each side, the
    first/last frame repeated at the ends) without holding the whole video.
    """

    WINDOW, STEP, CONTEXT = 100, 50, 25

    def __init__(self, model, threshold: float, batch_windows: int = 4) -> None:
        self.model, self.threshold, self.batch_windows = model, threshold, batch_windows
        self._buf: list[np.ndarray] = []
        self._pending: list[np.ndarray] = []
        self._single: list[np.ndarray] = []
        self._many: list[np.ndarray] = []
        self._n = 0

    @staticmethod
    def _small(rgb: np.ndarray) -> np.ndarray:
        import cv2

        return cv2.resize(rgb, (48, 27), interpolation=cv2.INTER_AREA)

    def push(self, index: int, rgb: np.ndarray) -> None:
        small = self._small(rgb)
        if not self._buf:
            self._buf = [small] * self.CONTEXT
        self._buf.append(small)
        self._n += 1
        self._drain(final=False)

    def _drain(self, final: bool) -> None:
        while len(self._buf) >= self.WINDOW:
            self._pending.append(np.stack(self._buf[: self.WINDOW]))
            self._buf = self._buf[self.STEP :]
            if len(self._pending) >= self.batch_windows:
                self._run()
        if final:
            self._run()

    def _run(self) -> None:
        import torch

        if not self._pending:
            return
        batch = torch.from_numpy(np.stack(self._pending)).to(self.model.device)
        with torch.no_grad():
            single, many = self.model.predict_raw(batch)
        lo, hi = self.CONTEXT, self.CONTEXT + self.STEP
        self._single += list(single[:, lo:hi, 0].cpu().numpy())
        self._many += list(many[:, lo:hi, 0].cpu().numpy())
        self._pending = []

    def finish(self) -> tuple[list[int], np.ndarray]:
        if self._n == 0:
            return [], np.zeros(0, bool)
        # Pad with the last frame until every real frame sat in a window's centre.
        last = self._buf[-1]
        while (len(self._single) + len(self._pending)) * self.STEP < self._n:
            self._buf.append(last)
            self._drain(final=False)
        self._run()
        single = np.concatenate(self._single)[: self._n]
        many = np.concatenate(self._many)[: self._n]
        return cuts_from_scores(single, self.threshold), long_runs(many > self.threshold, 3)


def long_runs(mask: np.ndarray, min_len: int) -> np.ndarray:
    """Keep only runs of True at least `min_len` long (a 1-2 frame run is a hard cut,
    which the cut list already handles; longer ones are dissolves/fades to exclude)."""
    out = np.zeros_like(mask)
    i, n = 0, len(mask)
    while i < n:
        if not mask[i]:
            i += 1
            continue
        j = i
        while j < n and mask[j]:
            j += 1
        if j - i >= min_len:
            out[i:j] = True
        i = j
    return out


def cuts_from_scores(scores: np.ndarray, threshold: float) -> list[int]:
    """One cut per run of frames above threshold, at its peak (the first frame of the new shot
    is the one after the peak for a hard cut, the middle for a gradual transition)."""
    above = scores > threshold
    cuts, i, n = [], 0, len(scores)
    while i < n:
        if not above[i]:
            i += 1
            continue
        j = i
        while j < n and above[j]:
            j += 1
        peak = i + int(np.argmax(scores[i:j]))
        cut = peak + 1 if j - i <= 2 else (i + j) // 2
        if 0 < cut < n:
            cuts.append(cut)
        i = j
    return cuts


class SoftTransitionGuard:
    """Flags dissolves and fades: frames that are a linear blend of their neighbours.

    In a cross-fade, frame i ≈ (frame[i-k] + frame[i+k]) / 2 while frame[i-k]
    and frame[i+k] differ a lot. Object motion, pans and hard cuts all leave a
    large residual from that average, so they are not flagged. Cheap: grey
    frames at analysis size, a window of 2k+1.
    """

    # Thresholds measured on synthetic dissolves between dark shots: blends change
    # ≥ 10 (mean |RGB| of frames 2k apart) with residual ≤ 0.15 of it; within
    # shots the residual stayed ≥ 0.27 of the change.
    def __init__(self, k: int, min_change: float = 6.0, max_ratio: float = 0.2) -> None:
        self.k, self.min_change, self.max_ratio = k, min_change, max_ratio
        self._win: deque[np.ndarray] = deque(maxlen=2 * k + 1)
        self._flags: list[bool] = []

    def push(self, index: int, rgb: np.ndarray) -> None:
        self._win.append(rgb.astype(np.float32))
        if len(self._win) == self._win.maxlen:
            a, mid, b = self._win[0], self._win[self.k], self._win[-1]
            change = float(np.abs(b - a).mean())
            resid = float(np.abs(mid - (a + b) / 2).mean())
            self._flags.append(change > self.min_change and resid < self.max_ratio * change)

    def finish(self, n: int) -> np.ndarray:
        """Mask over all n frames, each flagged run widened by k on both sides."""
        mask = np.zeros(n, bool)
        centre = np.zeros(n, bool)
        flags = np.array(self._flags, bool)
        centre[self.k : self.k + len(flags)] = flags
        for i in np.flatnonzero(centre):
            mask[max(0, i - self.k) : i + self.k + 1] = True
        return mask
