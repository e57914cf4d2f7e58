"""What later stages keep from the one analysis decode, on disk, in flat memory.

The split stage decodes every frame at `--split.analysis_width`; instead of
decoding again, filter stages (motion, blank, blur) read from the video's
staging folder:

- `lowres.u8`   frames sampled at `--split.sample_fps`, raw uint8 [K, h, w, 3] (memory-mappable)
- `lowres.json` their shape, source frame indices and times
- `stats.npy`   per source frame: mean luma, luma std, sharpness (variance of the Laplacian)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

STAT_NAMES = ("luma_mean", "luma_std", "sharpness")


def frame_stats(rgb: np.ndarray) -> tuple[float, float, float]:
    import cv2

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return float(grey.mean()), float(grey.std()), float(cv2.Laplacian(grey, cv2.CV_32F).var())


class LowresRecorder:
    """Split-stage sink: `push` every decoded frame, `finish` once."""

    def __init__(self, folder: Path, sample_fps: float) -> None:
        self.folder, self.step = Path(folder), 1.0 / sample_fps if sample_fps > 0 else None
        self._file = open(self.folder / "lowres.u8", "wb")  # noqa: SIM115 - closed in finish
        self._next_t, self._shape = 0.0, None
        self._indices: list[int] = []
        self._times: list[float] = []
        self._stats: list[tuple[float, float, float]] = []

    def push(self, index: int, t: float, rgb: np.ndarray) -> None:
        self._stats.append(frame_stats(rgb))
        if self.step is not None and t + 1e-9 >= self._next_t:
            self._file.write(np.ascontiguousarray(rgb).tobytes())
            self._shape = list(rgb.shape)
            self._indices.append(index)
            self._times.append(round(t, 6))
            self._next_t = t + self.step

    def finish(self) -> None:
        self._file.close()
        np.save(self.folder / "stats.npy", np.asarray(self._stats, np.float32).reshape(-1, 3))
        meta = {"shape": self._shape, "frame_index": self._indices, "times": self._times}
        (self.folder / "lowres.json").write_text(json.dumps(meta))

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


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
