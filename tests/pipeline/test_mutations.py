"""Property test: 100 seeded random mutations of a valid 3-shot mp4, curated in one run.

Bit flips, zeroed byte ranges, truncations at random offsets, and a duplicated or missing
MP4 box (at any depth, parents' sizes fixed up so the file still parses that far). Whatever
the damage: the run never crashes, every file is one row (`ok`, possibly with a damage
note, or `error` with a reason), and every kept clip decodes cleanly with the frame count
and the frames it claims. The reference frames are the unmutated file's: a kept clip that
shows damage it did not notice fails here.
"""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.config.curate import build_config
from pipeline.driver import curate

MUTATIONS, SEED = 100, 2026
KINDS = ("bit_flips", "zeroed", "truncated", "box_duplicated", "box_missing")
CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"udta"}
BASE = dict(
    width=128,
    height=72,
    fps=24.0,
    shots_per_video=(3, 3),
    min_shot_s=0.9,
    max_shot_s=1.1,
    long_shot=False,
    dissolve_prob=0.0,
    black_prob=0.0,
)


def boxes(data: bytes, start: int = 0, end: int | None = None, parents=()) -> list[tuple]:
    """(offset, size, parent offsets) of every MP4 box, depth first."""
    end, out = len(data) if end is None else end, []
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        if size < 8 or start + size > end:
            break
        out.append((start, size, parents))
        if kind in CONTAINERS:
            out += boxes(data, start + 8, start + size, (*parents, start))
        start += size
    return out


def edit_box(data: bytes, box: tuple, duplicate: bool) -> bytes:
    start, size, parents = box
    chunk = data[start : start + size]
    out = bytearray(data[:start] + (chunk * 2 if duplicate else b"") + data[start + size :])
    for p in parents:  # every parent starts before the box, so its offset is unchanged
        (old,) = struct.unpack(">I", out[p : p + 4])
        out[p : p + 4] = struct.pack(">I", old + (size if duplicate else -size))
    return bytes(out)


def mutate(data: bytes, rng: np.random.Generator, kind: str) -> bytes:
    n = len(data)
    if kind == "bit_flips":
        out = bytearray(data)
        for pos in rng.integers(0, n, size=int(rng.integers(1, 9))):
            out[pos] ^= 1 << int(rng.integers(8))
        return bytes(out)
    if kind == "zeroed":
        start, length = int(rng.integers(0, n)), int(rng.integers(16, 2049))
        return data[:start] + bytes(min(length, n - start)) + data[start + length :]
    if kind == "truncated":
        return data[: int(rng.integers(1, n))]
    all_boxes = boxes(data)
    return edit_box(data, all_boxes[int(rng.integers(len(all_boxes)))], kind == "box_duplicated")


@pytest.fixture(scope="module")
def mutated(tmp_path_factory, request):
    from pipeline.synthetic.synth import synthesize

    root = tmp_path_factory.mktemp("mutations")
    truth = synthesize(root / "base", 1, 5, **BASE)[0]
    base = root / "base" / truth["file"]
    data, rng = base.read_bytes(), np.random.default_rng(SEED)
    inputs = root / "in"
    inputs.mkdir()
    kinds = {}
    for i in range(MUTATIONS):
        kind = KINDS[int(rng.integers(len(KINDS)))]
        name = f"m{i:03d}_{kind}.mp4"
        (inputs / name).write_bytes(mutate(data, rng, kind))
        kinds[name] = kind
    out = root / "out"
    cfg = build_config(
        {
            "ray": {"address": "none"},
            "split": {"min_clip_s": 0.5},
            "dedup": {"exact": False, "perceptual": False},
            "clip": {"enabled": False},
            "filters": {"text": {"enabled": False}},
        }
    )
    curate([str(inputs)], out, cfg)
    videos = pq.read_table(out / "videos.parquet").to_pylist()
    clips = pq.read_table(out / "clips.parquet").to_pylist()
    return base, kinds, out, videos, clips


def test_every_mutated_file_is_one_row_with_a_reason(mutated):
    _, kinds, _, videos, _ = mutated
    names = [Path(v["source_path"]).name for v in videos]
    assert sorted(names) == sorted(kinds)
    for v in videos:
        assert v["status"] in ("ok", "error", "duplicate"), v
        if v["status"] == "error":
            assert v["error"] and "\n" not in v["error"], v
    tally = Counter((kinds[Path(v["source_path"]).name], _verdict(v)) for v in videos)
    print("\nmutation verdicts:", dict(sorted(tally.items())))


def _verdict(video: dict) -> str:
    if video["status"] == "ok" and (video["error"] or "").startswith("damaged"):
        return "damaged"
    return video["status"]


def test_every_kept_clip_shows_the_unmutated_frames_it_names(mutated, kept_clip_problems):
    base, _, out, _, clips = mutated
    kept = [c for c in clips if c["kept"]]
    assert kept, "some mutations leave the media intact: they must still give clips"
    problems = kept_clip_problems(out, clips, {c["source_path"]: base for c in kept})
    assert problems == []
