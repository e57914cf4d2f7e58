"""The one analysis decode (`decode_lowres`), and what later stages keep of it, on disk, in
flat memory.

The split stage decodes every frame at `--split.analysis_width`; instead of
decoding again, filter stages (motion, blank, blur) read from the video's
staging folder:

- `lowres.u8`   frames sampled at `--split.sample_fps`, raw uint8 [K, h, w, 3] (memory-mappable)
- `lowres.json` their shape, source frame indices and times
- `stats.npy`   per source frame: mean luma, luma std, sharpness (variance of the Laplacian)
"""

from __future__ import annotations

import json
import math
import subprocess
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.ffmpeg import ffmpeg_exe, hwaccel_args
from pipeline.stages.proxy import is_output_complaint, proxy_filters, proxy_output


def lowres_decode_args(
    path: str,
    width: int,
    height: int,
    hwaccel: str = "none",
    seek_s: float = 0.0,
    proxy: Path | None = None,
) -> list[str]:
    """ffmpeg's arguments for the analysis decode (see `decode_lowres`).

    `hwaccel` "cuda" decodes on NVDEC; the frames come back to system memory for the
    scale. The skipped deblocking filter then has no effect: NVDEC always applies it.
    `seek_s` > 0 (a span of a long video) starts at the keyframe before that many seconds
    from the start; frames keep their own timestamps. `proxy`: also write the previews'
    proxy there, from the same decode (`pipeline.stages.proxy`).
    """
    seek = ["-ss", f"{seek_s:.6f}"] if seek_s > 0 else []
    scale = f"scale={width}:{height}:flags=area,format=rgb24"
    graph = proxy_filters(scale) if proxy else ["-map", "0:v:0", "-vf", scale]
    extra = proxy_output(proxy) if proxy else []
    return [
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-copyts",
        *seek,
        "-skip_loop_filter",
        "all",
        *hwaccel_args(hwaccel),
        "-i",
        path,
        *graph,
        "-fps_mode",
        "passthrough",
        "-enc_time_base:v",
        "demux",
        "-c:v",
        "rawvideo",
        "-f",
        "nut",
        "pipe:1",
        *extra,
    ]


