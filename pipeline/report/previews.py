"""Looping previews of the clips: small animated WebPs under OUT/work/previews/.

A 192-px, 8 fps WebP of a clip's first seconds weighs a few KB, so a page of 48
of them loads at once from disk, where 48 autoplaying 360p mp4s would not. Each is
made once (an existing file is skipped), written under a temporary name and renamed,
so a run killed mid-way never leaves a half file that later runs would trust. A preview
is cut from the video's proxy, which the split's decode wrote at the previews' size
(`pipeline.stages.proxy`: a quarter of the CPU of decoding the clip again). Without one
(an output of an older clipmill, a video without timestamps, a clip shorter than the
proxy's 1/8-s step) it is cut from the staged mp4, or for a clip rejected before transcode (too
short, a transition, a black run) from the source at the clip's times, when that file
is still there. Where ffmpeg has no WebP encoder (some system builds), the page plays
the staged mp4.
"""

from __future__ import annotations

import logging
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import NamedTuple

from pipeline.ffmpeg import ffmpeg_exe, run_ffmpeg
from pipeline.stages.proxy import PREVIEW_FPS, PREVIEW_SCALE, preview_frames, proxy_at
from schemas.layout import staged_clip, video_dir, work_dir

log = logging.getLogger(__name__)

PREVIEWS = "previews"
MAX_S = 4.0
BATCH = 16  # proxy previews per ffmpeg


def previews_dir(out: Path) -> Path:
    """OUT/work/previews/: the page links here and the review server serves it."""
    return work_dir(out) / PREVIEWS


def preview_path(out: Path, clip_id: str) -> Path:
    return previews_dir(out) / f"{clip_id}.webp"


@cache
def has_webp_encoder() -> bool:
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, check=False, timeout=30
    )
    return b"libwebp_anim" in proc.stdout


class Clip(NamedTuple):
    """What a preview is made from: the staged mp4, or the source at the clip's times."""

    video_id: str
    clip_id: str
    source_path: str
    start_s: float
    duration_s: float


class Job(NamedTuple):
    """One preview's ffmpeg input and output arguments (lists, never a shell string)."""

    read: list[str]
    write: list[str]
    dst: Path
    proxy: bool  # cut from a proxy: batched with others (`_batches`)

    def args(self) -> list[str]:
        return ["-y", *self.read, *self.write]


def webp_job(src: Path, dst: Path, start_s: float | None = None, duration_s: float = MAX_S) -> Job:
    """One preview from a clip's mp4, or from the source at `start_s` (a clip rejected
    before transcode has no mp4 of its own)."""
    seek = ["-ss", f"{start_s:.3f}"] if start_s is not None else []
    read = [*seek, "-t", f"{min(duration_s, MAX_S):.3f}"]
    return Job(
        _input(src, read), _output(_tmp(dst), [f"fps={PREVIEW_FPS},{PREVIEW_SCALE}"]), dst, False
    )


def proxy_job(proxy: Path, dst: Path, timestamp_s: float, frames: int) -> Job:
    """One preview from a proxy: `frames` of it from its frame at `timestamp_s` (the proxy
    keeps the source's timestamps, and is at the preview's size and rate already)."""
    read = ["-seek_timestamp", "1", "-ss", f"{timestamp_s:.6f}"]
    return Job(
        _input(proxy, read), _output(_tmp(dst), ["null", "-frames:v", str(frames)]), dst, True
    )


def _tmp(dst: Path) -> Path:
    return dst.with_name(dst.name + ".tmp")


def _input(src: Path, read: list[str]) -> list[str]:
    # One decoder thread: previews run several at a time, and a threaded decoder of a
    # small clip spends more on its threads than it saves (12% less CPU, RESULTS.md).
    return [*read, "-threads", "1", "-i", str(src)]


def _output(dst: Path, vf: list[str]) -> list[str]:
    return [
        "-an",
        "-vf",
        *vf,
        "-c:v",
        "libwebp_anim",
        "-loop",
        "0",
        "-quality",
        "50",
        "-compression_level",
        "1",
        "-f",
        "webp",
        str(dst),
    ]


