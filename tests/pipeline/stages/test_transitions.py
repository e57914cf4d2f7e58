"""Pans are not dissolves, flashes are not cuts; fades and dissolves are still found.

Footage with exact ground truth is drawn here (a soft texture panned a few pixels a second,
flashes of 1-3 frames, cross-fades and fades through black), encoded to small mp4s and run
through the real split stage (`Splitter`: one low-res decode, detector, guard, `plan_clips`).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.config.curate import SplitConfig
from pipeline.stages.detectors import FlashFilter, shift_residual
from pipeline.stages.probe import probe_video
from pipeline.stages.split import Splitter
from pipeline.synthetic.synth import encode_frames


@pytest.fixture(scope="module")
def splitters():
    """One Splitter per detector (TransNetV2 loads its model once), clips from 1 s."""
    made: dict[str, Splitter] = {}

    def get(detector: str, **overrides) -> Splitter:
        key = f"{detector}{sorted(overrides.items())}"
        if key not in made:
            made[key] = Splitter(SplitConfig(detector=detector, min_clip_s=1.0, **overrides))
        return made[key]

    return get


def run(splitter: Splitter, path) -> dict:
    video = splitter(probe_video({"path": str(path)}))
    assert video["status"] == "ok", video.get("error")
    return video


def kept(video: dict) -> list[dict]:
    return [c for c in video["clips"] if not c["reject_reasons"]]


# -- pans -------------------------------------------------------------------------------


def test_shift_residual_tells_a_shifted_picture_from_a_blend(draw):
    tex = draw.soft_texture(3, 160, 80, 2.0, 20.0, 110).mean(axis=2)
    other = draw.soft_texture(4, 160, 80, 2.0, 20.0, 110).mean(axis=2)
    a = np.ascontiguousarray(tex[10:64, 10:106])
    for dx, dy in ((1, 0), (3, -1), (-2, 2)):  # whole and sub-pixel (below) shifts
        b = np.ascontiguousarray(tex[10 + dy : 64 + dy, 10 + dx : 106 + dx])
        assert shift_residual(a, b) < 0.05
    half = cv2.getRectSubPix(tex, (96, 54), (10 + 48 + 1.5, 10 + 27))
    assert shift_residual(a, half) < 0.25
    b = np.ascontiguousarray(other[10:64, 10:106])
    for w in (0.3, 0.5, 1.0):  # a cross-fade towards another picture is no shift of this one
        assert shift_residual(a, (1 - w) * a + w * b) > 0.8


@pytest.fixture(scope="module")
def soft_pan(tmp_path_factory, draw):
    """60 s panning 4 px/s (at analysis width) over blurred noise of luma std 20."""
    path = tmp_path_factory.mktemp("pan") / "pan.mp4"
    encode_frames(path, draw.pan(1, int(60 * draw.FPS), speed=8.0), draw.W, draw.H, draw.FPS)
    return path


def test_slow_pan_over_soft_content_keeps_its_seconds(soft_pan, splitters):
    video = run(splitters("content"), soft_pan)
    seconds = sum(c["duration_s"] for c in kept(video))
    assert seconds >= 0.95 * video["duration_s"], video["clips"]
    assert not any("transition" in c["reject_reasons"] for c in video["clips"])
    # The blend test alone reads the pan as a dissolve (this footage: 20.5 of 60 s kept).
    before = run(splitters("content", soft_shift_ratio=0.0), soft_pan)
    assert sum(c["duration_s"] for c in kept(before)) < 0.5 * before["duration_s"]


# -- flashes ----------------------------------------------------------------------------

# (first frame, length, kind) of each flash inside one 4 s shot.
FLASHES = [(10, 1, "white"), (24, 2, "white"), (38, 3, "white")]
FLASHES += [(52, 1, "boost"), (66, 2, "boost"), (80, 3, "boost")]


def with_flashes(draw, frames: list, flashes: list, path):
    """Encode `frames` with the (start, length, kind) flashes applied; returns the path."""
    for start, n, kind in flashes:
        frames[start : start + n] = [draw.flash(f, kind) for f in frames[start : start + n]]
    encode_frames(path, frames, draw.W, draw.H, draw.FPS)
    return path


@pytest.fixture(scope="module")
def flashy_shot(tmp_path_factory, draw):
    path = tmp_path_factory.mktemp("flash") / "flashes.mp4"
    return with_flashes(draw, draw.shot(5, 96), FLASHES, path)


@pytest.mark.parametrize("detector", ["content", "adaptive", "transnetv2"])
def test_flashes_inside_a_shot_split_nothing(flashy_shot, splitters, detector):
    video = run(splitters(detector), flashy_shot)
    assert video["cuts"] == [], video["cuts"]
    assert [(c["start_frame"], c["end_frame"]) for c in kept(video)] == [(0, 96)]


@pytest.mark.parametrize("detector", ["content", "adaptive"])
def test_without_the_flash_filter_the_same_flashes_cut(flashy_shot, splitters, detector):
    # The fixture is a real test: PySceneDetect cuts at (nearly) every flash on its own.
    video = run(splitters(detector, flash_max_frames=0), flashy_shot)
    hit = {s for s, n, _ in FLASHES if any(s <= c <= s + n for c in video["cuts"])}
    assert len(hit) >= 5, video["cuts"]


# Three 32-frame shots: A ends on a 2-frame flash, B has a 1-frame flash one frame before
# the cut to C, and C opens on a 2-frame white flash.
CUTS, CUT_FLASHES = [32, 64], [(30, 2, "boost"), (62, 1, "boost"), (64, 2, "white")]


@pytest.fixture(scope="module")
def flash_by_cuts(tmp_path_factory, draw):
    frames = draw.shot(7, 32, mean=60) + draw.shot(8, 32, mean=100) + draw.shot(9, 32, mean=50)
    path = tmp_path_factory.mktemp("flashcut") / "flash_by_cuts.mp4"
    return with_flashes(draw, frames, CUT_FLASHES, path)


@pytest.mark.parametrize("detector", ["content", "adaptive", "transnetv2"])
def test_a_cut_right_next_to_a_flash_is_still_found(flash_by_cuts, splitters, detector):
    video = run(splitters(detector), flash_by_cuts)
    # Each true cut found within the flash beside it (the held-out frames), none elsewhere.
    assert all(any(c - 3 <= d <= c + 2 for d in video["cuts"]) for c in CUTS), video["cuts"]
    assert all(any(c - 3 <= d <= c + 2 for c in CUTS) for d in video["cuts"]), video["cuts"]
    shots = [(0, 32), (32, 64), (64, 96)]
    for c in kept(video):
        assert any(s <= c["start_frame"] and c["end_frame"] <= e for s, e in shots), c
    for s, e in shots:
        assert any(s <= c["start_frame"] and c["end_frame"] <= e for c in kept(video)), (s, e)
    # The flashes at the cuts (A's last two frames, C's first two) are in no kept clip.
    for c in kept(video):
        assert not {30, 31, 64, 65} & set(range(c["start_frame"], c["end_frame"])), c


def test_flash_filter_holds_only_short_bright_runs_that_fall_back():
    luma = [50, 50, 200, 50, 50, 180, 190, 60, 50, 120, 120, 120, 120, 50, 50, 90, 95, 95, 95]
    frames = [np.full((4, 4, 3), v, np.uint8) for v in luma]
    flt = FlashFilter(max_frames=3, min_jump=12.0)
    out = [p for i, f in enumerate(frames) for p in flt.push(i, f)] + flt.finish()
    assert [i for i, _ in out] == list(range(len(luma)))  # every frame, in order, once
    # 1- and 2-frame flashes are held (shown as the frame before); a 4-frame bright run is a
    # shot of its own, and a step up that never falls back is no flash.
    assert flt.runs == [(2, 3), (5, 7)]
    assert [int(f[0, 0, 0]) for _, f in out][:9] == [50, 50, 50, 50, 50, 50, 50, 60, 50]
    assert all(out[i][1] is frames[i] for i in range(9, len(luma)))


# -- fades and dissolves ----------------------------------------------------------------


@pytest.fixture(scope="module")
def transitions(tmp_path_factory, draw):
    """Pan A ⨯ pan B (dissolve, 12 frames), fade out to black and in to shot C, C ⨯ pan D
    (dissolve, 24 frames); each shot 3 s. Returns (path, shots, transitions) in frames."""
    n, d1, d2, ramp = 72, 12, 24, 12
    a, b, d = (
        draw.pan(11, n + d1, 8.0),
        draw.pan(12, n + d1 + ramp, -10.0),
        draw.pan(14, n + d2, 6.0),
    )
    c = draw.shot(13, ramp + n + d2, mean=90)
    black = np.zeros_like(a[0])
    fade_out = [draw.blend(f, black, (i + 1) / (ramp + 1)) for i, f in enumerate(b[n + d1 :])]
    fade_in = [draw.blend(black, f, (i + 1) / (ramp + 1)) for i, f in enumerate(c[:ramp])]
    frames = a[:n] + draw.crossfade(a[n:], b[:d1]) + b[d1 : n + d1] + fade_out + [black] * ramp
    frames += fade_in + c[ramp : ramp + n] + draw.crossfade(c[ramp + n :], d[:d2]) + d[d2:]
    marks = np.cumsum([0, n, d1, n, 3 * ramp, n, d2, n])
    shots = [(int(marks[i]), int(marks[i + 1])) for i in (0, 2, 4, 6)]
    gaps = [(int(marks[i]), int(marks[i + 1])) for i in (1, 3, 5)]
    path = tmp_path_factory.mktemp("trans") / "transitions.mp4"
    encode_frames(path, frames, draw.W, draw.H, draw.FPS)
    return path, shots, gaps


def transition_recall(video: dict, gaps: list[tuple[int, int]]) -> float:
    """Share of the true transition frames that lie in rejected blank/transition rows."""
    out = np.zeros(video["n_frames"], bool)
    for c in video["clips"]:
        if set(c["reject_reasons"]) & {"blank", "transition"}:
            out[c["start_frame"] : c["end_frame"]] = True
    return float(np.mean([out[i] for s, e in gaps for i in range(s, e)]))


def test_fades_and_dissolves_between_pans_are_still_found(transitions, splitters, draw):
    path, shots, gaps = transitions
    video = run(splitters("content"), path)
    for s, e in gaps:  # no kept frame of any transition, and its middle in a rejected row
        assert all(c["end_frame"] <= s or c["start_frame"] >= e for c in kept(video)), (s, e)
        mid = (s + e) // 2
        owner = [c for c in video["clips"] if c["start_frame"] <= mid < c["end_frame"]]
        assert owner and owner[0]["reject_reasons"] in (["transition"], ["blank"]), owner
    assert transition_recall(video, gaps) >= 0.9
    for s, e in shots:  # every 3 s shot still yields clips, and only inside itself
        assert any(s <= c["start_frame"] and c["end_frame"] <= e for c in kept(video)), (s, e)
    seconds = sum(c["duration_s"] for c in kept(video))
    assert seconds >= 0.75 * sum(e - s for s, e in shots) / draw.FPS


# -- low-contrast cuts --------------------------------------------------------------------


@pytest.fixture(scope="module")
def like_shots(tmp_path_factory, draw):
    """Hard cuts between shots of one tint and brightness, only the texture changing: two
    takes of one scene, or a dim interior cut to another (`make demo`'s footage had three)."""
    frames = draw.shot(1, 48, mean=80) + draw.shot(3, 48, mean=80) + draw.shot(5, 48, mean=90)
    path = tmp_path_factory.mktemp("like") / "like_shots.mp4"
    encode_frames(path, frames, draw.W, draw.H, draw.FPS)
    return path


def test_the_default_detector_finds_cuts_between_like_shots(like_shots):
    video = run(Splitter(SplitConfig(min_clip_s=1.0)), like_shots)
    assert video["cuts"] == [48, 96]
    shots = [(0, 48), (48, 96), (96, 144)]
    assert all(
        any(s <= c["start_frame"] and c["end_frame"] <= e for s, e in shots) for c in kept(video)
    )
    # The footage is the hard case: content's fixed threshold of 27 sees neither cut.
    assert run(Splitter(SplitConfig(detector="content", min_clip_s=1.0)), like_shots)["cuts"] == []
