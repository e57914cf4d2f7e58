"""Motion filter: a moving shape passes, a frozen noisy still fails; scores are rates."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from pipeline.stages.motion import motion_scores


def _square(t: int, size: int = 96, step: int = 2) -> np.ndarray:
    frame = np.full((54, size, 3), 40, np.uint8)
    frame[20:34, 10 + step * t : 24 + step * t] = 230
    return frame


def test_moving_square_scores_its_speed_and_static_noise_scores_zero():
    times = np.arange(8) / 4.0  # 4 fps samples
    moving = np.stack([_square(t) for t in range(8)])
    score, stillest = motion_scores(moving, times, 1, 96, 3)
    # The square covers 14x14 of 96x54 px and moves 2 px per 0.25 s: a mean of about
    # (196 / 5184) * 8 px/s / 96 px = 0.003 frame widths per second, plus flow spill-over.
    assert 0.001 < score < 0.02 and stillest < score / 10
    noise = np.random.default_rng(0).integers(0, 255, (54, 96, 3), dtype=np.uint8)
    still, _ = motion_scores(np.stack([noise] * 8), times, 1, 96, 3)
    assert still < 1e-4


def test_score_does_not_depend_on_the_sampling_stride():
    times = np.arange(9) / 4.0
    moving = np.stack([_square(t, step=1) for t in range(9)])
    a, _ = motion_scores(moving, times, 1, 96, 3)
    b, _ = motion_scores(moving, times, 2, 96, 3)
    assert abs(a - b) < 0.35 * a


def test_too_few_frames_gives_no_score():
    assert motion_scores(np.zeros((1, 54, 96, 3), np.uint8), np.zeros(1), 1, 64, 3) is None


def test_static_shot_fails_and_moving_shot_passes(junk_curated, truth_kind):
    out, _, truth = junk_curated
    clips = pq.read_table(out / "clips.parquet").to_pylist()
    by_label: dict[str, list[dict]] = {}
    for c in clips:
        if c["motion_score"] is not None:
            by_label.setdefault(truth_kind(c, truth)[0], []).append(c)
    assert by_label["static"] and by_label["shot"]
    for c in by_label["static"]:
        assert "low_motion" in c["reject_reasons"] and c["motion_score"] < 1e-4
    for c in by_label["shot"] + by_label["repeat"] + by_label["sign"]:
        assert "low_motion" not in c["reject_reasons"] and c["motion_score"] > 2e-3
