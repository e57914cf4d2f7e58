"""A long video's encode units: fanned out, finalized by whichever unit ends last, once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config.curate import build_config
from pipeline.driver import video_stages
from pipeline.stages.probe import probe_video
from pipeline.staging import (
    UNITS,
    SplitStage,
    TranscodeStage,
    UnitsStage,
    gather_units,
)
from schemas.layout import partial_dir, video_dir

CFG = build_config({"ray": {"address": "none"}, "transcode": {"chunk_s": 6.0}})


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> dict:
    from pipeline.synthetic.synth import synthesize

    root = tmp_path_factory.mktemp("long")
    (entry,) = synthesize(root, 1, seed=5, duration_s=24.0)
    return probe_video({"path": str(root / entry["file"])})


def _units(video: dict, work: Path) -> tuple[dict, list[dict]]:
    split = SplitStage(CFG.split, str(work))({"video": json.dumps(video)})
    return split, UnitsStage(CFG.transcode)(split)


def _finalize(row: dict) -> dict:
    """The stages after the fan-out, as the driver lists them: transcode to finalize."""
    stages = video_stages(CFG, Path("unused"), [24.0])  # too short for analysis spans
    assert stages[0][0] is SplitStage and stages[1][0] is UnitsStage
    for cls, args, _ in stages[2:]:
        row = cls(*args)(row)
    return row


def test_units_finish_in_any_order_and_the_last_gathers_the_video(long_video, tmp_path):
    split, units = _units(long_video, tmp_path)
    assert len(units) >= 3
    whole = json.loads(split["video"])["clips"]
    order = [len(units) - 1, *range(len(units) - 1)]  # the last unit finishes first
    results = [_finalize(units[k]) for k in order]
    assert [r["final"] for r in results] == [False] * (len(units) - 1) + [True]
    record = json.loads((video_dir(tmp_path, long_video["video_id"]) / "record.json").read_text())
    assert [c["clip_id"] for c in record["clips"]] == [c["clip_id"] for c in whole]
    assert results[-1]["n_clips"] == len(whole)
    firsts = [u["first"] for u in record["encode_units"]]
    assert firsts == sorted(firsts) and len(firsts) == len(units)
    assert not partial_dir(tmp_path, long_video["video_id"]).exists()
    assert not (video_dir(tmp_path, long_video["video_id"]) / UNITS).exists()
    # A unit Ray re-runs after the video was finished gets the finished video.
    again = _finalize(units[1])
    assert again["final"] and again["n_clips"] == len(whole)
    assert not partial_dir(tmp_path, long_video["video_id"]).exists()


def test_a_gatherer_re_run_after_its_claim_finishes_the_video(long_video, tmp_path):
    _, units = _units(long_video, tmp_path)
    for row in units[:-1]:
        assert not _finalize(row)["final"]
    last = json.loads(TranscodeStage(CFG.transcode)(units[-1])["video"])
    folder = Path(last.pop("stage_dir"))
    # The last unit claimed the gathering and died before the rename.
    assert gather_units(folder, dict(last), last.pop("unit")) is not None
    # Another unit re-run now is not the gatherer; the claimant, re-run, is.
    assert not _finalize(units[0])["final"]
    assert _finalize(units[-1])["final"]
    assert (video_dir(tmp_path, long_video["video_id"]) / "record.json").exists()


@pytest.mark.parametrize(
    "change",
    [
        {"transcode": {"chunk_s": None}},
        {"transcode": {"keep_audio": True}},
        {"transcode": {"chunk_s": 30.0}},  # longer than the video
    ],
)
def test_videos_that_stay_whole_pass_unchanged(long_video, tmp_path, change):
    split = SplitStage(CFG.split, str(tmp_path))({"video": json.dumps(long_video)})
    cfg = build_config({"ray": {"address": "none"}, **change})
    assert UnitsStage(cfg.transcode)(split) == [split]


def test_damaged_or_timestampless_videos_stay_whole(long_video, tmp_path):
    split = SplitStage(CFG.split, str(tmp_path))({"video": json.dumps(long_video)})
    for key, value in (("source_start_s", 0.0), ("stream_start_s", None)):
        row = {"video": json.dumps({**json.loads(split["video"]), key: value})}
        assert UnitsStage(CFG.transcode)(row) == [row]
