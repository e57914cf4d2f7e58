"""train/finetune/buckets.py: grid validation, bucket assignment, plans, reading records.

The manifest mixes landscape, portrait and square clips of several lengths with the
clips a grid must drop (short, tiny, uncaptioned, unsized, untimed); the shards are
written with the curation's ShardWriter, some with garbage bytes where the mp4 goes.
"""

from __future__ import annotations

import collections
import io
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from schemas import empty_clip
from schemas.shards import ShardWriter
from train.data import shards as shards_module
from train.data.augment import frame_stride, temporal_indices
from train.finetune.buckets import (
    DROP_REASONS,
    Bucket,
    BucketGrid,
    assign,
    available_frames,
    format_plan,
    plan,
    read_records,
)

WAN_SIZES = ((480, 832), (832, 480), (624, 624))
GRID = BucketGrid(frames=(17, 33, 49), sizes=WAN_SIZES)


def clip(key: str, width: Any, height: Any, n_frames: Any, fps: Any = 30.0, **values: Any):
    """(key, record, primary caption) as read_records yields them; duration from the timing."""
    timed = isinstance(n_frames, int) and isinstance(fps, float)
    record = empty_clip(
        clip_id=key,
        width=width,
        height=height,
        n_frames=n_frames,
        fps=fps,
        duration_s=n_frames / fps if timed else None,
        caption=f"clip {key}",
        captions=[{"text": f"clip {key}", "source": "test", "score": 1.0}],
    )
    record.update(values)
    return key, record, record["caption"]


# key -> (record entry, expected bucket or drop reason at GRID, at GRID with fps=10)
MANIFEST = {
    "landscape": (clip("landscape", 1280, 720, 121), "49x480x832", "33x480x832"),
    "portrait": (clip("portrait", 720, 1280, 40), "33x832x480", "too_short"),
    "square": (clip("square", 640, 640, 20, fps=8.0), "17x624x624", "17x624x624"),
    "wide_long": (clip("wide_long", 1920, 1080, 300, fps=60.0), "49x480x832", "49x480x832"),
    "very_short": (clip("very_short", 1280, 720, 16), "too_short", "too_short"),
    "tiny": (clip("tiny", 320, 180, 60), "too_small", "too_small"),
    "just_2x": (clip("just_2x", 416, 240, 60), "49x480x832", "17x480x832"),
    "uncaptioned": (
        clip("uncaptioned", 1280, 720, 60, caption=None, captions=[]),
        "no_caption",
        "no_caption",
    ),
    "no_width": (clip("no_width", None, 720, 60), "no_size", "no_size"),
    "zero_height": (clip("zero_height", 1280, 0, 60), "no_size", "no_size"),
    "no_frames": (clip("no_frames", 1280, 720, None, fps=None), "no_timing", "no_timing"),
    # no n_frames: 2.0 s at 24 fps is 48 frames; at 10 fps, 20
    "from_duration": (
        clip("from_duration", 1280, 720, None, fps=24.0, duration_s=2.0),
        "33x480x832",
        "17x480x832",
    ),
    # no fps: fine at the clip's own rate, unknown at a target rate
    "no_fps": (clip("no_fps", 1280, 720, 50, fps=None), "49x480x832", "no_timing"),
}


def entries() -> list[tuple[str, dict, str | None]]:
    return [entry for entry, _, _ in MANIFEST.values()]


def outcome(entry: tuple[str, dict, str | None], grid: BucketGrid) -> str:
    _, record, primary = entry
    result = assign(record, grid, has_caption=bool(primary or record.get("captions")))
    return result.name if isinstance(result, Bucket) else result


# ---------------------------------------------------------------------------- grid


@pytest.mark.parametrize(
    "kwargs, flag",
    [
        (dict(frames=()), "--data.frame_buckets"),
        (dict(frames=(33, 17)), "--data.frame_buckets"),
        (dict(frames=(17, 17)), "--data.frame_buckets"),
        (dict(frames=(0, 17)), "--data.frame_buckets"),
        (dict(frames=(17.5,)), "--data.frame_buckets"),
        (dict(frames=17), "--data.frame_buckets"),
        (dict(sizes=()), "--data.size_buckets"),
        (dict(sizes=((480,),)), "--data.size_buckets"),
        (dict(sizes=((0, 832),)), "--data.size_buckets"),
        (dict(sizes=("480by832",)), "--data.size_buckets"),
        (dict(sizes=((480, 832), [480, 832])), "--data.size_buckets"),
        (dict(fps=0), "--data.fps"),
        (dict(fps=-8.0), "--data.fps"),
        (dict(fps=math.nan), "--data.fps"),
        (dict(max_upscale=0), "--data.max_upscale"),
        (dict(max_upscale=math.inf), "--data.max_upscale"),
    ],
)
def test_grid_validation_names_the_flag(kwargs: dict, flag: str) -> None:
    args = dict(frames=(17, 33), sizes=WAN_SIZES) | kwargs
    with pytest.raises(ValueError) as err:
        BucketGrid(**args)
    assert str(err.value).startswith(flag)