def decode_lowres(
    path: str,
    width: int,
    height: int,
    errors: list[str],
    hwaccel: str = "none",
    seek_s: float = 0.0,
    proxy: Path | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """(source timestamp in seconds, RGB uint8 frame at width×height), in display order.

    ffmpeg decodes and scales in its own threads and streams raw frames in NUT; measured
    2-3× faster than scaling each frame through PyAV. `-copyts` and the demuxer's time base
    keep each frame's own timestamp (without them NUT re-times frames on the average rate,
    so VFR times were off), which is how `damage.Aligner` puts it on its source frame.
    The deblocking filter is skipped: at analysis size it is invisible and it costs ~20%
    of an H.264 decode. With `proxy`, the same ffmpeg writes the previews' proxy there.
    """
    import av

    cmd = [ffmpeg_exe(), *lowres_decode_args(path, width, height, hwaccel, seek_s, proxy)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tail: deque[str] = deque(maxlen=16 if proxy else 5)
    drain = threading.Thread(target=_drain, args=(proc.stderr, tail), daemon=True)
    drain.start()
    try:
        with av.open(proc.stdout, format="nut") as container:
            for frame in container.decode(video=0):
                yield float(frame.time or 0.0), frame.to_ndarray()
    except av.error.FFmpegError as exc:
        errors.append(f"decode: {exc}")
    finally:
        _stop(proc, graceful=proxy is not None)
        drain.join(timeout=5)
        # A damaged stretch costs its frames, not the video: ffmpeg goes on after errors.
        # Also read when the caller stopped early (a span): what ffmpeg said until then.
        said = [line for line in tail if not (proxy and is_output_complaint(line))]
        errors += said[-5:]


def _stop(proc: subprocess.Popen, graceful: bool) -> None:
    """End the decode. `graceful` (a proxy is being written): close the pipe, so ffmpeg
    stops at its next frame and still finishes the proxy file; a killed one would leave
    it without its last frames or header. Killed anyway after 30 s."""
    if graceful:
        proc.stdout.close()  # type: ignore[union-attr]
        try:
            proc.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            pass
    proc.kill()
    proc.wait()


def _drain(stream, tail: deque) -> None:
    for line in iter(stream.readline, b""):
        tail.append(line.decode(errors="replace").strip())


STAT_NAMES = ("luma_mean", "luma_std", "sharpness")


def frame_stats(rgb: np.ndarray) -> tuple[float, float, float]:
    import cv2

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return float(grey.mean()), float(grey.std()), float(cv2.Laplacian(grey, cv2.CV_32F).var())


class LowresRecorder:
    """Split-stage sink: `push` every decoded frame, `finish` once.

    A frame is sampled when it is the first at or after a multiple of 1/sample_fps seconds,
    a rule that needs only the frame before it (`after_s`: that frame's time, for a span
    that starts inside a video), so a video's spans sample what the whole video does.
    """

    def __init__(self, folder: Path, sample_fps: float, after_s: float | None = None) -> None:
        self.folder, self.step = Path(folder), 1.0 / sample_fps if sample_fps > 0 else None
        self._file = open(self.folder / "lowres.u8", "wb")  # noqa: SIM115 - closed in finish
        self._prev, self._shape = after_s, None
        self._indices: list[int] = []
        self._times: list[float] = []
        self._stats: list[tuple[float, float, float]] = []

    def push(self, index: int, t: float, rgb: np.ndarray) -> None:
        self._stats.append(frame_stats(rgb))
        if self.step is not None and self._new_cell(t):
            self._file.write(np.ascontiguousarray(rgb).tobytes())
            self._shape = list(rgb.shape)
            self._indices.append(index)
            self._times.append(round(t, 6))
        self._prev = t

    def _new_cell(self, t: float) -> bool:
        if self._prev is None:
            return True
        cell = math.floor((t + 1e-9) / self.step)
        return cell > math.floor((self._prev + 1e-9) / self.step)

    def finish(self) -> None:
        self._file.close()
        np.save(self.folder / "stats.npy", np.asarray(self._stats, np.float32).reshape(-1, 3))
        meta = {"shape": self._shape, "frame_index": self._indices, "times": self._times}
        (self.folder / "lowres.json").write_text(json.dumps(meta))

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def join_lowres(parts: list[Path], dest: Path) -> None:
    """The spans' low-res samples and statistics as the one-piece analysis writes them."""
    meta: dict[str, Any] = {"shape": None, "frame_index": [], "times": []}
    with open(dest / "lowres.u8", "wb") as out:
        for folder in parts:
            with open(folder / "lowres.u8", "rb") as f:
                while block := f.read(1 << 22):
                    out.write(block)
            m = json.loads((folder / "lowres.json").read_text())
            meta["shape"] = meta["shape"] or m["shape"]
            meta["frame_index"] += m["frame_index"]
            meta["times"] += m["times"]
    stats = np.concatenate([np.load(folder / "stats.npy") for folder in parts])
    np.save(dest / "stats.npy", stats)
    (dest / "lowres.json").write_text(json.dumps(meta))


def clip_lowres(folder: Path, start_frame: int, end_frame: int) -> tuple[np.ndarray, np.ndarray]:
    """Sampled low-res frames of source frames [start, end): (frames [k,h,w,3], source indices)."""
    meta = json.loads((Path(folder) / "lowres.json").read_text())
    if not meta["shape"]:
        return np.zeros((0, 1, 1, 3), np.uint8), np.zeros(0, int)
    idx = np.asarray(meta["frame_index"])
    frames = np.memmap(Path(folder) / "lowres.u8", np.uint8, "r").reshape(-1, *meta["shape"])
    sel = np.flatnonzero((idx >= start_frame) & (idx < end_frame))
    return np.asarray(frames[sel]), idx[sel]


def clip_stats(folder: Path, start_frame: int, end_frame: int) -> dict[str, np.ndarray]:
    """Per-frame statistics of source frames [start, end), by name."""
    stats = np.load(Path(folder) / "stats.npy")[start_frame:end_frame]
    return {name: stats[:, i] for i, name in enumerate(STAT_NAMES)}
