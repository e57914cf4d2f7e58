"""train/data/video_io.py: PyAV encode/decode of short clips, frame-exact, in memory."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from train.data.video_io import Mp4Reader, decode_mp4, encode_mp4, probe_mp4, write_mp4


def numbered(n: int, h: int = 48, w: int = 64) -> np.ndarray:
    """Frame i: left half grey 8 * (i % 30) + 8, right half 8 * (i // 30) + 8.

    Steps of 8 survive lossy coding; two digits give 900 distinct frames.
    """
    video = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        video[i, :, : w // 2] = 8 * (i % 30) + 8
        video[i, :, w // 2 :] = 8 * (i // 30) + 8
    return video


def index_of(frame: np.ndarray) -> int:
    w = frame.shape[1]
    low = round((float(np.median(frame[:, : w // 4])) - 8) / 8)
    high = round((float(np.median(frame[:, -w // 4 :])) - 8) / 8)
    return high * 30 + low


@pytest.fixture(scope="module")
def clip() -> bytes:
    return encode_mp4(numbered(30), fps=24)


def test_roundtrip_keeps_count_rate_size_and_content(clip: bytes) -> None:
    info = probe_mp4(clip)
    assert (info.n_frames, info.fps, info.width, info.height) == (30, 24.0, 64, 48)
    video = decode_mp4(clip)
    assert video.shape == (30, 48, 64, 3) and video.dtype == np.uint8
    assert [index_of(f) for f in video] == list(range(30))


def test_decode_picks_indices_in_any_order_and_resizes(clip: bytes) -> None:
    video = decode_mp4(clip, [5, 2, 2, 29], size=(24, 40))
    assert video.shape == (4, 24, 40, 3)
    assert [index_of(f) for f in video] == [5, 2, 2, 29]


def test_indices_past_the_end_get_the_last_frame(clip: bytes) -> None:
    video = decode_mp4(clip, [28, 40])
    assert [index_of(f) for f in video] == [28, 29]


def test_reader_reads_twice(clip: bytes) -> None:
    with Mp4Reader(clip) as reader:
        assert [index_of(f) for f in reader.read([10, 11])] == [10, 11]
        assert [index_of(f) for f in reader.read([3])] == [3]


@pytest.fixture(scope="module")
def textured() -> bytes:
    """120 frames of drifting texture, keyframes every 8: B-frames, seekable."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (48 // 4, 64 // 4, 3), dtype=np.uint8).repeat(4, 0).repeat(4, 1)
    video = np.stack([np.roll(base, (i, 2 * i), axis=(0, 1)) for i in range(120)])
    return encode_mp4(video, fps=25, gop=8)


@pytest.mark.parametrize(
    "indices", [[100, 103, 119], [5, 6, 7, 8], [60, 61, 62, 63, 64, 65], [0, 119]]
)
def test_seek_and_skipped_frames_do_not_change_pixels(textured: bytes, indices: list) -> None:
    everything = decode_mp4(textured)
    assert np.array_equal(decode_mp4(textured, indices), everything[indices])


def test_frame_counting_fallback_gives_the_same_frames(textured, monkeypatch) -> None:
    # Clips whose timestamps cannot be trusted are read by counting frames from the start.
    monkeypatch.setattr(Mp4Reader, "_read_by_pts", lambda *args: None)
    everything = decode_mp4(textured)
    assert np.array_equal(decode_mp4(textured, [70, 71, 90]), everything[[70, 71, 90]])


@pytest.mark.parametrize(
    "data",
    [b"", b"not an mp4 at all", b"\x89PNG\r\n\x1a\n" + bytes(100)],
    ids=["empty", "text", "png"],
)
def test_garbage_raises(data: bytes) -> None:
    # FFmpeg's own error, not a crash or an empty video (the data pipeline counts it).
    with pytest.raises(av.error.InvalidDataError, match="Invalid data found"):
        decode_mp4(data, [0])


def test_truncated_mp4_raises(clip: bytes) -> None:
    # The header is whole (faststart), the frames are cut: the decoder refuses a packet.
    with pytest.raises(av.error.InvalidDataError, match="Invalid data found"):
        decode_mp4(clip[: len(clip) // 2], list(range(30)))


def test_write_pads_odd_sides_and_takes_tensors(tmp_path) -> None:
    video = torch.from_numpy(numbered(5, h=33, w=31).copy())
    write_mp4(tmp_path / "odd.mp4", video, fps=29.97)
    data = (tmp_path / "odd.mp4").read_bytes()
    info = probe_mp4(data)
    assert (info.width, info.height, info.n_frames) == (32, 34, 5)
    assert info.fps == pytest.approx(29.97, abs=1e-3)
    assert data[4:8] == b"ftyp" and data.find(b"moov") < data.find(b"mdat")  # faststart


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 8, 8), np.uint8), np.zeros((2, 8, 8, 3), np.float32)], ids=["3d", "float"]
)
def test_write_rejects_wrong_arrays(tmp_path, bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        write_mp4(tmp_path / "x.mp4", bad, fps=8)
