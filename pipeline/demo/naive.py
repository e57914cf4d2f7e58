"""The naive dataset of the ablation: what a user without clipmill would build.

Fixed 4-second chunks of every raw file, back to back, cut wherever they fall
(across hard cuts, dissolves and black gaps), each captioned with the text of the
first sidecar cue that overlaps it (or, with none, the whole file's text); no
filtering, no dedup, no captions checked. Written through the same `ShardWriter`,
at the same size as the curated clips, so training sees the same kind of sample.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np

from pipeline.captions.sidecar import load_timed
from pipeline.synthetic.synth import encode_frames
from schemas.shards import ShardWriter

CHUNK_S = 4.0


def _scaled(frame: av.VideoFrame, short_side: int) -> np.ndarray:
    rgb = frame.to_ndarray(format="rgb24")
    h, w = rgb.shape[:2]
    scale = short_side / min(h, w)
    size = (max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _caption(cues: list, start: float, end: float, whole: str) -> str:
    """The first cue overlapping [start, end), else the whole file's text."""
    first = next((c for c in cues if c.end > start and c.start < end), None)
    return first.text if first is not None else whole


def naive_shards(raw: Path, output: Path, short_side: int = 90) -> dict[str, int]:
    """Chunk every `*.mp4` in `raw` into `output/shards/`; returns counts for the report."""
    writer = ShardWriter(output / "shards")
    counts = {"videos": 0, "chunks": 0}
    for video in sorted(raw.glob("*.mp4")):
        errors: list[str] = []
        timed = load_timed(str(video), errors)
        cues = sorted((c for t in timed for c in t.cues), key=lambda c: c.start)
        whole = " ".join(dict.fromkeys(c.text for c in cues)) or video.stem
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or 24)
            frames = [_scaled(f, short_side) for f in container.decode(stream)]
        counts["videos"] += 1
        step = round(CHUNK_S * fps)
        for start in range(0, len(frames) - step + 1, step):
            chunk = frames[start : start + step]
            key = f"{video.stem}_{start:07d}_{start + step:07d}"
            tmp = output / f"{key}.mp4"
            h, w = chunk[0].shape[:2]
            encode_frames(tmp, chunk, w, h, fps)
            caption = _caption(cues, start / fps, (start + step) / fps, whole)
            record = {"clip_id": key, "fps": fps, "n_frames": step, "caption": caption}
            writer.write(key, {"mp4": tmp.read_bytes(), "txt": caption, "json": record})
            tmp.unlink()
            counts["chunks"] += 1
    writer.close()
    (output / "naive.json").write_text(json.dumps(counts) + "\n", encoding="utf-8")
    return counts
