"""Read and write short H.264 clips with PyAV, in memory, frame-exact.

The trainer decodes one clip per sample, so the cost that matters is per
frame. Before the first wanted frame, decoding starts at the keyframe before
it (an mp4 index lookup) and skips the frames nothing references; after it,
only wanted frames are converted, resized in the same swscale pass as the
colour conversion by a reformatter that is reused (building one per frame
cost more than decoding). Decoding runs single-threaded by default because the
parallelism comes from DataLoader workers, one clip each.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

# Seek only when the first wanted frame is at least this far in: nearer, the
# keyframe before it is almost surely frame 0 and the seek buys nothing.
SEEK_MIN_FRAMES = 24


@dataclass(frozen=True)
class VideoInfo:
    """What a clip's container says about its video stream."""

    fps: float
    n_frames: int
    width: int
    height: int


class Mp4Reader:
    """One open clip: `info` first (to pick frames), then `read(indices)`.

    Raises `av.error.FFmpegError` or `ValueError` for bytes that are not an mp4
    with a video stream; callers that must not crash (the data pipeline) catch them.
    """

    def __init__(self, data: bytes, threads: int = 1) -> None:
        # format="mp4" so that a PNG or a text file stored as .mp4 fails here
        # instead of decoding as a one-frame "video".
        self._container = av.open(io.BytesIO(data), format="mp4")
        if not self._container.streams.video:
            self._container.close()
            raise ValueError("mp4 has no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.codec_context.thread_count = threads
        self.info = _stream_info(self._stream)
        self._used = False

    def read(self, indices: Sequence[int], size: tuple[int, int] | None = None) -> np.ndarray:
        """Frames `indices` (any order, repeats allowed) as uint8 [T, H, W, 3] RGB.

        `size` = (height, width) resizes in the same pass as the colour
        conversion. An index past the real end of the stream (metadata that
        over-counts) gets the last decoded frame.
        """
        if len(indices) == 0:
            raise ValueError("no frame indices given")
        wanted = sorted(set(int(i) for i in indices))
        if wanted[0] < 0:
            raise ValueError(f"negative frame index {wanted[0]}")
        frames = self._read_by_pts(wanted, size)
        if frames is None:
            frames = self._read_sequential(wanted, size)
        if not frames:
            raise ValueError("no frame could be decoded")
        return np.stack([_nearest_before(frames, i) for i in indices])

    def read_all(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """Every frame the stream holds (whatever the container's count says)."""
        self._rewind()
        frames = [_to_rgb(frame, size) for frame in self._container.decode(self._stream)]
        if not frames:
            raise ValueError("no frame could be decoded")
        return np.stack(frames)

    def _rewind(self) -> None:
        # A second read on the same reader starts from the top again.
        if self._used:
            self._container.seek(0, stream=self._stream)
        self._used = True

    def _read_sequential(self, wanted: list[int], size: tuple[int, int] | None) -> dict:
        self._rewind()
        targets, stop = set(wanted), wanted[-1]
        out: dict[int, np.ndarray] = {}
        index, frame = -1, None
        for index, frame in enumerate(self._container.decode(self._stream)):
            if index in targets:
                out[index] = _to_rgb(frame, size)
            if index >= stop:
                return out
        if frame is not None and index not in out:  # stream ended early: keep its last frame
            out[index] = _to_rgb(frame, size)
        return out

    def _read_by_pts(self, wanted: list[int], size: tuple[int, int] | None) -> dict | None:
        """Decode from the keyframe before `wanted[0]` (seeking there when it is far),
        indexing frames by timestamp.

        Frames before `wanted[0]` that no other frame references are not decoded
        at all (skip_frame NONREF): they cannot change the frames wanted. Returns
        None (the caller counts frames from the start instead) when timestamps
        are missing or do not line up with the frame rate.
        """
        stream, ctx, fps = self._stream, self._stream.codec_context, self.info.fps
        if stream.time_base is None or fps <= 0:
            return None
        origin, tb = stream.start_time or 0, float(stream.time_base)
        if wanted[0] >= SEEK_MIN_FRAMES:
            self._used = True
            self._container.seek(origin + int(wanted[0] / fps / tb), stream=stream, backward=True)
        else:
            self._rewind()
        targets, stop = set(wanted), wanted[-1]
        out: dict[int, np.ndarray] = {}
        last, skipping = None, True
        ctx.skip_frame = "NONREF"
        try:
            for packet in self._container.demux(stream):
                # Packets come in decode order with display timestamps: the first one
                # showing a wanted frame ends the skipping, before it is decoded.
                if skipping and (
                    packet.pts is None or _index(packet.pts, origin, tb, fps) >= wanted[0]
                ):
                    ctx.skip_frame, skipping = "DEFAULT", False
                for frame in packet.decode():
                    if frame.pts is None:
                        return None
                    index = _index(frame.pts, origin, tb, fps)
                    if not out and index > wanted[0]:
                        return None  # the first wanted frame has no timestamp of its own
                    last = (index, frame)
                    if index in targets:
                        out[index] = _to_rgb(frame, size)
                    if index >= stop:
                        return out
        finally:
            ctx.skip_frame = "DEFAULT"
        if last is not None and last[0] not in out:  # stream ended early: keep its last frame
            out[last[0]] = _to_rgb(last[1], size)
        return out

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> Mp4Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _index(pts: int, origin: int, time_base: float, fps: float) -> int:
    return round((pts - origin) * time_base * fps)


def _nearest_before(frames: dict[int, np.ndarray], index: int) -> np.ndarray:
    """The frame at `index`, else the closest decoded one before it (else the first)."""
    if index in frames:
        return frames[index]
    before = [i for i in frames if i < index]
    return frames[max(before)] if before else frames[min(frames)]


def _stream_info(stream: Any) -> VideoInfo:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    n_frames = int(stream.frames or 0)
    if n_frames <= 0 and stream.duration and stream.time_base and fps:
        # No frame count in the index: estimate; read() clamps if it over-counts.
        n_frames = max(1, round(float(stream.duration * stream.time_base) * fps))
    width, height = stream.codec_context.width, stream.codec_context.height
    return VideoInfo(fps=fps, n_frames=n_frames, width=width, height=height)


_local = threading.local()


def _to_rgb(frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
    # One reformatter per thread and process, reused: it keeps its swscale
    # context between calls, where frame.to_ndarray(...) builds one per frame,
    # which cost more than decoding the frame (1.3 ms per 320x180 frame). Never
    # inherited across fork, and single-threaded: a forked DataLoader worker
    # using a context whose thread pool stayed in the parent hangs forever.
    cached = getattr(_local, "reformatter", None)
    if cached is None or cached[0] != os.getpid():
        cached = _local.reformatter = (os.getpid(), VideoReformatter())
    height, width = size if size is not None else (frame.height, frame.width)
    # AREA averages when shrinking (no aliasing of fine texture), the common case here.
    out = cached[1].reformat(frame, width, height, "rgb24", interpolation="AREA", threads=1)
    return out.to_ndarray()


def probe_mp4(data: bytes) -> VideoInfo:
    """fps, frame count and size of an in-memory mp4, without decoding frames."""
    with Mp4Reader(data) as reader:
        return reader.info


def decode_mp4(
    data: bytes,
    indices: Sequence[int] | None = None,
    size: tuple[int, int] | None = None,
    threads: int = 1,
) -> np.ndarray:
    """Decode an in-memory mp4 to uint8 [T, H, W, 3] RGB.

    indices: which frames (default: all); size: (height, width) to resize to;
    threads: decoder threads (0 = FFmpeg's choice).
    """
    with Mp4Reader(data, threads=threads) as reader:
        return reader.read_all(size) if indices is None else reader.read(indices, size)


def _as_uint8_video(video: Any) -> np.ndarray:
    if hasattr(video, "detach"):  # a torch tensor, possibly on an accelerator
        video = video.detach().cpu().numpy()
    arr = np.asarray(video)
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise ValueError(f"video must be [T, H, W, 3] (or 1 channel), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"video must be uint8, got {arr.dtype}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    # yuv420p halves chroma resolution, so x264 needs even sides: replicate the edge.
    pad_h, pad_w = arr.shape[1] % 2, arr.shape[2] % 2
    if pad_h or pad_w:
        arr = np.pad(arr, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return np.ascontiguousarray(arr)


def write_mp4(
    path: str | Path, video: Any, fps: float, crf: int = 18, gop: int | None = None
) -> None:
    """Write uint8 [T, H, W, 3] frames as H.264 yuv420p mp4 (faststart) at `fps`.

    Accepts numpy arrays or torch tensors. Odd sides are padded by one
    replicated row/column (yuv420p needs even sides). `gop`: frames between
    keyframes (x264's default, 250, when None); short GOPs make seeking cheap.
    """
    arr = _as_uint8_video(video)
    if len(arr) == 0:
        raise ValueError("video has no frames")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    rate = Fraction(fps).limit_denominator(1001)  # 29.97 -> 30000/1001
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height = arr.shape[2], arr.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        if gop is not None:
            stream.codec_context.gop_size = gop
        for image in arr:
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def encode_mp4(video: Any, fps: float, crf: int = 18, gop: int | None = None) -> bytes:
    """`write_mp4` to bytes (through a temp file: faststart rewrites the file by name)."""
    fd, name = tempfile.mkstemp(suffix=".mp4")
    os.close(fd)
    try:
        write_mp4(name, video, fps, crf=crf, gop=gop)
        return Path(name).read_bytes()
    finally:
        os.unlink(name)
