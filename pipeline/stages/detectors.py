"""Online shot-boundary detectors over the low-resolution frames of one decode.

Every detector sees each frame once, in order (`push`), and holds only a small
window, so memory stays flat for any video length. Each gives per-frame features (cut
frames, TransNetV2's scores, the dissolve guard's centres, flash frames), and
`spans.Detection` decides cuts and transitions from them over the whole video.
"""

from __future__ import annotations

from collections import deque

import numpy as np


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

    def cuts(self, last: bool = True) -> list[int]:
        """Every cut found so far; `last`: the video ended, so a pending cut is flushed too
        (a span of a longer video stops early instead, past its own frames)."""
        if last and self._last >= 0:
            self._cuts += [
                int(t.frame_num) for t in self._det.post_process(self._tc(self._last, self._fps))
            ]
        return sorted({c for c in self._cuts if 0 < c <= self._last})


class TransNetDetector:
    """TransNetV2 over sliding 100-frame windows (step 50), streamed, batched.

    Mirrors `TransNetV2.predict_frames` (25 frames of context each side, the
    first/last frame repeated at the ends) without holding the whole video.

    `start` > 0 scores a span of a longer video from its frame `start` on (a multiple of
    `STEP * batch_windows`): it is fed from frame `start - CONTEXT`, so its windows and their
    batches are the whole video's, and so are its scores (`scores`).
    """

    WINDOW, STEP, CONTEXT = 100, 50, 25

    def __init__(self, model, threshold: float, batch_windows: int = 4, start: int = 0) -> None:
        self.model, self.threshold, self.batch_windows = model, threshold, batch_windows
        self.start = start
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
        if index < self.start - self.CONTEXT:
            return
        small = self._small(rgb)
        if not self._buf and self.start == 0:
            self._buf = [small] * self.CONTEXT
        self._buf.append(small)
        self._n += index >= self.start
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

    def scores(self, count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(single-frame, many-frame) transition scores of frames start.. on: the first
        `count` of them (a span fed past its end, whose windows have all run), or, with
        None, all that were pushed (the video ended: the tail is padded as a whole video's)."""
        if count is None:
            count = self._n
            if count and self._buf:
                # Pad with the last frame until every real frame sat in a window's centre.
                last = self._buf[-1]
                while (len(self._single) + len(self._pending)) * self.STEP < count:
                    self._buf.append(last)
                    self._drain(final=False)
                self._run()
        if count == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        single, many = np.concatenate(self._single), np.concatenate(self._many)
        if len(single) < count:
            raise RuntimeError(f"TransNetV2 scored {len(single)} of {count} frames")
        return single[:count], many[:count]


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
    and frame[i+k] differ a lot. Object motion, fast pans and hard cuts all leave a
    large residual from that average, so they are not flagged. A slow pan over soft
    content passes that test too (a smooth image shifted by a pixel is close to the
    average of its neighbours), so a candidate is dropped when shifting frame[i-k]
    explains frame[i+k] (`shift_residual` below `max_shift_ratio`): a blend of two
    pictures is no shift of either. Cheap: frames at analysis size, a window of 2k+1;
    the shift search runs only on candidates.
    """

    # Thresholds measured on synthetic dissolves between dark shots: blends change
    # ≥ 10 (mean |RGB| of frames 2k apart) with residual ≤ 0.15 of it; within
    # shots the residual stayed ≥ 0.27 of the change.
    def __init__(
        self, k: int, min_change: float = 6.0, max_ratio: float = 0.2, max_shift_ratio: float = 0.4
    ) -> None:
        self.k, self.min_change, self.max_ratio = k, min_change, max_ratio
        self.max_shift_ratio = max_shift_ratio
        self._win: deque[np.ndarray] = deque(maxlen=2 * k + 1)
        self.centres: list[int] = []  # frames that are a blend of their neighbours k away

    def push(self, index: int, rgb: np.ndarray) -> None:
        """Frames in order; `index` numbers them (a span of a video starts past 0)."""
        self._win.append(rgb.astype(np.float32))
        if len(self._win) == self._win.maxlen:
            a, mid, b = self._win[0], self._win[self.k], self._win[-1]
            change = float(np.abs(b - a).mean())
            resid = float(np.abs(mid - (a + b) / 2).mean())
            flag = change > self.min_change and resid < self.max_ratio * change
            if flag and self.max_shift_ratio > 0:
                flag = shift_residual(a.mean(axis=2), b.mean(axis=2)) >= self.max_shift_ratio
            if flag:
                self.centres.append(index - self.k)


def widen(centres: list[int], k: int, n: int) -> np.ndarray:
    """Mask over n frames: each flagged centre widened by k on both sides."""
    mask = np.zeros(n, bool)
    for i in centres:
        mask[max(0, i - k) : i + k + 1] = True
    return mask


def shift_residual(a: np.ndarray, b: np.ndarray, levels: int = 3) -> float:
    """Fraction of the change from grey frame `a` to `b` that no shift of `a` explains.

    A coarse-to-fine whole-pixel search (±2 pixels at the coarsest of `levels` halvings,
    then ±1 at each finer one: up to ±11 pixels at analysis size for 3 levels) and a
    half-pixel bilinear step around its best. Measured at analysis width 96 over 0.3 s:
    slow pans over soft content 0.01-0.23; dissolves (between pans too) and fades 0.64-1.0.
    cv2.phaseCorrelate as the first guess left up to 0.55 on a pan whose two frames straddled
    a keyframe (its coding noise changes there); OpenCV 5.0's also windows its inputs in place.
    """
    import cv2

    raw = _mean_abs_diff(a, b)
    h, w = a.shape
    if raw == 0 or min(h, w) < 16:
        return 1.0  # too small to tell a shift from a blend: leave the blend test's verdict
    pyramid = [(a, b)]
    while len(pyramid) < levels and min(pyramid[-1][0].shape) >= 24:
        pa, pb = pyramid[-1]
        size = (pa.shape[1] // 2, pa.shape[0] // 2)
        pyramid.append(tuple(cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in (pa, pb)))
    (bx, by), best = _best_shift(*pyramid[-1], (0, 0), 2)
    for pa, pb in reversed(pyramid[:-1]):
        (bx, by), best = _best_shift(pa, pb, (2 * bx, 2 * by), 1)
    m = max(abs(bx), abs(by)) + 1
    inner = (slice(m, h - m), slice(m, w - m))
    for fx, fy in ((-0.5, 0), (0.5, 0), (0, -0.5), (0, 0.5)):
        moved = cv2.warpAffine(a, np.float32([[1, 0, bx + fx], [0, 1, by + fy]]), (w, h))
        best = min(best, _mean_abs_diff(b[inner], moved[inner]))
    return best / raw


def _best_shift(
    a: np.ndarray, b: np.ndarray, centre: tuple[int, int], r: int
) -> tuple[tuple[int, int], float]:
    """The whole-pixel shift d within ±r of `centre` that minimises mean |b(x) - a(x - d)|."""
    h, w = a.shape
    best = ((0, 0), np.inf)
    for dy in range(centre[1] - r, centre[1] + r + 1):
        for dx in range(centre[0] - r, centre[0] + r + 1):
            if abs(dx) >= w // 2 or abs(dy) >= h // 2:
                continue
            ys, yd = slice(max(-dy, 0), h - max(dy, 0)), slice(max(dy, 0), h - max(-dy, 0))
            xs, xd = slice(max(-dx, 0), w - max(dx, 0)), slice(max(dx, 0), w - max(-dx, 0))
            diff = _mean_abs_diff(b[yd, xd], a[ys, xs])
            if diff < best[1]:
                best = ((dx, dy), diff)
    return best


def _mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    # cv2.norm sums in C: numpy's mean costs ~8x more at this size, and a pan makes every
    # frame a candidate (about 50 of these each).
    import cv2

    return cv2.norm(a, b, cv2.NORM_L1) / a.size


class FlashFilter:
    """Hides flashes from the cut detectors: each flash frame is replaced by the frame before it.

    A flash is a run of 1..`max_frames` frames each at least `min_jump` mean luma (0-255)
    brighter than both the frame before and the frame after the run: a camera flash, a
    lightning strike, a strobe. Every detector reads the jump into and out of it as a cut
    (measured on 1-3 frame boosts of a dark shot, mean luma 70: adaptive from +18,
    transnetv2 from +30, content from +40). With the flash held out, a detector still finds
    a cut where the frames around it differ (a real cut next to a flash) and none where they
    match, so a shot with a flash stays whole. Frames come out `max_frames` + 1 frames late,
    unchanged unless flagged; `runs` lists the flashes found, as (first frame, end frame).
    """

    def __init__(self, max_frames: int, min_jump: float) -> None:
        self.max_frames, self.min_jump = max_frames, min_jump
        self._buf: deque[list] = deque()  # [index, rgb, mean luma, flagged]
        self._held: np.ndarray | None = None
        self._flagged: list[int] = []

    def push(self, index: int, rgb: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Take the next frame; return the frames now settled, as (index, frame to detect on)."""
        import cv2

        self._buf.append([index, rgb, sum(cv2.mean(rgb)[:3]) / 3, False])
        after = self._buf[-1][2]
        for n in range(1, min(self.max_frames, len(self._buf) - 2) + 1):
            run = [self._buf[-1 - j] for j in range(1, n + 1)]
            floor = max(self._buf[-2 - n][2], after) + self.min_jump
            if min(f[2] for f in run) >= floor:
                for f in run:
                    f[3] = True
        # The oldest frame is settled once no run ending at a later frame can reach it.
        return [self._release() for _ in range(len(self._buf) - self.max_frames - 1)]

    def finish(self) -> list[tuple[int, np.ndarray]]:
        return [self._release() for _ in range(len(self._buf))]

    def _release(self) -> tuple[int, np.ndarray]:
        index, rgb, _, flagged = self._buf.popleft()
        if flagged and self._held is not None:
            self._flagged.append(index)
            return index, self._held
        self._held = rgb
        return index, rgb

    @property
    def flagged(self) -> list[int]:
        """The flash frames released so far, in order."""
        return list(self._flagged)

    @property
    def runs(self) -> list[tuple[int, int]]:
        return flash_runs(self._flagged)


def flash_runs(flagged: list[int]) -> list[tuple[int, int]]:
    """(first frame, end frame) of each run of consecutive flash frames."""
    out: list[tuple[int, int]] = []
    for i in flagged:
        if out and out[-1][1] == i:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out
