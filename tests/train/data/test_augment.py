"""train/data/augment.py: spreading a sample's frames over seconds of the clip (`span_s`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from schemas import empty_clip
from train.data.augment import (
    DecodedClips,
    SampleConfig,
    jitter_stride,
    prepare_sample,
    sample_stride,
    span_stride,
    temporal_indices,
)
from train.data.video_io import encode_mp4


def frames_of(indices: list[int], fps: float) -> tuple[float, float]:
    """(seconds covered, mean gap in seconds) of sampled frame indices."""
    gaps = np.diff(indices) / fps
    return (indices[-1] - indices[0]) / fps, float(gaps.mean())


@pytest.mark.parametrize(("n_frames", "fps", "span_s"), [(96, 24.0, 2.0), (240, 30.0, 4.5)])
def test_frames_cover_the_requested_span_and_report_its_rate(n_frames, fps, span_s):
    stride = span_stride(n_frames, 8, fps, span_s)
    for seed in range(5):
        indices, used = temporal_indices(n_frames, 8, stride, np.random.default_rng(seed))
        covered, gap = frames_of(indices, fps)
        assert len(indices) == 8 and indices == sorted(set(indices))
        assert indices[0] >= 0 and indices[-1] < n_frames
        # The first and last sampled frames are span_s apart, to within a frame.
        assert abs(covered - span_s) <= 1.0 / fps + 1e-9
        # The rate the model is told (fps / stride) is the rate the frames show.
        assert fps / used == pytest.approx(1.0 / gap, rel=0.05)


def test_clip_spans_the_whole_clip_and_a_short_clip_is_spanned_whole():
    whole = span_stride(50, 8, 25.0, "clip")
    indices, _ = temporal_indices(50, 8, whole, np.random.default_rng(0))
    assert indices[0] == 0 and indices[-1] == 49
    # A 2-s clip asked for a 6-s span: all of it, not a smaller piece or repeats.
    short = span_stride(50, 8, 25.0, 6.0)
    assert short == whole
    assert temporal_indices(50, 8, short, None)[0] == indices


def test_a_still_and_a_clip_with_fewer_frames_than_asked():
    assert span_stride(1, 1, 24.0, 3.0) == 1.0
    indices, used = temporal_indices(1, 1, span_stride(1, 1, 24.0, 3.0), None)
    assert indices == [0] and used == 1.0
    # 5 frames for 8 samples: every frame once, the last repeated; stride 1.
    indices, used = temporal_indices(5, 8, span_stride(5, 8, 24.0, "clip"), None)
    assert indices == [0, 1, 2, 3, 4, 4, 4, 4] and used == 1.0


def test_span_wins_only_when_set():
    assert sample_stride(24.0, 96, 8, fps=6.0) == 4.0
    assert sample_stride(24.0, 96, 8, stride=3) == 3.0
    assert sample_stride(24.0, 96, 8, span_s="clip") == pytest.approx(95 / 7)
    with pytest.raises(ValueError, match="no frame rate"):
        span_stride(96, 8, 0.0, 2.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"span_s": 0}, "--data.span_s must be a positive number of seconds or 'clip'"),
        ({"span_s": "all"}, "--data.span_s must be a positive number of seconds or 'clip'"),
        ({"span_s": 2.0, "fps": 6.0}, "give one of --data.fps, --data.frame_stride"),
        ({"span_s": "clip", "frame_stride": 2}, "give one of --data.fps, --data.frame_stride"),
        ({"stride_jitter": -0.5}, "--data.stride_jitter must be >= 0"),
    ],
)
def test_bad_span_settings_name_the_flag(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SampleConfig(**kwargs)


def bar_frames(video: np.ndarray) -> list[int]:
    """Which source frame each sampled frame is: the bar stands in column frame + 8."""
    return [int(np.argmax(frame[..., 0].mean(axis=0))) - 8 for frame in video]


def test_a_sample_spread_over_the_clip_shows_its_motion_and_rate():
    # A bright column that moves one pixel a frame: where it is tells which frame we got.
    n, fps = 48, 24.0
    video = np.full((n, 16, 64, 3), 20, np.uint8)
    for i in range(n):
        video[i, :, i + 8] = 230
    key = f"{0:016x}_{0:07d}_{n:07d}"
    record = empty_clip(clip_id=key, caption="a bar moving right", fps=fps, n_frames=n, kept=True)
    raw = {"__key__": key, "mp4": encode_mp4(video, fps), "json": json.dumps(record).encode()}
    cfg = SampleConfig(num_frames=4, size=(16, 64), span_s="clip", flip_prob=0.0)
    sample = prepare_sample(raw, cfg, None)
    columns = bar_frames(sample["video"])
    assert columns[0] == 0 and columns[-1] == n - 1  # first and last frame of the clip
    assert sample["fps"] == pytest.approx(fps / ((n - 1) / 3))


def test_jittered_strides_stay_in_their_range_and_cover_it():
    rng = np.random.default_rng(0)
    strides = [jitter_stride(6.0, 1.0, rng) for _ in range(400)]
    assert min(strides) >= 3.0 - 1e-9 and max(strides) <= 12.0 + 1e-9  # 6 / 2 .. 6 * 2
    assert min(strides) < 3.3 and max(strides) > 11.0  # both ends are reached
    assert 0.4 < np.mean(np.array(strides) < 6.0) < 0.6  # log-uniform: half below, half above
    assert min(jitter_stride(1.5, 3.0, rng) for _ in range(50)) == 1.0  # never below 1
    assert jitter_stride(6.0, 0.0, rng) == 6.0 and jitter_stride(6.0, 1.0, None) == 6.0


def test_jittered_samples_show_their_clip_at_several_paces_and_say_which():
    """Each training sample draws its own pace; its fps tells the model the pace drawn,
    read here from where the moving bar is; validation (no rng) is not jittered."""
    raw = moving_bar_sample(n=96, width=112)  # the bar crosses the whole frame, never cropped
    cfg = SampleConfig(num_frames=4, size=(16, 112), span_s=2.0, stride_jitter=2.0, flip_prob=0)
    rates = set()
    for seed in range(12):
        sample = prepare_sample(raw, cfg, np.random.default_rng(seed))
        gap = np.diff(
            bar_frames(sample["video"])
        ).mean()  # frames between samples: the bar moves 1 px a frame
        assert sample["fps"] == pytest.approx(24.0 / gap, rel=0.1)
        rates.add(round(sample["fps"], 2))
    assert len(rates) >= 4
    still = SampleConfig(num_frames=4, size=(16, 112), span_s=2.0, flip_prob=0.0)
    assert prepare_sample(raw, cfg, None)["fps"] == prepare_sample(raw, still, None)["fps"]


def moving_bar_sample(n: int = 48, fps: float = 24.0, width: int = 64) -> dict:
    video = np.full((n, 16, width, 3), 20, np.uint8)
    for i in range(n):
        video[i, :, i + 8] = 230
    key = f"{1:016x}_{0:07d}_{n:07d}"
    record = empty_clip(clip_id=key, caption="a bar moving right", fps=fps, n_frames=n, kept=True)
    return {"__key__": key, "mp4": encode_mp4(video, fps), "json": json.dumps(record).encode()}


def test_decoded_clips_give_the_same_samples_and_decode_once():
    raw = moving_bar_sample()
    cfg = SampleConfig(num_frames=6, size=(16, 32), span_s=1.0, flip_prob=0.0)
    decoded = DecodedClips(budget_mb=8)
    calls = []
    original = decoded.frames

    def counting(key, read_all):
        calls.append(key in decoded._clips)
        return original(key, read_all)

    decoded.frames = counting
    for seed in range(4):
        plain = prepare_sample(raw, cfg, np.random.default_rng(seed))
        kept = prepare_sample(raw, cfg, np.random.default_rng(seed), decoded)
        np.testing.assert_array_equal(kept["video"], plain["video"])
        assert kept["fps"] == plain["fps"] and kept["caption"] == plain["caption"]
    assert calls == [False, True, True, True]  # decoded the first time only
    assert decoded.used == next(iter(decoded._clips.values())).nbytes > 0


def test_decoded_clips_stay_within_their_budget():
    one = np.zeros((10, 32, 32, 3), np.uint8)  # 30 KiB
    decoded = DecodedClips(budget_mb=70 / 1024)  # room for two
    for name in "abc":
        decoded.frames((name,), lambda: one.copy())
    assert list(decoded._clips) == [("b",), ("c",)] and decoded.used == 2 * one.nbytes
    decoded.frames(("b",), lambda: one.copy())  # used: now the newest
    decoded.frames(("d",), lambda: one.copy())
    assert list(decoded._clips) == [("b",), ("d",)]
    big = np.zeros((100, 32, 32, 3), np.uint8)  # larger than the budget: used, not kept
    assert decoded.frames(("e",), lambda: big) is big and ("e",) not in decoded._clips
    with pytest.raises(ValueError, match="--data.decode_cache_mb must be >= 0"):
        SampleConfig(decode_cache_mb=-1)
