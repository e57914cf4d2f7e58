"""train/filmstrip.py: the labelled, enlarged filmstrips `clipmill sample` writes as grid.png."""

from __future__ import annotations

import numpy as np
import pytest

from train.filmstrip import BACKGROUND, GAP, LABEL_PX, filmstrip


def videos(b: int = 2, t: int = 3, h: int = 16, w: int = 24) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (b, t, h, w, 3), dtype=np.uint8)


def test_each_frame_is_enlarged_by_nearest_neighbour_in_time_order():
    v = videos()
    image = filmstrip(v, min_px=64)  # short side 16 -> x4
    fh, fw = 16 * 4, 24 * 4
    assert image.shape == (2 * (fh + GAP) + GAP, 3 * (fw + GAP) + GAP, 3)
    for i in range(2):
        for k in range(3):
            top, left = GAP + i * (fh + GAP), GAP + k * (fw + GAP)
            tile = image[top : top + fh, left : left + fw]
            # Every 4x4 block is one source pixel: nothing blurred, nothing shifted.
            np.testing.assert_array_equal(tile[::4, ::4], v[i, k])
            np.testing.assert_array_equal(tile[3::4, 3::4], v[i, k])


def test_large_frames_are_not_scaled_and_labels_get_their_band():
    v = videos(b=2, t=2, h=64, w=64)
    plain = filmstrip(v)
    labelled = filmstrip(v, ["a red circle moving left", "a blue square moving up"])
    assert labelled.shape[0] == plain.shape[0] + 2 * LABEL_PX
    band = labelled[GAP : GAP + LABEL_PX]
    assert (band != BACKGROUND).any()  # the prompt is drawn
    top = GAP + LABEL_PX
    np.testing.assert_array_equal(labelled[top : top + 64, GAP : GAP + 64], v[0, 0])


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="uint8"):
        filmstrip(videos().astype(np.float32))
    with pytest.raises(ValueError, match="1 labels for 2 videos"):
        filmstrip(videos(), ["one"])