def test_grid_normalises_lists_to_tuples() -> None:
    grid = BucketGrid(frames=[17, 33.0], sizes=[[480, 832], "832x480"], fps=16, max_upscale=1)
    assert grid.frames == (17, 33) and grid.sizes == ((480, 832), (832, 480))
    assert grid.fps == 16.0 and grid.max_upscale == 1.0
    assert hash(grid) == hash(BucketGrid((17, 33), ((480, 832), (832, 480)), 16.0, 1.0))
    assert json.loads(json.dumps(grid.to_dict()))["sizes"] == [[480, 832], [832, 480]]


@pytest.mark.parametrize(
    "frames, sizes, temporal, spatial, flag, hint",
    [
        ((17, 30), WAN_SIZES, 4, 16, "--data.frame_buckets", "30 -> 29 or 33"),
        ((17, 33), ((480, 830),), 4, 16, "--data.size_buckets", "480x830 -> 480x832"),
        ((17, 21), ((480, 832),), 8, 32, "--data.frame_buckets", "21 -> 17 or 25"),
        ((17, 33), WAN_SIZES, 8, 32, "--data.size_buckets", "624x624 -> 640x640"),
        ((16,), ((480, 832),), 4, 16, "--data.frame_buckets", "16 -> 13 or 17"),
    ],
)
def test_check_family_rejects_off_grid_buckets(
    frames: tuple, sizes: tuple, temporal: int, spatial: int, flag: str, hint: str
) -> None:
    with pytest.raises(ValueError) as err:
        BucketGrid(frames, sizes).check_family(temporal, spatial, "fam")
    message = str(err.value)
    assert message.startswith(flag) and hint in message and "fam" in message


@pytest.mark.parametrize(
    "frames, sizes, temporal, spatial",
    [
        ((1, 17, 33, 49, 81), WAN_SIZES, 4, 16),  # Wan: 4x temporal, 8 px x 2 patch
        ((1, 9, 49, 97, 121), ((480, 704), (704, 480), (512, 512)), 8, 32),  # LTX
        ((13, 49), ((480, 720), (720, 480)), 4, 16),  # CogVideoX
    ],
)
def test_check_family_accepts_on_grid_buckets(
    frames: tuple, sizes: tuple, temporal: int, spatial: int
) -> None:
    BucketGrid(frames, sizes).check_family(temporal, spatial, "fam")


# ---------------------------------------------------------------------------- assign


@pytest.mark.parametrize("key", list(MANIFEST))
def test_assign_at_the_clip_rate_and_at_a_target_rate(key: str) -> None:
    entry, at_own_rate, at_10_fps = MANIFEST[key]
    assert outcome(entry, GRID) == at_own_rate
    assert outcome(entry, BucketGrid(GRID.frames, GRID.sizes, fps=10)) == at_10_fps


def test_assign_checks_reasons_in_order() -> None:
    tiny_short_uncaptioned = {"width": 32, "height": 32, "n_frames": 3, "fps": 30.0}
    assert assign(tiny_short_uncaptioned, GRID, has_caption=False) == "no_caption"
    assert assign(tiny_short_uncaptioned, GRID, has_caption=True) == "too_short"
    assert assign({**tiny_short_uncaptioned, "width": "32"}, GRID, True) == "no_size"
    assert assign({"width": 32, "height": 32}, GRID, True) == "no_timing"
    assert set(DROP_REASONS) >= {"no_caption", "no_size", "too_short", "too_small"}


def test_max_upscale_bounds_the_enlargement() -> None:
    record = {"width": 416, "height": 240, "n_frames": 60, "fps": 30.0}  # exactly 2x to 832x480
    assert assign(record, GRID, True) == Bucket(49, 480, 832)
    strict = BucketGrid(GRID.frames, GRID.sizes, max_upscale=1.5)
    assert assign(record, strict, True) == "too_small"
    assert assign({**record, "width": 1664, "height": 960}, strict, True) == Bucket(49, 480, 832)


