"""The split stage leaves sampled low-res frames and per-frame stats for the filters."""

from __future__ import annotations

import json

import numpy as np

from pipeline.config.curate import SplitConfig
from pipeline.stages.lowres import STAT_NAMES, clip_lowres, clip_stats
from pipeline.stages.probe import probe_video
from pipeline.staging import SplitStage


def test_split_stage_records_samples_at_the_asked_rate(synth_raw, tmp_path):
    root, truth = synth_raw
    t = truth[1]
    stage = SplitStage(SplitConfig(sample_fps=4.0), str(tmp_path))
    row = stage({"video": json.dumps(probe_video({"path": str(root / t["file"])}))})
    video = json.loads(row["video"])
    folder = video["stage_dir"]
    frames, idx = clip_lowres(folder, 0, t["n_frames"])
    assert len(frames) == len(idx) == int(np.ceil(t["n_frames"] / t["fps"] * 4))
    assert frames.shape[1:] == (54, 96, 3) and frames.dtype == np.uint8
    assert np.all(np.diff(idx) == 6)  # 24 fps sampled at 4 fps
    stats = clip_stats(folder, 0, t["n_frames"])
    assert set(stats) == set(STAT_NAMES) and len(stats["luma_mean"]) == t["n_frames"]
    black = [s for s in t["shots"] if s["kind"] == "black"]
    if black:
        mid = (black[0]["start_frame"] + black[0]["end_frame"]) // 2
        assert stats["luma_mean"][mid] < 5
