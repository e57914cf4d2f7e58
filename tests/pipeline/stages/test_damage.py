"""Damage found on the source's own timeline: `pipeline/stages/damage.py` and the split."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest

from pipeline.config.curate import SplitConfig
from pipeline.stages.damage import Aligner, Timeline, _grid, damaged_ranges, read_timeline
from pipeline.stages.split import Splitter, analysis_size


def _timeline(decode_pos: list[int], keys: list[int], present: list[bool] | None = None):
    n = len(decode_pos)
    return Timeline(
        pts=np.arange(n, dtype=np.int64),
        present=np.array(present if present is not None else [True] * n),
        key=np.isin(np.arange(n), keys),
        decode_pos=np.array(decode_pos, np.int64),
        time_base=Fraction(1, 24),
        step_s=1 / 24,
    )


def test_damage_reaches_the_next_keyframe_and_the_b_frames_that_refer_back():
    # Display slots 0..9; x264-like decode order: I0 P3 B1 B2 P6(key) B4 B5 P9 B7 B8.
    order = [0, 2, 3, 1, 5, 6, 4, 8, 9, 7]
    tl = _timeline(order, keys=[6])
    # P3 broken: B1 and B2 predict from it (shown before, decoded after); so does all up
    # to the keyframe at slot 6 in decode order.
    assert damaged_ranges({3}, set(), tl) == [(1, 6)]
    # A broken B-frame that nothing predicts from still takes the rest of its interval:
    # which frames are references is not in the container, so the margin is conservative.
    assert damaged_ranges({2}, set(), tl) == [(2, 6)]
    # Past the last keyframe, damage runs to the end (P9 and the B7, B8 shown before it).
    assert damaged_ranges({9}, set(), tl) == [(7, 10)]


def test_a_timestamp_jump_marks_only_its_own_slots():
    tl = _timeline([0, 1, -1, -1, 2, 3], keys=[0], present=[True, True, False, False, True, True])
    assert damaged_ranges(set(), {2, 3}, tl) == [(2, 4)]


def test_grid_numbers_a_constant_rate_stream_and_gives_up_on_irregular_or_sparse_ones():
    tb = Fraction(1, 1000)
    # 24 fps in milliseconds (41/42 ms steps) with two frames lost: slots keep their place.
    pts = np.round(np.array([0, 1, 2, 5, 6]) * 1000 / 24).astype(np.int64)
    assert _grid(pts, tb, 24.0).tolist() == [0, 1, 2, 5, 6]
    assert _grid(np.array([0, 25, 80, 110, 160]), tb, 24.0) is None  # VFR: numbered in order
    assert _grid(np.array([0, 42, 84, 10**9]), tb, 24.0) is None  # a corrupt far timestamp


def test_aligner_puts_frames_on_their_slots_and_fills_the_gaps():
    tl = _timeline(list(range(6)), keys=[0])
    aligner = Aligner(tl)
    frames = {s: np.full((2, 2, 3), s, np.uint8) for s in range(6)}
    got = aligner.push(0 / 24, frames[0]) + aligner.push(3 / 24, frames[3])
    got += aligner.push(3 / 24 + 0.001, frames[3])  # a second frame on slot 3
    got += aligner.push(4 / 24, frames[4]) + aligner.finish()
    assert [s for s, _ in got] == list(range(6))
    assert [int(f[0, 0, 0]) for _, f in got] == [0, 0, 0, 3, 4, 4]  # held frames in gaps
    assert aligner.missing == {1, 2, 3, 5} and aligner.duplicates == 1


@pytest.fixture(scope="module")
def damaged(bad_inputs):
    path = bad_inputs["damaged_mid"]
    truth = json.loads((path.parent / "truth.json").read_text())[path.name]
    return path, truth


def _analyse(path, truth, **cfg):
    split = Splitter(SplitConfig(**cfg))
    video = {"local_path": str(path), "fps": truth["fps"], "video_id": "0" * 16}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        video.update(width=stream.width, height=stream.height)
    size = analysis_size(video["width"], video["height"], split.cfg.analysis_width)
    return video, split.analyse(str(path), truth["fps"], size)


def test_a_dropped_frame_shifts_no_later_cut(damaged):
    path, truth = damaged
    _, facts = _analyse(path, truth)
    assert facts["n_frames"] == truth["n_frames"]
    (a, b), *_ = truth["damaged"]
    starts = [s for s, _ in truth["shots"][1:]]
    # Every hard cut outside the damaged stretch is found on its true source frame.
    clean = [s for s in starts if not a <= s <= b]
    assert set(clean) <= set(facts["cuts"]), (clean, facts["cuts"])
    mask = facts["corrupt_mask"]
    assert mask[a:b].all() and mask.sum() <= (b - a) + 4, np.flatnonzero(mask)
    assert facts["error"].startswith(f"damaged: {int(mask.sum())} frames near")


def test_clean_file_pays_for_no_second_decode(synth_raw, monkeypatch):
    root, truth = synth_raw
    entry = truth[1]

    def fail(*_):
        raise AssertionError("locate_errors ran on a clean file")

    monkeypatch.setattr("pipeline.stages.split.locate_errors", fail)
    _, facts = _analyse(root / entry["file"], entry)
    assert facts["n_frames"] == entry["n_frames"] and not facts["corrupt_mask"].any()
    assert "error" not in facts
    tl = read_timeline(str(root / entry["file"]), entry["fps"])
    assert tl.present.all() and tl.n == entry["n_frames"]


def test_a_pause_of_minutes_between_two_frames_is_broken_timing(tmp_path):
    from pipeline.synthetic.synth import encode_frames

    frames = [np.full((32, 32, 3), 40 * i, np.uint8) for i in range(4)]
    path = tmp_path / "jump.mp4"
    pts = [0, 40, 90, 200_000]  # ms: the last frame 200 s after the third
    encode_frames(path, frames, 32, 32, 25.0, pts=pts, time_base=Fraction(1, 1000))
    with pytest.raises(ValueError, match="timestamps jump by 200 s after frame 2"):
        read_timeline(str(path), 25.0)


def test_a_broken_first_keyframe_keeps_the_later_clips_on_their_frames(
    damaged, tmp_path, kept_clip_problems
):
    import pyarrow.parquet as pq

    from pipeline.config.curate import build_config
    from pipeline.driver import curate

    path, truth = damaged
    data = bytearray(path.read_bytes())
    with av.open(str(path)) as container:
        first = next(p for p in container.demux(video=0) if p.size)
    data[first.pos : first.pos + first.size] = bytes(first.size)
    (tmp_path / "in").mkdir()
    broken = tmp_path / "in" / "both_ends.mp4"
    broken.write_bytes(bytes(data))
    cfg = build_config({"ray": {"address": "none"}, "split": {"min_clip_s": 1.0}})
    curate([str(broken)], tmp_path / "out", cfg)
    [video] = pq.read_table(tmp_path / "out" / "videos.parquet").to_pylist()
    clips = pq.read_table(tmp_path / "out" / "clips.parquet").to_pylist()
    assert video["status"] == "ok" and video["error"].startswith("damaged: ")
    corrupt = [c for c in clips if "corrupt" in c["reject_reasons"]]
    assert [c["start_frame"] for c in corrupt][0] == 0 and len(corrupt) == 2
    # The decoder's first frame comes late: the encode must still count from the source's.
    # The untouched file is the reference: damaged frames would not match it.
    assert len([c for c in clips if c["kept"]]) == len(truth["shots"]) - 2
    assert kept_clip_problems(tmp_path / "out", clips, {str(broken): path}) == []


def test_a_cut_off_download_keeps_its_length_and_the_lost_tail_is_damage(damaged, tmp_path):
    from pipeline.ffmpeg import run_ffmpeg

    path, truth = damaged
    faststart = tmp_path / "faststart.mp4"  # index first, as web downloads have it
    run_ffmpeg(["-i", str(path), "-c", "copy", "-movflags", "+faststart", str(faststart)])
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(faststart.read_bytes()[: int(faststart.stat().st_size * 0.8)])
    _, facts = _analyse(cut, truth)
    mask = facts["corrupt_mask"]
    assert facts["n_frames"] == truth["n_frames"] and mask[-1]
    tail = int(np.flatnonzero(~mask)[-1]) + 1  # the lost tail: one run to the end
    assert mask[tail:].all() and tail < truth["n_frames"] * 0.9


def test_mkv_timestamps_and_an_edit_list_keep_clips_on_their_frames(
    damaged, tmp_path, kept_clip_problems
):
    import pyarrow.parquet as pq

    from pipeline.config.curate import build_config
    from pipeline.driver import curate
    from pipeline.ffmpeg import run_ffmpeg

    path, truth = damaged
    (tmp_path / "in").mkdir()
    variants = {
        "copy.mkv": [],  # millisecond timestamps (41/42 ms steps)
        "trimmed.mp4": ["-ss", "0.5"],  # an edit list hides the first 12 packets
    }
    for name, opts in variants.items():
        run_ffmpeg([*opts, "-i", str(path), "-c", "copy", str(tmp_path / "in" / name)])
    # The two files show the same shots: dedup would rightly keep one of each.
    no_dedup = {"exact": False, "perceptual": False}
    cfg = build_config(
        {"ray": {"address": "none"}, "split": {"min_clip_s": 1.0}, "dedup": no_dedup}
    )
    curate([str(tmp_path / "in")], tmp_path / "out", cfg)
    videos = pq.read_table(tmp_path / "out" / "videos.parquet").to_pylist()
    clips = pq.read_table(tmp_path / "out" / "clips.parquet").to_pylist()
    lengths = sorted(v["n_frames"] for v in videos)
    assert lengths == [truth["n_frames"] - 12, truth["n_frames"]]
    assert all(v["status"] == "ok" and v["error"].startswith("damaged: ") for v in videos)
    assert len([c for c in clips if c["kept"]]) == 2 * (len(truth["shots"]) - 1)
    assert kept_clip_problems(tmp_path / "out", clips) == []
