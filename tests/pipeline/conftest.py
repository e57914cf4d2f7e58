"""Shared by the curation tests: does every kept clip show the source frames it names?"""

from __future__ import annotations

import glob
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

# Mean absolute difference (0-255) between a clip frame and its source frame: x264 at the
# default crf measured 0.6-1.0 on the synthetic shapes; a frame one step off, 1.0-4.
MAX_FRAME_MAD = 3.0


def source_frames(path: Path | str) -> dict[int, np.ndarray]:
    """RGB frames of a file by source frame (rank of the packet's timestamp); a plain PyAV
    decode, packet by packet, skipping what fails: the reference a kept clip must match."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        # A packet an edit list hides (is_discard) is no frame of the video.
        shown = (p.pts for p in container.demux(stream) if p.size and not p.is_discard)
        slot = {p: i for i, p in enumerate(sorted(shown))}
    frames: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            try:
                for frame in packet.decode():
                    if frame.pts in slot:
                        frames.setdefault(slot[frame.pts], frame.to_ndarray(format="rgb24"))
            except av.error.FFmpegError:
                continue
    return frames


def shard_clips(out: Path) -> dict[str, bytes]:
    """{clip_id: mp4 bytes} of every clip in the run's shards."""
    clips = {}
    for shard in sorted(glob.glob(str(Path(out) / "shards" / "*.tar"))):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".mp4"):
                    clips[member.name[: -len(".mp4")]] = tar.extractfile(member).read()
    return clips


def decode_clean(data: bytes) -> list[np.ndarray]:
    """Every frame of an mp4; fails if the decoder raises or logs an error."""
    import logging

    import av
    import av.logging

    lines: list[str] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger, level = logging.getLogger("libav"), av.logging.get_level()
    logger.addHandler(handler)
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.open(io.BytesIO(data)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    finally:
        logger.removeHandler(handler)
        av.logging.set_level(level)
    assert not lines, lines
    return frames


def _mad(clip_frame: np.ndarray, src: np.ndarray) -> float:
    import cv2

    h, w = clip_frame.shape[:2]
    if src.shape[:2] != (h, w):
        src = cv2.resize(src, (w, h), interpolation=cv2.INTER_AREA)
    return float(np.abs(clip_frame.astype(np.int16) - src.astype(np.int16)).mean())


def clip_problems(clip: dict, data: bytes, reference: dict[int, np.ndarray]) -> list[str]:
    """What is wrong with one kept clip against its source's frames (empty: nothing)."""
    s, e, cid = clip["start_frame"], clip["end_frame"], clip["clip_id"]
    frames = decode_clean(data)
    if len(frames) != e - s:
        return [f"{cid}: {len(frames)} frames, names {e - s}"]
    if any(s + k not in reference for k in range(e - s)):
        return [f"{cid}: names source frames that do not decode"]
    named = [_mad(f, reference[s + k]) for k, f in enumerate(frames)]
    problems = [
        f"{cid}: frame {s + k} off by MAD {m:.1f}" for k, m in enumerate(named) if m > MAX_FRAME_MAD
    ]
    # A clip one frame early or late matches its named frames worse than the shifted ones.
    for shift in (-1, 1):
        pairs = [(f, reference.get(s + k + shift)) for k, f in enumerate(frames)]
        shifted = [_mad(f, r) for f, r in pairs if r is not None]
        if shifted and np.mean(shifted) <= np.mean(named):
            problems.append(f"{cid}: matches frames shifted by {shift} as well as its own")
    return problems


@pytest.fixture(scope="session")
def kept_clip_problems() -> Callable[..., list[str]]:
    """`f(out, clips, references)`: problems of every kept clip; `references` maps a clip's
    source_path to the file whose decoded frames it must equal (default: the source)."""

    def check(out: Path, clips: list[dict], references: dict[str, Path] | None = None) -> list[str]:
        data, cache, problems = shard_clips(out), {}, []
        for clip in (c for c in clips if c["kept"]):
            ref = (references or {}).get(clip["source_path"], clip["source_path"])
            if ref not in cache:
                cache[ref] = source_frames(ref)
            problems += clip_problems(clip, data[clip["clip_id"]], cache[ref])
        return problems

    return check
