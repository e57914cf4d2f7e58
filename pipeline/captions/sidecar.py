"""Source `sidecar_timed`: SRT, WebVTT and JSON-segment files next to a video, aligned to clips.

`video.mp4` finds `video.srt`, `video.vtt` and `video.json` (`{"segments": [{"start",
"end", "text"}]}`, as Whisper writes it). A clip gets the text of the cues that
overlap it by at least `min_overlap` of the shorter of cue and clip: a cue mostly
outside the clip is dropped, and a long cue still captions every window cut from it.

Parsing is line-based, not block-based, so a missing blank line, a stray index
or a VTT cue id cannot shift every later cue. A cue with a bad timestamp is
skipped and reported (`problems`); a file with no usable cue raises `CaptionError`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pipeline.captions.text import (
    Candidate,
    CaptionError,
    clean_text,
    decode_text,
    name_of,
    read_bytes,
    shorten,
    sibling,
)

TIMED_SUFFIXES = (".srt", ".vtt", ".json")
MAX_PROBLEMS_SHOWN = 3


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Timed:
    """Cues of one sidecar file, and the cues that had to be skipped (one line each)."""

    name: str
    cues: tuple[Cue, ...]
    problems: tuple[str, ...] = ()


_ARROW = re.compile(r"^\s*(\S+?)\s*-->\s*(\S+)")
_TIME = re.compile(r"^(?:(\d{1,3}):)?(\d{1,2}):(\d{1,2})(?:[.,](\d{1,3}))?$")


def parse_timestamp(value: str) -> float:
    """Seconds from `HH:MM:SS,mmm`, `MM:SS.mmm` and friends; ValueError when malformed."""
    m = _TIME.match(value.strip())
    if not m:
        raise ValueError(f"bad timestamp {value!r}")
    hours, minutes, seconds, frac = m.groups()
    if int(minutes) >= 60 or int(seconds) >= 60:
        raise ValueError(f"bad timestamp {value!r}")
    fraction = int(frac) / 10 ** len(frac) if frac else 0.0
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + fraction


def parse_subtitles(text: str, name: str = "subtitles") -> Timed:
    """Cues of an SRT or WebVTT document (both share the `start --> end` timing line).

    A cue's text runs from its timing line to the first blank line, so headers, VTT
    NOTE/STYLE blocks and cue ids (all after a blank line) never leak into it. When a
    file lost the blank line before the next cue, its SRT index is dropped instead.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    timings = [i for i, line in enumerate(lines) if _ARROW.match(line)]
    header = text.strip().split("\n", 1)[0].strip()
    if not timings and text.strip() and not header.startswith("WEBVTT"):
        raise CaptionError(f"{name}: no 'start --> end' timing line")
    cues: list[Cue] = []
    problems: list[str] = []
    for k, i in enumerate(timings):
        nxt = timings[k + 1] if k + 1 < len(timings) else len(lines)
        start_s, end_s = _ARROW.match(lines[i]).groups()
        try:
            start, end = parse_timestamp(start_s), parse_timestamp(end_s)
        except ValueError as exc:
            problems.append(f"line {i + 1}: {exc}")
            continue
        if end < start:
            problems.append(f"line {i + 1}: end {end_s} before start {start_s}")
            continue
        body = [line.strip() for line in lines[i + 1 : nxt]]
        if "" in body:
            body = body[: body.index("")]
        elif body and nxt < len(lines) and body[-1].isdigit():
            body = body[:-1]
        if words := clean_text(" ".join(body)):
            cues.append(Cue(start, end, words))
    return _finish(name, cues, problems)


