"""Where a video is damaged, on the source's own timeline (used by the split stage).

A damaged file still decodes: ffmpeg drops the frames it cannot decode and conceals the
rest, so counting decoded frames shifts every later cut and clip by the frames lost. Frame
numbers here come from the container's packet timestamps instead (`read_timeline`): a
source frame is a slot on that timeline whether or not it decoded.

Damage is found in three ways, cheapest first:
- the analysis decode's frames are matched to slots by timestamp (`Aligner`): a slot with
  a packet but no decoded frame was dropped, a second frame on one slot is a duplicate;
- a slot with no packet on a constant-rate timeline is a timestamp jump (lost data);
- only when ffmpeg reported errors or frames went missing, one more decode in PyAV, a
  packet at a time on one thread, names the packets whose decode raised or logged an
  error (`locate_errors`): concealed frames, which the pipe cannot tell apart.

Margin (`damaged_ranges`): a broken frame poisons every frame predicted from it, which is
every frame decoded after it until the next keyframe, plus B-frames shown before it that
are decoded after it. Measured on x264 footage: one flipped bit smeared 1 to 39 frames,
always ending at the next keyframe, and never starting more than 1 frame before the
flipped packet. The split then trims `trim_s` off the clean side of the boundary as for a cut.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

# A constant-rate stream: every timestamp within this many frames of the 1/fps grid.
GRID_TOLERANCE = 0.25
# A grid that would need more slots than this many times its packets is no grid (a
# corrupt timestamp far in the future): the packets are numbered in order instead.
MAX_GRID_GROWTH = 2
# A pause longer than this between two frames of an off-grid stream is broken timing.
MAX_JUMP_S = 60.0


@dataclass
class Timeline:
    """Every source frame slot of a video's first video stream, in display order."""

    pts: np.ndarray  # int64 per slot, in time_base (a slot without a packet: its grid time)
    present: np.ndarray  # bool: a packet exists for the slot
    key: np.ndarray  # bool: the slot's packet is a keyframe
    decode_pos: np.ndarray  # int64: the packet's position in decode order, -1 if none
    time_base: Fraction
    step_s: float  # seconds per frame (median)
    demux_error: str | None = None

    @property
    def n(self) -> int:
        return len(self.pts)

    @property
    def start_s(self) -> float:
        return float(self.pts[0] * self.time_base)

    def times(self) -> list[float]:
        """Seconds of each slot since the first one."""
        first = int(self.pts[0])
        return [float((p - first) * self.time_base) for p in self.pts.tolist()]

    def slot(self, seconds: float) -> int | None:
        """The slot whose timestamp is within half a frame of `seconds`, if any."""
        target = seconds / float(self.time_base)
        i = int(np.searchsorted(self.pts, target))
        near = [j for j in (i - 1, i) if 0 <= j < self.n]
        best = min(near, key=lambda j: abs(self.pts[j] - target))
        close = abs(float(self.pts[best] - target) * float(self.time_base)) < 0.5 * self.step_s
        return best if close else None


def read_timeline(path: str, fps_hint: float) -> Timeline | None:
    """Slots of the first video stream from its packets alone (no decode: milliseconds).

    None when the packets carry no timestamps (a raw elementary stream): the caller then
    numbers decoded frames in order, as nothing better is known.
    """
    facts = _demux(path, fps_hint)
    if facts is None:
        return None
    packets, time_base, rate, expected, error = facts
    pts = np.array(sorted(packets), np.int64)
    slots = _grid(pts, time_base, rate)
    on_grid = slots is not None
    if slots is None:
        slots = np.arange(len(pts))
        gaps = np.diff(pts) * float(time_base)
        if len(gaps) and gaps.max() > MAX_JUMP_S:
            # The encoder would fill such a gap with copies of one frame, hours of them.
            at = int(np.argmax(gaps))
            raise ValueError(f"timestamps jump by {gaps[at]:.0f} s after frame {at}")
    n = int(slots[-1]) + 1
    if on_grid and n < expected <= MAX_GRID_GROWTH * len(pts):
        # The index names frames past the last packet read: a cut-off download. Those
        # frames are damage too, so the manifest still accounts for the whole video.
        n = expected
    full = np.round(pts[0] + np.arange(n) / rate / float(time_base)).astype(np.int64)
    full[slots] = pts
    present, key, decode_pos = np.zeros(n, bool), np.zeros(n, bool), np.full(n, -1, np.int64)
    present[slots] = True
    for s, p in zip(slots.tolist(), pts.tolist(), strict=True):
        decode_pos[s], key[s] = packets[p]
    step = float(np.median(np.diff(pts))) * float(time_base) if len(pts) > 1 else 1.0 / rate
    return Timeline(full, present, key, decode_pos, time_base, step or 1.0 / rate, error)


