"""Mid-stream-damaged files with known damaged frames, for `clipmill synth --bad-inputs`.

A clean multi-shot video is rendered, then bytes inside chosen packets are zeroed, as a
half-copied or badly transferred file has them. The ground truth is measured, not
predicted: both files are decoded and a source frame is damaged when the damaged file
shows no frame at its timestamp or a different picture there. So the truth does not
depend on how clipmill finds damage.

- `damaged_mid`: one stretch in the middle (a P-frame of the middle shot), the rest clean.
- `damaged_throughout`: every keyframe but the first: only the first shot is clean.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np

# 6 shots of ~1.6 s at 24 fps (~10 s), no dissolves or black gaps: every cut is hard.
SHOTS = dict(
    width=192,
    height=108,
    fps=24.0,
    shots_per_video=(6, 6),
    min_shot_s=1.5,
    max_shot_s=1.8,
    long_shot=False,
    dissolve_prob=0.0,
    black_prob=0.0,
)
ZERO_BYTES = 2048


def make_damaged(
    output: Path, clean: Path, truth: dict[str, Any]
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Write `damaged_mid.mp4` and `damaged_throughout.mp4` from `clean` (made with `SHOTS`,
    its synth truth entry `truth`); return (paths, truth by file name)."""
    packets = _packets(clean)
    keys = [i for i, p in enumerate(packets) if p["key"]]
    middle = len(packets) // 2
    mid = next(i for i in range(middle, len(packets)) if not packets[i]["key"])
    made, facts = {}, {}
    for name, hit in (("damaged_mid", [mid]), ("damaged_throughout", keys[1:])):
        path = output / f"{name}.mp4"
        data = bytearray(clean.read_bytes())
        for i in hit:
            pos, size = packets[i]["pos"], min(ZERO_BYTES, packets[i]["size"])
            data[pos : pos + size] = bytes(size)
        path.write_bytes(bytes(data))
        made[name] = path
        facts[path.name] = {
            "n_frames": truth["n_frames"],
            "fps": truth["fps"],
            "shots": [[s["start_frame"], s["end_frame"]] for s in truth["shots"]],
            "damaged": damaged_frames(clean, path),
        }
    return made, facts


def _packets(path: Path) -> list[dict[str, Any]]:
    """Video packets in decode order: byte offset, size, keyframe flag."""
    with av.open(str(path)) as container:
        return [
            {"pos": p.pos, "size": p.size, "key": bool(p.is_keyframe)}
            for p in container.demux(video=0)
            if p.size
        ]


def decode_by_pts(path: Path) -> dict[int, np.ndarray]:
    """Every frame a plain PyAV decode yields, keyed by its timestamp (errors skipped)."""
    frames: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            try:
                for frame in packet.decode():
                    frames.setdefault(frame.pts, frame.to_ndarray(format="rgb24"))
            except av.error.FFmpegError:
                continue
    return frames


def damaged_frames(clean: Path, damaged: Path) -> list[list[int]]:
    """[start, end) ranges of source frames the damaged file lost or shows differently."""
    good, bad = decode_by_pts(clean), decode_by_pts(damaged)
    flags = [pts not in bad or not np.array_equal(good[pts], bad[pts]) for pts in sorted(good)]
    edges = np.flatnonzero(np.diff(np.concatenate([[0], np.array(flags, np.int8), [0]])))
    return [[int(a), int(b)] for a, b in zip(edges[::2], edges[1::2], strict=True)]