def batch_args(jobs: list[Job]) -> list[str]:
    """One ffmpeg for several previews: each its own input (its own seek) and output. The
    previews are byte for byte those of one ffmpeg each, without a process start (about
    20 ms, most of a proxy preview's cost) per preview."""
    outputs = [arg for i, job in enumerate(jobs) for arg in ("-map", f"{i}:v", *job.write)]
    return ["-y", *(arg for job in jobs for arg in job.read), *outputs]


def _run(args: list[str], jobs: list[Job], what: str) -> bool:
    """One ffmpeg writing the temporaries of `jobs`, then each renamed into place; on
    failure no temporary is left."""
    try:
        run_ffmpeg(args, timeout=60)
        for job in jobs:
            os.replace(_tmp(job.dst), job.dst)
        return True
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        log.debug("%s failed: %s", what, exc)
        for job in jobs:
            _tmp(job.dst).unlink(missing_ok=True)
        return False


def _make_one(job: Job) -> bool:
    return _run(job.args(), [job], f"preview {job.dst.name}")


def _make_batch(jobs: list[Job]) -> int:
    """The previews of `jobs` in one ffmpeg; one by one if it fails (one bad preview must
    not cost the others); returns how many were made."""
    what = f"a batch of {len(jobs)} previews (one by one now)"
    if len(jobs) > 1 and _run(batch_args(jobs), jobs, what):
        return len(jobs)
    return sum(_make_one(job) for job in jobs)


def _batches(jobs: list[Job], workers: int) -> list[list[Job]]:
    """Proxy previews BATCH at a time (fewer when that would leave a worker idle), the others
    one by one."""
    cut = [job for job in jobs if job.proxy]
    size = max(1, min(BATCH, -(-len(cut) // workers)))
    alone = [[job] for job in jobs if not job.proxy]
    return [cut[i : i + size] for i in range(0, len(cut), size)] + alone


def _job(out: Path, clip: Clip) -> Job | None:
    dst = preview_path(out, clip.clip_id)
    if dst.is_file():
        return None
    proxy = proxy_at(video_dir(work_dir(out), clip.video_id), clip.start_s)
    if proxy is not None:
        path, at = proxy
        frames = preview_frames(at, at + clip.duration_s, round(MAX_S * PREVIEW_FPS))
        if frames:  # a clip shorter than the grid step may hold no proxy frame
            return proxy_job(path, dst, at, frames)
    mp4 = staged_clip(out, clip.video_id, clip.clip_id)
    if mp4.is_file():
        return webp_job(mp4, dst)
    source = Path(clip.source_path)  # a URL input was fetched to work/: no preview then
    if "://" not in clip.source_path and source.is_file() and clip.duration_s > 0:
        return webp_job(source, dst, clip.start_s, clip.duration_s)
    return None


def make_previews(out: Path, clips: list[Clip], workers: int | None = None) -> int:
    """Make the missing WebP previews of `clips`; returns how many were made."""
    if not clips or not has_webp_encoder():
        return 0
    todo = [job for job in (_job(out, c) for c in clips) if job]
    if not todo:
        return 0
    previews_dir(out).mkdir(parents=True, exist_ok=True)
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:  # ffmpeg does the work: threads suffice
        made = sum(pool.map(_make_batch, _batches(todo, workers)))
    if made < len(todo):
        log.warning("report: %d of %d previews could not be made", len(todo) - made, len(todo))
    return made


def media_of(out: Path, clips: list[Clip]) -> dict[str, list[str]]:
    """clip_id -> [kind, path relative to OUT]: the WebP preview, else the staged mp4, else
    its thumbnail. Relative paths, so the page works from disk and behind the review server."""
    found: dict[str, list[str]] = {}
    for video_id, clip_id, *_ in clips:
        webp, mp4 = preview_path(out, clip_id), staged_clip(out, video_id, clip_id)
        for kind, path in (("webp", webp), ("mp4", mp4), ("jpg", mp4.with_suffix(".jpg"))):
            if path.is_file():
                found[clip_id] = [kind, path.relative_to(out).as_posix()]
                break
    return found