def test_ties_go_to_the_larger_area_then_the_first_listed() -> None:
    square = {"width": 1000, "height": 1000, "n_frames": 17, "fps": 30.0}
    mirrored = ((480, 832), (832, 480))
    assert assign(square, BucketGrid((17,), mirrored), True) == Bucket(17, 480, 832)
    assert assign(square, BucketGrid((17,), mirrored[::-1]), True) == Bucket(17, 832, 480)
    nested = ((480, 480), (624, 624))
    for sizes in (nested, nested[::-1]):
        assert assign(square, BucketGrid((17,), sizes), True) == Bucket(17, 624, 624)
    # 3:2 is exactly as far (x1.5) from 9:4 as from 1:1 in log space; floats would pick by
    # rounding error, fractions tie and the larger area wins in either order
    three_two = {"width": 1200, "height": 800, "n_frames": 17, "fps": 30.0}
    for sizes in (((400, 900), (720, 720)), ((720, 720), (400, 900))):
        assert assign(three_two, BucketGrid((17,), sizes), True) == Bucket(17, 720, 720)


@pytest.mark.parametrize("fps", [8.0, 12.0, 16.0, 24.0])
@pytest.mark.parametrize("clip_fps", [24.0, 25.0, 29.97, 30.0, 60.0])
def test_available_frames_are_sampled_without_lowering_the_stride(
    fps: float, clip_fps: float
) -> None:
    # a clip put in bucket F must give F frames at the target rate, not slower ones
    stride = frame_stride(clip_fps, fps, None)
    for n_frames in range(1, 160):
        frames = available_frames({"n_frames": n_frames, "fps": clip_fps}, fps)
        assert frames == math.floor(n_frames * min(1.0, fps / clip_fps) + 1e-9)
        if frames >= 1:
            _, used = temporal_indices(n_frames, frames, stride)
            assert used == stride, (n_frames, frames)


def test_bucket_names() -> None:
    bucket = Bucket(33, 480, 832)
    assert bucket.name == str(bucket) == "33x480x832"
    assert Bucket.parse("33x480x832") == bucket
    assert sorted([Bucket(49, 480, 832), Bucket(17, 832, 480), bucket])[0] == Bucket(17, 832, 480)


# ---------------------------------------------------------------------------- plan


def test_plan_totals_add_up_and_match_the_assignments() -> None:
    report = json.loads(json.dumps(plan(entries(), GRID)))  # JSON-able as it is
    records = {key: record for key, record, _ in entries()}
    durations = {key: record["duration_s"] or 0.0 for key, record in records.items()}
    expected = {key: want for key, (_, want, _) in MANIFEST.items()}

    assert report["grid"] == GRID.to_dict()
    assert report["assignments"] == {k: v for k, v in expected.items() if "x" in v}
    counts = collections.Counter(report["assignments"].values())
    assert {b["bucket"]: b["clips"] for b in report["buckets"]} == counts
    for b in report["buckets"]:
        assert Bucket.parse(b["bucket"]) == Bucket(b["frames"], b["height"], b["width"])
        keys = [k for k, v in report["assignments"].items() if v == b["bucket"]]
        assert b["seconds"] == pytest.approx(sum(durations[k] for k in keys), abs=1e-3)
    names = [b["bucket"] for b in report["buckets"]]
    assert names == sorted(names, key=lambda n: Bucket.parse(n))

    assert list(report["dropped"]) == list(DROP_REASONS)
    for reason, d in report["dropped"].items():
        keys = [k for k, v in expected.items() if v == reason]
        assert d["clips"] == len(keys)
        assert d["seconds"] == pytest.approx(sum(durations[k] for k in keys), abs=1e-3)

    total = report["total"]
    dropped = report["dropped"].values()
    assert total["clips"] == len(MANIFEST) == total["used_clips"] + sum(d["clips"] for d in dropped)
    assert total["used_clips"] == len(report["assignments"]) == sum(counts.values())
    used_s = sum(b["seconds"] for b in report["buckets"])
    assert total["used_seconds"] == pytest.approx(used_s, abs=1e-9)
    dropped_s = sum(d["seconds"] for d in dropped)
    assert total["seconds"] == pytest.approx(total["used_seconds"] + dropped_s, abs=1e-9)
    assert total["seconds"] == pytest.approx(sum(durations.values()), abs=1e-3)


