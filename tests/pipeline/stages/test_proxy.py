"""The previews' proxy: the split's decode writes it, and every clip's preview cut from it
shows that clip's frames and none of its neighbours', for a video analysed whole and one
analysed in spans, with timestamps that start at 1.5 s and cuts off the proxy's 1/8-s grid.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from pipeline.config.curate import SplitConfig
from pipeline.ffmpeg import ffmpeg_exe
from pipeline.report.previews import (
    Clip,
    _job,
    _make_batch,
    _make_one,
    make_previews,
    preview_path,
    previews_dir,
    proxy_job,
)
from pipeline.stages.probe import probe_video
from pipeline.stages.proxy import INDEX, PREVIEW_WIDTH, proxy_at, write_index
from pipeline.staging import SplitStage
from pipeline.synthetic.synth import encode_frames
from schemas.layout import partial_dir, video_dir, work_dir

# Shots far apart in colour; at 24 fps the grid falls every 3 frames and no cut is on it.
# The cut at 197 is 3 frames before the span border at 200 (`CHUNK_S`). No trim around
# cuts (`trim_s=0`): a clip starts on its cut, so a frame early shows the shot before.
SHOTS = ((61, 40), (47, 200), (89, 120), (110, 60), (70, 180), (110, 100))  # (frames, mean)
CHUNK_S = 10.0  # spans start on multiples of 200 frames


@pytest.fixture(scope="module")
def footage(tmp_path_factory, draw) -> tuple[dict, list[np.ndarray], list[int]]:
    """The encoded video's probed row, each shot's mean colour, and where each shot starts."""
    folder = tmp_path_factory.mktemp("proxy")
    shots = [draw.shot(seed, n, mean) for seed, (n, mean) in enumerate(SHOTS)]
    encode_frames(folder / "raw.mp4", [f for s in shots for f in s], draw.W, draw.H, draw.FPS)
    late = folder / "late.mp4"  # a cut-out of a broadcast: timestamps start at 1.5 s
    cmd = [ffmpeg_exe(), "-loglevel", "error", "-i", str(folder / "raw.mp4"), "-c", "copy"]
    subprocess.run([*cmd, "-output_ts_offset", "1.5", str(late)], check=True)
    colours = [np.mean([f.reshape(-1, 3).mean(0) for f in s], axis=0) for s in shots]
    starts = np.cumsum([0] + [n for n, _ in SHOTS]).tolist()
    return probe_video({"path": str(late)}), colours, starts


def _preview_frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as image:
        return [np.asarray(f.convert("RGB"), float) for f in ImageSequence.Iterator(image)]


def _previews_show_their_own_shots(out: Path, video: dict, colours, starts, whole=True) -> int:
    """Make every clip's preview from the proxy alone (no mp4, no source) and check each
    frame's nearest shot colour is a shot the clip covers, and that it has a frame for
    each 1/8 s of the clip's first 4 (in spans: at least 2 s of them, the span's proxy may
    end first); returns how many were made."""
    clips = video["clips"]
    # A source that is not there: a preview can come from the proxy only.
    rows = [Clip(video["video_id"], c["clip_id"], "/absent.mp4", c["start_s"],
                 c["end_s"] - c["start_s"]) for c in clips]  # fmt: skip
    made = make_previews(out, rows)
    for c in clips:
        own = {k for k in range(len(SHOTS)) if starts[k] < c["end_frame"] and
               starts[k + 1] > c["start_frame"]}  # fmt: skip
        frames = _preview_frames(preview_path(out, c["clip_id"]))
        assert frames and frames[0].shape[1] == PREVIEW_WIDTH
        grid = [k for k in range(200) if c["start_s"] <= k / 8 < c["end_s"]][:32]
        low = len(grid) if whole else min(len(grid), 16)
        assert low <= len(frames) <= len(grid), (c["clip_id"], len(frames), len(grid))
        for f in frames:
            nearest = int(np.argmin([np.abs(f.reshape(-1, 3).mean(0) - m).sum() for m in colours]))
            assert nearest in own, (c["clip_id"], nearest, own)
    return made


def _finished(work: Path, video_id: str) -> None:
    """The split's staging folder where a finished video's is (`make_previews` reads it)."""
    partial_dir(work, video_id).rename(video_dir(work, video_id))


def _split_whole(video: dict, work: Path) -> dict:
    stage = SplitStage(SplitConfig(min_clip_s=1.0, trim_s=0.0), str(work))
    return json.loads(stage({"video": json.dumps(video)})["video"])


def test_previews_from_the_proxy_of_a_whole_video(footage, tmp_path):
    video, colours, starts = footage
    work = work_dir(tmp_path)
    split = _split_whole(video, work)
    assert [c["start_frame"] for c in split["clips"]][1:] == starts[1:-1]  # the drawn cuts
    _finished(work, video["video_id"])
    index = json.loads((video_dir(work, video["video_id"]) / INDEX).read_text())
    assert index["zero_s"] == pytest.approx(1.5) and len(index["proxies"]) == 1
    assert _previews_show_their_own_shots(tmp_path, split, colours, starts) == len(SHOTS)


def test_previews_from_the_proxies_of_a_video_in_spans(footage, tmp_path, split_in_spans):
    video, colours, starts = footage
    work = work_dir(tmp_path)
    cfg = SplitConfig(min_clip_s=1.0, trim_s=0.0, chunk_s=CHUNK_S)
    split = split_in_spans(SplitStage(cfg, str(work)), cfg, video, seed=0)
    assert [(s["start"], s["end"]) for s in split["analysis_spans"]] == [(0, 200), (200, None)]
    _finished(work, video["video_id"])
    index = json.loads((video_dir(work, video["video_id"]) / INDEX).read_text())
    assert [s for s, _ in index["proxies"]] == pytest.approx([0.0, 200 / 24])
    # The clip from frame 197 starts in the first span: its preview comes from that proxy,
    # which runs past the border by the detectors' context.
    made = _previews_show_their_own_shots(tmp_path, split, colours, starts, whole=False)
    assert made == len(SHOTS)


def test_previews_made_in_one_ffmpeg_are_those_made_alone_and_a_bad_one_costs_no_other(
    footage, tmp_path
):
    video, _, _ = footage
    work = work_dir(tmp_path)
    split = _split_whole(video, work)
    _finished(work, video["video_id"])
    rows = [Clip(video["video_id"], c["clip_id"], "/absent.mp4", c["start_s"],
                 c["end_s"] - c["start_s"]) for c in split["clips"]]  # fmt: skip
    jobs = [_job(tmp_path, r) for r in rows]
    assert all(j is not None and j.proxy for j in jobs)
    previews_dir(tmp_path).mkdir(parents=True)
    alone = {}
    for job in jobs:
        assert _make_one(job)
        alone[job.dst.name] = job.dst.read_bytes()
        job.dst.unlink()
    assert _make_batch(jobs) == len(jobs)
    assert {j.dst.name: j.dst.read_bytes() for j in jobs} == alone
    for job in jobs:
        job.dst.unlink()
    # The first one's proxy is gone: the batch fails, and the others are made one by one.
    bad = proxy_job(tmp_path / "gone.mkv", jobs[0].dst, 0.0, 4)
    assert _make_batch([bad, *jobs[1:]]) == len(jobs) - 1
    assert {j.dst.name: j.dst.read_bytes() for j in jobs[1:]} == {
        j.dst.name: alone[j.dst.name] for j in jobs[1:]
    }
    assert sorted(p.name for p in previews_dir(tmp_path).iterdir()) == sorted(
        j.dst.name for j in jobs[1:]
    )  # no half file, no temporary left


def test_a_video_without_a_proxy_index_falls_back(footage, tmp_path):
    video, colours, starts = footage
    work = work_dir(tmp_path)
    split = _split_whole(video, work)
    _finished(work, video["video_id"])
    (video_dir(work, video["video_id"]) / INDEX).unlink()  # an output of an older clipmill
    c = split["clips"][0]
    clip = Clip(video["video_id"], c["clip_id"], video["source_path"], c["start_s"], 2.0)
    assert make_previews(tmp_path, [clip]) == 1  # cut from the source instead
    clip = Clip(video["video_id"], "other", "/absent.mp4", c["start_s"], 2.0)
    assert make_previews(tmp_path, [clip]) == 0  # and nothing to cut from: no preview


def test_a_proxy_that_cannot_be_placed_is_not_kept_and_the_index_stays_in_its_folder(tmp_path):
    (tmp_path / "proxy.mkv").write_bytes(b"proxy")
    write_index(tmp_path, None, [(0.0, "proxy.mkv")])  # a stream without timestamps
    assert not (tmp_path / "proxy.mkv").exists() and not (tmp_path / INDEX).exists()
    assert proxy_at(tmp_path, 1.0) is None
    outside = tmp_path.parent / "outside.mkv"
    outside.write_bytes(b"not ours")
    (tmp_path / INDEX).write_text(json.dumps({"zero_s": 0.0, "proxies": [[0.0, "../outside.mkv"]]}))
    assert proxy_at(tmp_path, 1.0) is None  # a name from disk never leaves the folder
    (tmp_path / "p.mkv").write_bytes(b"proxy")
    write_index(tmp_path, 1.5, [(0.0, "p.mkv"), (10.0, "gone.mkv")])
    assert proxy_at(tmp_path, 4.0) == (tmp_path / "p.mkv", 5.5)