def parse_segments(text: str, name: str = "segments.json") -> Timed:
    """Cues of a JSON transcript: {"segments": [{"start", "end", "text"}]} or a bare list."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise CaptionError(f"{name}: invalid JSON ({exc})") from None
    segments = doc.get("segments") if isinstance(doc, dict) else doc
    if not isinstance(segments, list):
        raise CaptionError(f"{name}: no 'segments' list")
    cues, problems = [], []
    for i, seg in enumerate(segments):
        try:
            start, end = (_seconds(seg[key]) for key in ("start", "end"))
            if end < start:
                raise ValueError("end before start")
            if not isinstance(seg.get("text", ""), str):
                raise ValueError("text is not a string")
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            problems.append(f"segment {i}: {type(exc).__name__} {exc}".strip())
            continue
        if words := clean_text(seg.get("text", "")):
            cues.append(Cue(start, end, words))
    return _finish(name, cues, problems)


def _seconds(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"bad time {value!r}")
    if isinstance(value, int | float):
        if not value >= 0 or value == float("inf"):
            raise ValueError(f"bad time {value!r}")
        return float(value)
    if isinstance(value, str):
        return parse_timestamp(value)
    raise ValueError(f"bad time {value!r}")


def _finish(name: str, cues: list[Cue], problems: list[str]) -> Timed:
    if not cues and problems:
        raise CaptionError(f"{name}: no usable cue ({summarize(problems)})")
    cues.sort(key=lambda c: (c.start, c.end))
    return Timed(name, tuple(cues), tuple(problems))


def summarize(problems: list[str] | tuple[str, ...]) -> str:
    shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
    more = len(problems) - MAX_PROBLEMS_SHOWN
    return shown + (f"; and {more} more" if more > 0 else "")


def load_timed(video_path: str, errors: list[str]) -> list[Timed]:
    """Every timed sidecar next to `video_path` (a JSON without segments is not timed).

    A broken file, and the skipped cues of a usable one, are reported into `errors`
    (one line per file); the usable cues are still returned.
    """
    found = []
    for suffix in TIMED_SUFFIXES:
        path = sibling(video_path, suffix)
        try:
            timed = _load_one(path, suffix)
        except CaptionError as exc:
            errors.append(str(exc))
            continue
        if timed is not None:
            found.append(timed)
            if timed.problems:
                errors.append(f"{timed.name}: skipped {summarize(timed.problems)}")
    return found


def _load_one(path: str, suffix: str) -> Timed | None:
    data = read_bytes(path)
    if data is None:
        return None
    name = name_of(path)
    text = decode_text(data, name)
    if suffix != ".json":
        return parse_subtitles(text, name)
    if '"segments"' not in text and not text.lstrip().startswith("["):
        return None  # a whole-video description: sidecar_video reads it
    return parse_segments(text, name)


def overlap_ratio(cue: Cue, start: float, end: float) -> float:
    """Overlap over the shorter of cue and clip; an instant cue counts when inside the clip."""
    if cue.end <= cue.start:
        return 1.0 if start <= cue.start < end else 0.0
    inter = min(cue.end, end) - max(cue.start, start)
    shorter = min(cue.end - cue.start, end - start)
    return max(0.0, inter) / shorter if shorter > 0 else 0.0


def align(
    cues: tuple[Cue, ...] | list[Cue], start: float, end: float, min_overlap: float
) -> tuple[str, float] | None:
    """(text of the cues that belong to [start, end), fraction of the clip they cover)."""
    chosen = [c for c in cues if overlap_ratio(c, start, end) >= min_overlap]
    if not chosen:
        return None
    # Overlapping cues (two speakers, a repeated line) are kept once each, in time order.
    texts = list(dict.fromkeys(c.text for c in chosen))
    covered, reach = 0.0, start
    for c in chosen:  # union of the cues' spans inside the clip
        lo, hi = max(c.start, reach), min(c.end, end)
        if hi > lo:
            covered += hi - lo
            reach = hi
    coverage = covered / (end - start) if end > start else 1.0
    return " ".join(texts), min(1.0, coverage)


def timed_captions(
    sidecars: list[Timed], start: float, end: float, min_overlap: float, max_chars: int
) -> list[Candidate]:
    """One candidate per sidecar file that has cues for the clip; score = coverage."""
    out = []
    for timed in sidecars:
        aligned = align(timed.cues, start, end, min_overlap)
        if aligned:
            out.append(Candidate(shorten(aligned[0], max_chars), "sidecar_timed", aligned[1]))
    return out