def test_plan_counts_a_clip_as_captioned_by_any_caption() -> None:
    key, record, _ = clip("alt", 1280, 720, 60, caption=None)  # only the captions list
    assert plan([(key, record, "")], GRID)["assignments"] == {"alt": "49x480x832"}
    report = plan([(key, {**record, "captions": [{"text": "  "}]}, "")], GRID)
    assert report["dropped"]["no_caption"]["clips"] == 1


def test_format_plan_mentions_every_bucket_and_reason() -> None:
    report = plan(entries(), GRID)
    text = format_plan(report)
    for b in report["buckets"]:
        assert b["bucket"] in text
    for reason in DROP_REASONS:
        assert reason in text
    assert "WARNING" not in text
    assert f"{len(MANIFEST)}" in text.splitlines()[-1]


def test_format_plan_warns_when_nothing_is_usable() -> None:
    short = [MANIFEST["very_short"][0], MANIFEST["tiny"][0], MANIFEST["very_short"][0]]
    text = format_plan(plan(short, GRID))
    assert "WARNING" in text and "too_short" in text.splitlines()[-1]
    assert "WARNING" in format_plan(plan([], GRID))


# ---------------------------------------------------------------------------- shards


def tiny_video(frames: int = 4) -> np.ndarray:
    rng = np.random.default_rng(frames)
    return rng.integers(0, 255, (frames, 32, 48, 3), dtype=np.uint8)


def test_read_records_gets_every_record_and_caption(tmp_path: Path, shard_writer) -> None:
    samples = [(key, tiny_video(), record) for key, record, _ in entries()[:2]]
    garbage = np.random.default_rng(0).bytes(1 << 18)  # 256 KiB where the mp4 would be
    samples += [(key, garbage, record) for key, record, _ in entries()[2:]]
    glob = shard_writer(tmp_path / "shards", samples, 8.0, 4)
    assert len(list((tmp_path / "shards").glob("*.tar"))) == math.ceil(len(samples) / 4)

    got = list(read_records(glob))
    assert [key for key, _, _ in got] == [key for key, _, _ in samples]
    for (_, record, primary), (_, _, written) in zip(got, samples, strict=True):
        assert record == json.loads(json.dumps(written))
        assert primary == (written["caption"] or "")
    report = plan(got, GRID)
    assert report["assignments"] == plan(entries(), GRID)["assignments"]


def test_read_records_seeks_past_the_video(
    tmp_path: Path, shard_writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    mp4 = np.random.default_rng(1).bytes(1 << 18)
    samples = [(key, mp4, record) for key, record, _ in entries()]
    glob = shard_writer(tmp_path, samples, 8.0, 100)
    on_disk = sum(p.stat().st_size for p in tmp_path.glob("*.tar"))

    read = [0]

    class CountingFile(io.FileIO):  # unbuffered: counts exactly the bytes tarfile asks for
        def read(self, size: int = -1) -> bytes:
            data = super().read(size)
            read[0] += len(data)
            return data

    monkeypatch.setattr(shards_module, "open", lambda path, mode: CountingFile(path), raising=False)
    assert len(list(read_records(glob))) == len(samples)
    # three 512-byte headers, a json and a txt per sample; not one mp4 (256 KiB each)
    assert 0 < read[0] < len(samples) * 8192 < on_disk / 20, (read[0], on_disk)


def test_read_records_survives_bad_json_and_bad_shards(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with ShardWriter(tmp_path / "good") as writer:
        writer.write("bad_json", {"json": b"{not json", "txt": "a caption", "mp4": b"\0"})
        writer.write("list_json", {"json": [1, 2], "txt": "another", "mp4": b"\0"})
        writer.write("no_json", {"txt": "only text", "mp4": b"\0"})
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "shard-000000.tar").write_bytes(b"this is not a tar file" * 100)

    with caplog.at_level(logging.WARNING, logger="train.finetune.buckets"):
        got = list(read_records([str(tmp_path / "bad"), str(tmp_path / "good")]))
    assert got == [
        ("bad_json", {}, "a caption"),
        ("list_json", {}, "another"),
        ("no_json", {}, "only text"),
    ]
    assert "unreadable shard" in caplog.text and "bad_json" in caplog.text
    assert plan(got, GRID)["dropped"]["no_size"]["clips"] == 3
    with pytest.raises(FileNotFoundError, match="--data.train_shards"):
        list(read_records(str(tmp_path / "missing.tar"), flag="--data.train_shards"))
