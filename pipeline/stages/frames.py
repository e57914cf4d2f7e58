"""Full-size frames of a staged clip, decoded once and shared by OCR, CLIP and the thumbnail.

The motion, blank and blur filters read the split's low-res samples
(`pipeline.stages.lowres`); text and CLIP need real pixels, so they read the clip's
small mp4. Frame positions are fixed by the clip's frame count: `k` frames sit
at the middles of `k` equal parts, so k=1 is the middle frame (the thumbnail).
The first stage to ask decodes every position any consumer will want and
leaves them in `{clip_id}.frames.npz`; the next stage reads that file instead
of decoding again, and the finalize stage deletes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.config.curate import CurateConfig

CACHE_SUFFIX = ".frames.npz"


def frame_counts(cfg: CurateConfig) -> tuple[int, ...]:
    """How many frames each consumer of this module reads per clip (decoded together)."""
    counts = [1] if cfg.shards.thumbnails else []
    if cfg.filters.text.enabled:
        counts.append(cfg.filters.text.frames)
    if cfg.clip.enabled:
        counts.append(cfg.clip.frames)
    return tuple(counts)


def positions(n_frames: int, k: int) -> list[int]:
    """Indices of k frames at the middles of k equal parts of [0, n_frames)."""
    n = max(1, n_frames)
    return sorted({min(n - 1, int((i + 0.5) * n / k)) for i in range(k)})


@dataclass
class FrameSample:
    """Decoded RGB frames of one clip, by index."""

    n_frames: int
    frames: dict[int, np.ndarray]

    def pick(self, k: int) -> np.ndarray:
        """[k', H, W, 3] uint8 at `positions(n_frames, k)` (k' < k only for tiny clips)."""
        return np.stack([self.frames[i] for i in positions(self.n_frames, k)])


def load_frames(folder: Path, clip_id: str, counts: tuple[int, ...]) -> FrameSample:
    """Frames at the positions of every k in `counts`, from the cache or one decode."""
    cache = Path(folder) / f"{clip_id}{CACHE_SUFFIX}"
    if cache.exists():
        with np.load(cache) as data:
            n = int(data["n_frames"])
            sample = FrameSample(n, dict(zip(data["index"].tolist(), data["frames"], strict=True)))
        if all(set(positions(n, k)) <= sample.frames.keys() for k in counts):
            return sample
    sample = decode_positions(Path(folder) / f"{clip_id}.mp4", counts)
    index = sorted(sample.frames)
    tmp = cache.with_name(cache.name + ".tmp.npz")
    np.savez(tmp, n_frames=sample.n_frames, index=index, frames=[sample.frames[i] for i in index])
    os.replace(tmp, cache)
    return sample


def decode_positions(path: Path, counts: tuple[int, ...]) -> FrameSample:
    """Decode a clip up to the last wanted position; frames past its real end repeat the last."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        n = int(stream.frames or 0) or 1
        wanted = sorted({i for k in counts for i in positions(n, k)})
        got: dict[int, np.ndarray] = {}
        last = None
        for i, frame in enumerate(container.decode(stream)):
            last = frame
            if i in wanted:
                got[i] = frame.to_ndarray(format="rgb24")
            if i >= wanted[-1]:
                break
    if last is None:
        raise ValueError(f"no frame in {path.name}")
    tail = last.to_ndarray(format="rgb24")
    return FrameSample(n, {i: got.get(i, tail) for i in wanted})


def remove_caches(folder: Path) -> None:
    for path in Path(folder).glob(f"*{CACHE_SUFFIX}"):
        path.unlink(missing_ok=True)
