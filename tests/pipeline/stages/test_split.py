"""Split accuracy against synth ground truth, and the clip planning rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.config.curate import SplitConfig
from pipeline.stages import split
from pipeline.stages.lowres import lowres_decode_args
from pipeline.stages.probe import probe_video
from pipeline.stages.split import Splitter, plan_clips


def _inside(clip: dict, shots: list[dict], tol: int = 2) -> bool:
    return any(
        s["start_frame"] - tol <= clip["start_frame"] and clip["end_frame"] <= s["end_frame"] + tol
        for s in shots
    )


@pytest.mark.parametrize("detector", ["content", "adaptive", "transnetv2"])
def test_kept_clips_lie_inside_one_shot_and_every_long_shot_yields_a_clip(synth_raw, detector):
    root, truth = synth_raw
    cfg = SplitConfig(detector=detector)
    splitter = Splitter(cfg)
    for t in truth:
        video = splitter(probe_video({"path": str(root / t["file"])}))
        assert video["status"] == "ok", video.get("error")
        shots = [s for s in t["shots"] if s["kind"] == "shot"]
        kept = [c for c in video["clips"] if not c["reject_reasons"]]
        for c in kept:
            assert _inside(c, shots), (t["file"], c, t["shots"])
            assert c["duration_s"] <= cfg.max_clip_s + 1e-6
            assert c["duration_s"] >= cfg.min_clip_s - 1e-6
        for s in shots:
            if (s["end_frame"] - s["start_frame"]) / t["fps"] >= cfg.min_clip_s + 0.5:
                assert any(_inside(c, [s]) for c in kept), (t["file"], s)


def test_dissolves_and_black_gaps_become_rejected_rows(synth_raw):
    root, truth = synth_raw
    splitter = Splitter(SplitConfig())
    seen = {"dissolve": 0, "black": 0}
    for t in truth:
        clips = splitter(probe_video({"path": str(root / t["file"])}))["clips"]
        for seg in t["shots"]:
            if seg["kind"] == "shot":
                continue
            seen[seg["kind"]] += 1
            mid = (seg["start_frame"] + seg["end_frame"]) // 2
            owner = [c for c in clips if c["start_frame"] <= mid < c["end_frame"]]
            want = "transition" if seg["kind"] == "dissolve" else "blank"
            assert owner and owner[0]["reject_reasons"] == [want], (t["file"], seg, owner)
    assert seen["dissolve"] and seen["black"], "fixture should contain both"


def test_long_shot_is_cut_into_equal_windows_none_longer_than_max(synth_raw):
    root, truth = synth_raw
    cfg = SplitConfig(max_clip_s=4.0)
    clips = Splitter(cfg)(probe_video({"path": str(root / truth[0]["file"])}))["clips"]
    long_scene = max(
        {c["scene_index"] for c in clips}, key=lambda s: sum(c["scene_index"] == s for c in clips)
    )
    windows = [c for c in clips if c["scene_index"] == long_scene]
    assert len(windows) >= 3
    assert all(c["duration_s"] <= 4.0 + 1e-6 for c in windows)
    # consecutive: each window starts where the previous ended
    assert all(
        a["end_frame"] == b["start_frame"] for a, b in zip(windows, windows[1:], strict=False)
    )


def _analysed(n: int, cuts: list[int], fps: float = 10.0, blank=(), transition=()) -> dict:
    b, t = np.zeros(n, bool), np.zeros(n, bool)
    b[list(blank)] = True
    t[list(transition)] = True
    return {
        "video_id": "0" * 16,
        "n_frames": n,
        "fps": fps,
        "duration_s": n / fps,
        "frame_times": [i / fps for i in range(n)],
        "cuts": cuts,
        "blank_mask": b,
        "transition_mask": t,
    }


def test_plan_trims_at_cuts_only_and_marks_short_scenes():
    cfg = SplitConfig(min_clip_s=2.0, max_clip_s=10.0, trim_s=0.2, soft_window_s=0)
    clips = plan_clips(_analysed(100, [30, 45]), cfg)
    spans = [(c["start_frame"], c["end_frame"], c["reject_reasons"]) for c in clips]
    # video start is not trimmed, both sides of each cut are (2 frames at 10 fps)
    assert spans == [(0, 28, []), (32, 43, ["too_short"]), (47, 100, [])]


def test_plan_accounts_every_frame_except_trims():
    cfg = SplitConfig(min_clip_s=1.0, max_clip_s=3.0, trim_s=0.0)
    clips = plan_clips(_analysed(200, [50], blank=range(120, 130), transition=range(60, 66)), cfg)
    covered = sorted((c["start_frame"], c["end_frame"]) for c in clips)
    assert covered[0][0] == 0 and covered[-1][1] == 200
    assert all(a[1] == b[0] for a, b in zip(covered, covered[1:], strict=False))
    reasons = {(c["start_frame"], c["end_frame"]): c["reject_reasons"] for c in clips}
    assert reasons[(120, 130)] == ["blank"] and reasons[(60, 66)] == ["transition"]


def _spans_a_cut(clip: dict, cuts: list[dict], margin: int = 2) -> bool:
    """Whether the clip holds a whole cut (a hard cut's frame, a dissolve's cross-fade) with
    `margin` frames of shot on each side: what no detector's clip can, even a frame off."""
    return any(
        clip["start_frame"] <= c["start_frame"] - margin
        and clip["end_frame"] >= c["end_frame"] + margin
        for c in cuts
    )