def _demux(path: str, fps_hint: float) -> tuple | None:
    """({pts: (decode position, keyframe)}, time base, frame rate, frames the index names,
    demux error), or None without timestamps."""
    import av

    packets: dict[int, tuple[int, bool]] = {}
    error, hidden = None, 0
    with av.open(path, metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        time_base, declared = stream.time_base, int(stream.frames or 0)
        rate = float(stream.average_rate or stream.guessed_rate or fps_hint)
        try:
            for pos, packet in enumerate(container.demux(stream)):
                if packet.size == 0 or packet.is_discard:
                    hidden += packet.is_discard  # an edit list hides it from every decoder
                    continue
                if packet.pts is None:
                    return None
                # A second packet on one timestamp (a duplicated box) adds no frame.
                packets.setdefault(int(packet.pts), (pos, bool(packet.is_keyframe)))
        except av.error.FFmpegError as exc:
            error = f"demux stopped after {len(packets)} packets: {exc}"[:200]
    if not packets or time_base is None:
        return None
    return packets, time_base, rate, declared - hidden, error


def _grid(pts: np.ndarray, time_base: Fraction, rate: float) -> np.ndarray | None:
    """Slot of each timestamp on the 1/rate grid, or None when the stream is not on one."""
    if rate <= 0:
        return None
    rel = (pts - pts[0]) * float(time_base) * rate
    slots = np.round(rel).astype(np.int64)
    if np.abs(rel - slots).max() > GRID_TOLERANCE or np.any(np.diff(slots) < 1):
        return None
    too_sparse = slots[-1] + 1 > MAX_GRID_GROWTH * len(pts)
    if len(pts) > 1 and (np.median(np.diff(slots)) != 1 or too_sparse):
        return None
    return slots


class Aligner:
    """Puts the analysis decode's frames on their slots; every slot gets one frame.

    A slot the decode missed gets its nearest earlier decoded frame (or the first one), so
    every detector and statistic stays indexed by source frame. Such slots are damaged and
    never reach a kept clip, so what they are filled with does not matter.
    """

    def __init__(self, timeline: Timeline, start: int = 0) -> None:
        self.timeline, self.start = timeline, start
        self.missing: set[int] = set()  # slots with a packet that no frame landed on
        self.jumps: set[int] = set()  # slots with no packet, or frames with no slot
        self.duplicates = 0
        self._next = start
        self._last: np.ndarray | None = None

    def push(self, seconds: float, rgb: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """One decoded frame at its timestamp; returns the (slot, frame) pairs now settled.
        Frames before `start` (a seek's pre-roll, for a span of the video) are dropped."""
        slot = self.timeline.slot(seconds)
        if slot is not None and slot < self.start:
            return []
        if slot is None or slot < self._next:
            # No slot near its time (an invented timestamp), or a second frame on a slot.
            if slot is not None:
                # Which of two pictures on one slot is right is unknown: both are suspect.
                self.duplicates += 1
                self.missing.add(slot)
            else:
                self.jumps.add(min(self._next, self.timeline.n - 1))
            return []
        out = [(s, self._last if self._last is not None else rgb) for s in range(self._next, slot)]
        self._mark_gap(self._next, slot)
        self._last, self._next = rgb, slot + 1
        return [*out, (slot, rgb)]

    def finish(self, end: int | None = None) -> list[tuple[int, np.ndarray]]:
        """Fill the slots after the last decoded frame up to `end` (default: the last slot;
        a truncated or broken tail)."""
        if self._last is None:
            return []
        n = self.timeline.n if end is None else min(end, self.timeline.n)
        self._mark_gap(self._next, n)
        out = [(s, self._last) for s in range(self._next, n)]
        self._next = n
        return out

    def _mark_gap(self, start: int, end: int) -> None:
        for s in range(start, end):
            (self.missing if self.timeline.present[s] else self.jumps).add(s)


def locate_errors(path: str, timeline: Timeline) -> set[int]:
    """Slots whose packet failed to decode or made the decoder log an error.

    One thread, one packet at a time: a frame-threaded decoder reports an error several
    packets late, and only a synchronous decode lets a log line name its packet.
    """
    import av
    import av.logging

    lines: list[str] = []
    handler = _ListHandler(lines)
    logger = logging.getLogger("libav")
    old_level, old_propagate = av.logging.get_level(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    av.logging.set_level(av.logging.ERROR)
    bad: set[int] = set()
    try:
        with av.open(path, metadata_errors="ignore") as container:
            stream = container.streams.video[0]
            stream.thread_type = "NONE"
            for packet in _packets(container, stream):
                seen, failed = len(lines), False
                try:
                    failed = any(f.is_corrupt for f in packet.decode())
                except av.error.FFmpegError:
                    failed = True
                if (failed or len(lines) > seen) and packet.pts is not None:
                    slot = timeline.slot(float(packet.pts * timeline.time_base))
                    bad |= {slot} if slot is not None else set()
    finally:
        logger.removeHandler(handler)
        logger.propagate = old_propagate
        av.logging.set_level(old_level)
    return bad


def _packets(container: Any, stream: Any):  # noqa: ANN202 - a generator of av.Packet
    import av

    try:
        yield from container.demux(stream)
    except av.error.FFmpegError:
        return


class _ListHandler(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def damaged_ranges(
    decode_bad: set[int], jumps: set[int], timeline: Timeline
) -> list[tuple[int, int]]:
    """Merged [start, end) slot ranges: broken frames widened to what predicts from them.

    `decode_bad` slots poison what is decoded after them up to the next keyframe (and the
    B-frames shown before them); `jumps` (no packet) are only themselves.
    """
    mask = np.zeros(timeline.n, bool)
    mask[sorted(jumps)] = True
    order = timeline.decode_pos
    key_pos = np.sort(order[timeline.key & timeline.present])
    for s in sorted(decode_bad):
        d = order[s]
        if d < 0:
            mask[s] = True
            continue
        later = key_pos[key_pos > d]
        k = int(later[0]) if len(later) else np.iinfo(np.int64).max
        hit = (order >= d) & (order < k)
        if len(later):
            # Leading pictures of an open GOP: decoded after the keyframe, shown before it.
            kslot = int(np.flatnonzero(order == k)[0])
            hit[:kslot] |= order[:kslot] > k
        # The hull: a frame shown amid damaged ones is no clip of its own.
        where = np.flatnonzero(hit)
        mask[where[0] : where[-1] + 1] = True
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def damage_message(ranges: list[tuple[int, int]], times: list[float]) -> str:
    """`damaged: N frames near T s` (the first damaged stretch), for the video's row."""
    count = sum(b - a for a, b in ranges)
    near = ", ".join(f"{times[a]:.1f}" for a, _ in ranges[:3])
    more = f" and {len(ranges) - 3} more" if len(ranges) > 3 else ""
    return f"damaged: {count} frames near {near}{more} s"
