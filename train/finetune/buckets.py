"""Aspect-ratio and length buckets: which (frames, height, width) each clip is trained at.

A pretrained video model only accepts its own grid: frame counts 1 + k*f_t (f_t the VAE's
temporal compression) and sides that are multiples of its spatial stride. Cropping every
clip to one size wastes portrait and square footage and upscales small clips into blur,
so each clip goes to the bucket nearest its aspect ratio and to the longest frame count it
can fill at the sampling rate, and each batch is drawn from one bucket.

Only the clip records are read (`read_records` seeks past the mp4 data), so a plan of a
whole dataset costs seconds and shows, before any GPU time, what the grid keeps and why
the rest is dropped (`plan`, `format_plan`).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from train.data.augment import caption_choices
from train.data.shards import _tar_members, expand_shards

log = logging.getLogger(__name__)

# Why a clip is left out, in the order `assign` checks them.
DROP_REASONS = ("no_caption", "no_size", "no_timing", "too_short", "too_small")


def _whole(value: Any) -> int | None:
    """`value` as an int when it is a whole number (JSON may say 480.0), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value)


def _positive(value: Any) -> float | None:
    """`value` as a float when it is a finite number > 0 (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def _frame_buckets(value: Any) -> tuple[int, ...]:
    flag = "--data.frame_buckets"
    items = list(value) if isinstance(value, list | tuple) else []
    frames = [_whole(f) for f in items]
    if not frames or any(f is None or f < 1 for f in frames):
        raise ValueError(f"{flag} must be a non-empty list of positive frame counts, got {value!r}")
    if any(a >= b for a, b in itertools.pairwise(frames)):
        raise ValueError(f"{flag} must be in increasing order without repeats, got {value!r}")
    return tuple(frames)


def _size(item: Any) -> tuple[int, int] | None:
    """(height, width) from [h, w] or "HxW"; None when it is neither or not positive."""
    if isinstance(item, str):
        item = [int(p) if p.strip().isdigit() else None for p in item.lower().split("x")]
    if not isinstance(item, list | tuple) or len(item) != 2:
        return None
    height, width = (_whole(v) for v in item)
    if height is None or width is None or height < 1 or width < 1:
        return None
    return height, width


def _size_buckets(value: Any) -> tuple[tuple[int, int], ...]:
    flag = "--data.size_buckets"
    items = list(value) if isinstance(value, list | tuple) else []
    sizes = [_size(item) for item in items]
    if not sizes or None in sizes:
        raise ValueError(
            f"{flag} must be a non-empty list of positive [height, width] pairs "
            f"(or 'HxW'), got {value!r}"
        )
    if len(set(sizes)) < len(sizes):
        raise ValueError(f"{flag} lists a size twice: {value!r}")
    return tuple(sizes)


@dataclass(frozen=True)
class BucketGrid:
    """The buckets a run trains on; validated on creation so a bad flag fails at startup."""

    frames: tuple[int, ...]
    sizes: tuple[tuple[int, int], ...]
    fps: float | None = None
    max_upscale: float = 2.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "frames", _frame_buckets(self.frames))
        object.__setattr__(self, "sizes", _size_buckets(self.sizes))
        if self.fps is not None and _positive(self.fps) is None:
            raise ValueError(f"--data.fps must be a positive frame rate or null, got {self.fps!r}")
        if _positive(self.max_upscale) is None:
            raise ValueError(
                f"--data.max_upscale must be a positive number, got {self.max_upscale!r}"
            )
        object.__setattr__(self, "fps", None if self.fps is None else float(self.fps))
        object.__setattr__(self, "max_upscale", float(self.max_upscale))

    def check_family(self, temporal: int, spatial: int, family: str) -> None:
        """ValueError naming the flag when a bucket is off `family`'s grid, with the nearest
        valid values: the VAE cannot encode other frame counts, the patchifier other sides."""
        if temporal < 1 or spatial < 1:
            raise ValueError(f"{family}: grid steps must be positive, got {temporal}, {spatial}")
        bad = [f for f in self.frames if (f - 1) % temporal]
        if bad:
            near = "; ".join(f"{f} -> {_nearest_frames(f, temporal)}" for f in bad)
            raise ValueError(
                f"--data.frame_buckets: {family} takes 1 + k*{temporal} frames "
                f"(1, {1 + temporal}, {1 + 2 * temporal}, ...); nearest valid: {near}"
            )
        bad_sizes = [s for s in self.sizes if s[0] % spatial or s[1] % spatial]
        if bad_sizes:
            near = "; ".join(
                f"{h}x{w} -> {_nearest_side(h, spatial)}x{_nearest_side(w, spatial)}"
                for h, w in bad_sizes
            )
            raise ValueError(
                f"--data.size_buckets: {family} needs height and width in multiples of "
                f"{spatial}; nearest valid: {near}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": list(self.frames),
            "sizes": [list(s) for s in self.sizes],
            "fps": self.fps,
            "max_upscale": self.max_upscale,
        }


def _nearest_frames(frames: int, temporal: int) -> str:
    below = 1 + (frames - 1) // temporal * temporal
    return f"{below} or {below + temporal}"


def _nearest_side(side: int, spatial: int) -> int:
    return max(spatial, (side + spatial // 2) // spatial * spatial)


@dataclass(frozen=True, order=True)
class Bucket:
    """One training shape; orders by frames, then height, then width."""

    frames: int
    height: int
    width: int

    @property
    def name(self) -> str:
        return f"{self.frames}x{self.height}x{self.width}"

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, name: str) -> Bucket:
        """The bucket of a name such as "33x480x832" (as `plan`'s assignments store it)."""
        frames, height, width = (int(p) for p in name.split("x"))
        return cls(frames, height, width)


def available_frames(record: dict[str, Any], fps: float | None) -> int | None:
    """Frames a clip yields at `fps` (None: its own rate); None when its timing is unknown.

    floor(n * fps / clip_fps) never claims more than `temporal_indices` can sample at the
    stride clip_fps / fps without lowering it (it may claim one frame fewer).
    """
    clip_fps = _positive(record.get("fps"))
    n_frames = _whole(record.get("n_frames"))
    if n_frames is None or n_frames < 0:
        duration = _positive(record.get("duration_s"))
        if duration is None or clip_fps is None:
            return None
        n_frames = math.floor(duration * clip_fps + 0.5)
    if fps is None:
        return n_frames
    if clip_fps is None:
        return None
    return n_frames if clip_fps <= fps else math.floor(n_frames * fps / clip_fps + 1e-9)


def nearest_size(height: int, width: int, sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The size whose aspect ratio is nearest the clip's in log space; ties: the larger area,
    then the first listed. Ratios are compared as exact fractions, so mirrored sizes tie."""

    def distance(item: tuple[int, tuple[int, int]]) -> tuple[Fraction, int, int]:
        index, (bh, bw) = item
        q = Fraction(width * bh, height * bw)  # clip aspect / bucket aspect
        return max(q, 1 / q), -bh * bw, index

    return min(enumerate(sizes), key=distance)[1]


def assign(record: dict[str, Any], grid: BucketGrid, has_caption: bool) -> Bucket | str:
    """The clip's bucket, or why it is dropped (one of DROP_REASONS, checked in that order).

    The longest frame bucket the clip fills, so no frame is repeated; the size nearest its
    aspect ratio, so the crop cuts least; too_small when covering that size would enlarge the
    clip more than `grid.max_upscale`, since an upscaled clip teaches the model blur.
    """
    if not has_caption:
        return "no_caption"
    height, width = _whole(record.get("height")), _whole(record.get("width"))
    if height is None or width is None or height < 1 or width < 1:
        return "no_size"
    frames = available_frames(record, grid.fps)
    if frames is None:
        return "no_timing"
    fitting = [f for f in grid.frames if f <= frames]
    if not fitting:
        return "too_short"
    bh, bw = nearest_size(height, width, grid.sizes)
    if max(bh / height, bw / width) > grid.max_upscale:
        return "too_small"
    return Bucket(fitting[-1], bh, bw)


def read_records(
    shards: str | list[str], flag: str = "--data.shards"
) -> Iterator[tuple[str, dict[str, Any], str | None]]:
    """(key, record, primary caption) of every sample, shard by shard.

    Only the .json and .txt members are read; local tars are read by seeking past the mp4
    data, so planning a dataset reads kilobytes per clip. A bad json gives {} (dropped as
    no_size); an unreadable shard is logged and skipped (its samples read so far stay).
    """
    for url in expand_shards(shards, flag):
        try:
            yield from _shard_records(url)
        except (OSError, EOFError, tarfile.TarError) as err:
            log.warning("skipping unreadable shard %s: %s", url, err)


def _shard_records(url: str) -> Iterator[tuple[str, dict[str, Any], str | None]]:
    for key, members in itertools.groupby(_tar_members(url), key=lambda m: m[2]):
        fields = {
            ext: tar.extractfile(member).read()
            for tar, member, _, ext in members
            if ext in ("json", "txt")
        }
        text = fields.get("txt")
        caption = text.decode("utf-8", errors="replace") if text is not None else None
        yield key, _decode_record(fields.get("json"), key, url), caption


def _decode_record(data: bytes | None, key: str, url: str) -> dict[str, Any]:
    try:
        record = json.loads(data) if data is not None else {}
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError alike
        log.warning("sample %r of %s has a bad json (%s); it is dropped", key, url, err)
        return {}
    return record if isinstance(record, dict) else {}


def _millis(record: dict[str, Any]) -> int:
    """The clip's length in whole milliseconds (duration_s, else n_frames / fps, else 0):
    integer sums keep the plan's totals exact."""
    seconds = record.get("duration_s")
    if _positive(seconds) is None:
        n_frames, fps = _whole(record.get("n_frames")), _positive(record.get("fps"))
        seconds = n_frames / fps if n_frames is not None and fps is not None else 0.0
    return max(0, round(float(seconds) * 1000))


def plan(records: Iterable[tuple[str, dict[str, Any], str | None]], grid: BucketGrid) -> dict:
    """JSON-able report of where every clip goes: per bucket and per drop reason clips and
    seconds, totals (used + dropped = total) and each used clip's bucket name by key."""
    used: dict[Bucket, list[int]] = {}
    dropped: dict[str, list[int]] = {reason: [0, 0] for reason in DROP_REASONS}
    assignments: dict[str, str] = {}
    for key, record, primary in records:
        result = assign(record, grid, bool(caption_choices(record, primary)))
        tally = dropped[result] if isinstance(result, str) else used.setdefault(result, [0, 0])
        tally[0] += 1
        tally[1] += _millis(record)
        if isinstance(result, Bucket):
            assignments[key] = result.name
    buckets = [
        {**_bucket_fields(b), "clips": n, "seconds": ms / 1000}
        for b, (n, ms) in sorted(used.items())
    ]
    used_clips, used_ms = (sum(t[i] for t in used.values()) for i in (0, 1))
    total_clips = used_clips + sum(t[0] for t in dropped.values())
    total_ms = used_ms + sum(t[1] for t in dropped.values())
    return {
        "grid": grid.to_dict(),
        "buckets": buckets,
        "dropped": {r: {"clips": n, "seconds": ms / 1000} for r, (n, ms) in dropped.items()},
        "total": {
            "clips": total_clips,
            "seconds": total_ms / 1000,
            "used_clips": used_clips,
            "used_seconds": used_ms / 1000,
        },
        "assignments": assignments,
    }


def _bucket_fields(bucket: Bucket) -> dict[str, Any]:
    return {"bucket": bucket.name, **dataclasses.asdict(bucket)}


def _share(part: float, whole: float) -> str:
    return f"{100 * part / whole:5.1f}%" if whole else "    -"


def format_plan(report: dict) -> str:
    """The plan as a table: per bucket its clips, seconds and share of the used clips; per
    drop reason its share of all clips; totals; a warning when no clip is usable."""
    total = report["total"]
    lines = [f"{'bucket':<20} {'clips':>8} {'seconds':>11} {'share':>7}"]
    for b in report["buckets"]:
        share = _share(b["clips"], total["used_clips"])
        lines.append(f"{b['bucket']:<20} {b['clips']:>8} {b['seconds']:>11.1f} {share:>7}")
    for reason, d in report["dropped"].items():
        share = _share(d["clips"], total["clips"])
        lines.append(f"{'drop ' + reason:<20} {d['clips']:>8} {d['seconds']:>11.1f} {share:>7}")
    lines.append(
        f"{'used':<20} {total['used_clips']:>8} {total['used_seconds']:>11.1f} "
        f"{_share(total['used_clips'], total['clips']):>7}"
    )
    lines.append(f"{'total':<20} {total['clips']:>8} {total['seconds']:>11.1f}")
    if not total["used_clips"]:
        lines.append(_warning(report))
    return "\n".join(lines)


def _warning(report: dict) -> str:
    dropped = report["dropped"]
    if not report["total"]["clips"]:
        return "WARNING: no clips at all: check --data.shards"
    reason = max(dropped, key=lambda r: dropped[r]["clips"])
    hints = {
        "no_caption": "caption the clips first",
        "no_size": "the records lack width/height",
        "no_timing": "the records lack n_frames/fps (or the clips' fps with --data.fps)",
        "too_short": "lower --data.frame_buckets or raise --data.fps",
        "too_small": "add smaller --data.size_buckets or raise --data.max_upscale",
    }
    return (
        f"WARNING: no clip fits the grid; most were dropped as {reason} "
        f"({dropped[reason]['clips']} of {report['total']['clips']}): {hints[reason]}"
    )