def test_fixed_detector_ignores_content_and_windows_the_whole_video(synth_raw):
    root, truth = synth_raw
    # A video without black gaps: blank frames are the one content signal "fixed" still reads.
    entry = next(t for t in truth if all(s["kind"] != "black" for s in t["shots"]))
    assert entry["cuts"], "the video must have cuts for windows to ignore"
    cfg = SplitConfig(detector="fixed", max_clip_s=4.0, min_clip_s=1.0, trim_s=0.0)
    video = Splitter(cfg)(probe_video({"path": str(root / entry["file"])}))
    clips = video["clips"]
    spans = [(c["start_frame"], c["end_frame"]) for c in clips]
    # Contiguous windows from the first frame to the last: the whole video, nothing trimmed.
    assert spans[0][0] == 0 and spans[-1][1] == entry["n_frames"] == video["n_frames"]
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False)), spans
    # Evenly spaced: as few windows as max_clip_s allows, equal up to one frame, all kept.
    assert len(clips) == math.ceil(entry["duration_s"] / cfg.max_clip_s - 1e-9)
    lengths = [e - s for s, e in spans]
    assert max(lengths) - min(lengths) <= 1, lengths
    assert all(c["duration_s"] <= cfg.max_clip_s + 1e-6 for c in clips)
    assert all(c["reject_reasons"] == [] and c["scene_index"] == 0 for c in clips), clips
    # Blind to content: some kept window runs across a true cut, which a detector never
    # allows (its transition rows may cover a dissolve, but those are rejected).
    kept = [c for c in clips if not c["reject_reasons"]]
    assert any(_spans_a_cut(c, entry["cuts"]) for c in kept), (spans, entry["cuts"])


# The analysis decode's arguments before `--split.hwaccel` existed: the default must not move.
TODAY_DECODE = [
    "-hide_banner", "-nostdin", "-loglevel", "error", "-copyts", "-skip_loop_filter", "all",
    "-i", "in.mp4", "-map", "0:v:0", "-vf", "scale=96:54:flags=area,format=rgb24",
    "-fps_mode", "passthrough", "-enc_time_base:v", "demux", "-c:v", "rawvideo",
    "-f", "nut", "pipe:1",
]  # fmt: skip


def test_analysis_decode_is_unchanged_without_hwaccel_and_on_nvdec_with_cuda():
    assert lowres_decode_args("in.mp4", 96, 54) == TODAY_DECODE
    assert lowres_decode_args("in.mp4", 96, 54, "none") == TODAY_DECODE
    gpu = lowres_decode_args("in.mp4", 96, 54, "cuda")
    at = TODAY_DECODE.index("-i")  # an input option: before the input it applies to
    assert gpu == [*TODAY_DECODE[:at], "-hwaccel", "cuda", *TODAY_DECODE[at:]]


def test_splitter_decodes_with_the_configured_hwaccel(monkeypatch):
    seen = []

    def decode(path, width, height, errors, hwaccel="none", seek_s=0.0, proxy=None):
        seen.append(hwaccel)
        return iter(())

    monkeypatch.setattr(split, "read_timeline", lambda path, fps: None)
    monkeypatch.setattr(split, "decode_lowres", decode)
    video = {"local_path": "in.mp4", "fps": 25.0, "width": 64, "height": 36}
    out = Splitter(SplitConfig(hwaccel="cuda", detector="fixed"))(video)
    assert seen == ["cuda"] and "no decodable frames" in out["error"]
