"""Synthetic footage: same seed, same bytes; truth that matches the decoded pixels; bad inputs
that really are what their names claim."""

from __future__ import annotations

import json
import re
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.ffmpeg import ffmpeg_exe
from pipeline.synthetic.synth import SynthConfig, main, make_bad_inputs, synthesize
from pipeline.synthetic.vocab import (
    CAPTION_TEMPLATES,
    COLOURS,
    DIRECTIONS,
    SHAPES,
    all_combos,
    load_holdout,
)

# Small and short so the whole file runs in seconds, but with every transition kind.
SMALL = dict(
    width=128,
    height=72,
    min_shot_s=0.5,
    max_shot_s=1.5,
    shots_per_video=(3, 4),
    dissolve_prob=0.35,
    black_prob=0.35,
)


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("raw")
    return out, synthesize(out, videos=3, seed=0, **SMALL)


@pytest.fixture(scope="module")
def decoded(raw: tuple[Path, list[dict]]) -> list[np.ndarray]:
    out, truth = raw
    return [_decode(out / entry["file"]) for entry in truth]


def _decode(path: Path) -> np.ndarray:
    """Every frame of a video, RGB, as int16 (so colour differences can go negative)."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack(frames).astype(np.int16)


def _ink(frame: np.ndarray, colour: str, tolerance: int) -> np.ndarray:
    """Pixels within `tolerance` of the shape's colour on every channel."""
    return np.abs(frame - np.array(COLOURS[colour])).max(axis=-1) < tolerance


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_bad_inputs(tmp_path_factory.mktemp("bad"))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_seed_same_bytes_other_seed_other_bytes(raw, tmp_path: Path) -> None:
    out, truth = raw
    again = synthesize(tmp_path / "again", videos=3, seed=0, **SMALL)
    assert again == truth
    assert _files(tmp_path / "again") == _files(out)
    synthesize(tmp_path / "other", videos=1, seed=1, **SMALL)
    assert (tmp_path / "other" / "video_000.mp4").read_bytes() != (
        out / "video_000.mp4"
    ).read_bytes()


def test_a_video_does_not_depend_on_how_many_are_made(raw, tmp_path: Path) -> None:
    out, _ = raw
    synthesize(tmp_path, videos=1, seed=0, **SMALL)
    assert (tmp_path / "video_000.mp4").read_bytes() == (out / "video_000.mp4").read_bytes()


def test_truth_json_is_what_synthesize_returned(raw) -> None:
    out, truth = raw
    assert json.loads((out / "truth.json").read_text()) == truth
    assert [e["file"] for e in truth] == ["video_000.mp4", "video_001.mp4", "video_002.mp4"]


def test_segments_tile_the_video_and_use_the_world_vocabulary(raw) -> None:
    _, truth = raw
    kinds = set()
    for entry in truth:
        shots = entry["shots"]
        assert shots[0]["start_frame"] == 0 and shots[-1]["end_frame"] == entry["n_frames"]
        for prev, seg in zip(shots, shots[1:], strict=False):
            assert prev["end_frame"] == seg["start_frame"]
            if seg["kind"] != "shot":  # transitions sit between two shots
                assert prev["kind"] == "shot"
        for seg in shots:
            kinds.add(seg["kind"])
            length_s = (seg["end_frame"] - seg["start_frame"]) / entry["fps"]
            if seg["kind"] == "black":
                assert 0.5 - 1e-6 <= length_s <= 1.5 + 1e-6
            if seg["kind"] != "shot":
                assert seg["caption"] is None and seg["colour"] is None
                continue
            assert seg["colour"] in COLOURS and seg["shape"] in SHAPES
            assert seg["direction"] in DIRECTIONS
            words = {"colour": seg["colour"], "shape": seg["shape"], "direction": seg["direction"]}
            assert seg["caption"] in {t.format(**words) for t in CAPTION_TEMPLATES}
    assert kinds == {"shot", "black", "dissolve"}
    long_shots = [
        s
        for s in truth[0]["shots"]
        if s["kind"] == "shot" and s["end_frame"] - s["start_frame"] >= 240
    ]
    assert len(long_shots) == 1  # 10-14 s at 24 fps, only in the first video


def test_cuts_list_every_transition(raw) -> None:
    _, truth = raw
    for entry in truth:
        expected = []
        shots = entry["shots"]
        for prev, seg in zip(shots, shots[1:], strict=False):
            if seg["kind"] == "dissolve":
                mid = (seg["start_frame"] + seg["end_frame"]) // 2
                expected.append(("dissolve", mid, seg["start_frame"], seg["end_frame"]))
            elif prev["kind"] != "dissolve":
                f = seg["start_frame"]
                expected.append(("hard", f, f, f))
        got = [(c["kind"], c["frame"], c["start_frame"], c["end_frame"]) for c in entry["cuts"]]
        assert got == expected


def test_decoded_video_matches_truth(raw, decoded) -> None:
    out, truth = raw
    for entry, frames in zip(truth, decoded, strict=True):
        assert frames.shape == (entry["n_frames"], entry["height"], entry["width"], 3)
        with av.open(str(out / entry["file"])) as container:
            stream = container.streams.video[0]
            assert stream.average_rate == 24
            assert stream.codec_context.name == "h264" and stream.format.name == "yuv420p"


def test_black_is_black_shots_are_smooth_and_cuts_are_sharp(raw, decoded) -> None:
    _, truth = raw
    for entry, frames in zip(truth, decoded, strict=True):
        step = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))  # step[i]: frame i -> i+1
        for seg in entry["shots"]:
            a, b = seg["start_frame"], seg["end_frame"]
            if seg["kind"] == "black":
                assert frames[a:b].mean() < 2 and frames[a:b].max() < 40
            if seg["kind"] == "shot":
                assert step[a : b - 1].max() < 3
        for cut in entry["cuts"]:
            if cut["kind"] == "hard":
                assert step[cut["frame"] - 1] > 8
            else:  # a cross-fade: every step gentler than the jump it replaces
                a, b = cut["start_frame"], cut["end_frame"]
                jump = np.abs(frames[b] - frames[a - 1]).mean()
                assert jump > 8 and step[a - 1 : b].max() < jump / 2


def test_the_shape_has_its_colour_and_moves_its_direction(raw, decoded) -> None:
    _, truth = raw
    for entry, frames in zip(truth, decoded, strict=True):
        for seg in (s for s in entry["shots"] if s["kind"] == "shot"):
            first, last = (
                _centroid(frames[seg["start_frame"]], seg["colour"]),
                _centroid(frames[seg["end_frame"] - 1], seg["colour"]),
            )
            dx, dy = DIRECTIONS[seg["direction"]]
            moved = last - first
            along, across = moved @ np.array([dx, dy]), moved @ np.array([dy, dx])
            assert along >= 3 and abs(across) < 2, (entry["file"], seg)


def _centroid(frame: np.ndarray, colour: str) -> np.ndarray:
    mask = _ink(frame, colour, 60)
    side = round(0.2 * min(frame.shape[:2]))
    assert mask.sum() > 0.3 * side * side, f"no {colour} shape found"
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def test_srt_has_one_cue_per_shot(raw) -> None:
    out, truth = raw
    pattern = re.compile(
        r"(\d+)\n(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})\n(.+)"
    )
    for entry in truth:
        blocks = (out / entry["srt"]).read_text(encoding="utf-8").strip().split("\n\n")
        shots = [s for s in entry["shots"] if s["kind"] == "shot"]
        assert len(blocks) == len(shots)
        for number, (block, shot) in enumerate(zip(blocks, shots, strict=True), start=1):
            match = pattern.fullmatch(block)
            assert match, block
            g = [int(x) for x in match.groups()[:9]]
            start = g[1] * 3600 + g[2] * 60 + g[3] + g[4] / 1000
            end = g[5] * 3600 + g[6] * 60 + g[7] + g[8] / 1000
            assert g[0] == number and match.group(10) == shot["caption"]
            assert start == pytest.approx(shot["start_frame"] / 24, abs=6e-4)
            assert end == pytest.approx(shot["end_frame"] / 24, abs=6e-4)


def test_duration_fills_the_video_exactly(tmp_path: Path) -> None:
    truth = synthesize(tmp_path, videos=1, seed=3, width=64, height=36, duration_s=4.0)
    assert truth[0]["n_frames"] == 96 and truth[0]["shots"][-1]["end_frame"] == 96
    with av.open(str(tmp_path / "video_000.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 96


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [("videos", 0, "--videos"), ("width", 33, "--width"), ("fps", 0.0, "--fps"),
     ("max_shot_s", 0.5, "--max-shot-s"), ("duration_s", 0.1, "--duration-s"),
     ("shape_size", 0.9, "--shape-size"), ("shape_size", 0.0, "--shape-size")],
)  # fmt: skip
def test_bad_values_name_their_flag(field: str, value: object, flag: str) -> None:
    with pytest.raises(ValueError, match=re.escape(flag)):
        SynthConfig(**{field: value})


def test_cli_exit_codes_and_one_line_output(tmp_path: Path, capsys) -> None:
    assert main(["--output", str(tmp_path / "x"), "--videos", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--videos must be >= 1" in err and "\n" not in err
    args = ["--output", str(tmp_path / "ok"), "--videos", "1", "--width", "64", "--height", "36"]
    assert main([*args, "--duration-s", "1.5"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("wrote 1 videos") and "\n" not in printed
    assert (tmp_path / "ok" / "truth.json").exists()


def test_shape_size_sets_the_side_of_the_filmed_shape(tmp_path: Path, capsys) -> None:
    """`--shape-size` reaches the footage: the object's side is that fraction of the height."""
    sides = {}
    for size in (0.3, 0.45):
        out = tmp_path / str(size)
        args = ["--output", str(out), "--videos", "1", "--width", "160", "--height", "90"]
        assert main([*args, "--duration-s", "1.5", "--shape-size", str(size)]) == 0
        capsys.readouterr()
        truth = json.loads((out / "truth.json").read_text())[0]
        shot = next(s for s in truth["shots"] if s["kind"] == "shot")
        frame = _decode(out / "video_000.mp4")[(shot["start_frame"] + shot["end_frame"]) // 2]
        rows, cols = np.nonzero(_ink(frame, shot["colour"], 40))
        sides[size] = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1
    assert abs(sides[0.3] - 27) <= 3 and abs(sides[0.45] - 40) <= 3, sides


VALID = ["odd_dims", "rotated", "vfr", "ten_bit", "hevc_mkv", "vp9_webm", "av1_mkv",
         "prores_mov", "weird_name"]  # fmt: skip


def test_bad_inputs_are_all_there(bad) -> None:
    expected = {"zero_byte", "truncated", "random_bytes", "png_as_mp4", "audio_only", "text_file"}
    assert expected | set(VALID) <= set(bad), f"missing: {expected | set(VALID) - set(bad)}"
    assert all(p.exists() for p in bad.values())
    files = {p.name for p in bad["text_file"].parent.iterdir()}
    assert len({p.name for p in bad.values()}) == len(bad) == len(files - {"truth.json"})


def test_damaged_inputs_have_their_damaged_frames_in_the_truth(bad) -> None:
    truth = json.loads((bad["text_file"].parent / "truth.json").read_text())
    mid, throughout = truth["damaged_mid.mp4"], truth["damaged_throughout.mp4"]
    # One stretch inside the video, ending at a shot's start (the next keyframe).
    [(a, b)] = mid["damaged"]
    assert 0 < a < b < mid["n_frames"] and b in {s for s, _ in mid["shots"]}
    assert sum(b - a for a, b in throughout["damaged"]) > throughout["n_frames"] / 2


@pytest.mark.parametrize("name", ["zero_byte", "truncated", "random_bytes"])
def test_broken_files_fail_to_open(bad, name: str) -> None:
    with pytest.raises(av.error.FFmpegError):
        av.open(str(bad[name]))


def test_the_odd_ones_are_what_they_claim(bad) -> None:
    assert bad["zero_byte"].stat().st_size == 0
    assert bad["png_as_mp4"].suffix == ".mp4"
    assert bad["png_as_mp4"].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with av.open(str(bad["png_as_mp4"])) as container:
        assert container.format.name == "png_pipe"
    with av.open(str(bad["audio_only"])) as container:
        assert not container.streams.video and container.streams.audio
    assert bad["text_file"].name == "notes.txt"
    assert set(bad["weird_name"].name) & set(" '\"$;&") and not bad["weird_name"].name.isascii()


@pytest.mark.parametrize("name", VALID)
def test_valid_exotic_files_decode_to_moving_content(bad, name: str) -> None:
    assert name in bad, f"make_bad_inputs made no {name} with {ffmpeg_exe()}"
    with av.open(str(bad[name])) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
    assert len(frames) >= 24 and float(frames[-1].time) <= 2.0
    pixels = [f.to_ndarray(format="rgb24").astype(np.int16) for f in (frames[0], frames[-1])]
    assert np.abs(pixels[1] - pixels[0]).mean() > 0.5  # the square moved
    checks = {
        "odd_dims": lambda: (stream.width, stream.height) == (321, 179),
        "rotated": lambda: frames[0].rotation in (90, -90, 270),
        "vfr": lambda: len({b.pts - a.pts for a, b in zip(frames, frames[1:], strict=False)}) > 3,
        "ten_bit": lambda: frames[0].format.name == "yuv420p10le",
        "hevc_mkv": lambda: stream.codec_context.name == "hevc" and bad[name].suffix == ".mkv",
        "vp9_webm": lambda: "vp9" in stream.codec_context.name and bad[name].suffix == ".webm",
        "av1_mkv": lambda: stream.codec_context.codec.id == av.Codec("av1").id,
        "prores_mov": lambda: stream.codec_context.name == "prores" and bad[name].suffix == ".mov",
        "weird_name": lambda: stream.codec_context.name == "h264",
    }
    assert checks[name]()


HOLDOUT = Path(__file__).parents[3] / "configs" / "world" / "holdout.yaml"


def test_world_vocabulary_is_the_contract() -> None:
    assert set(COLOURS) == {"red", "green", "blue", "yellow", "white"}
    assert set(SHAPES) == {"circle", "square", "triangle"}
    assert set(DIRECTIONS) == {"left", "right", "up", "down"}
    assert len(set(all_combos())) == 60 and len(CAPTION_TEMPLATES) >= 3


def test_shipped_holdout_keeps_every_word_and_pair_in_training() -> None:
    held = load_holdout(HOLDOUT)
    seen = set(all_combos()) - set(held)
    assert len(held) == 12
    for c, s, d in held:
        assert any(t[:2] == (c, s) for t in seen) and any((t[0], t[2]) == (c, d) for t in seen)
        assert any(t[1:] == (s, d) for t in seen)


def test_holdout_combinations_are_never_filmed(tmp_path: Path) -> None:
    held = load_holdout(HOLDOUT)
    args = ["--output", str(tmp_path), "--videos", "6", "--width", "64", "--height", "36"]
    assert (
        main([*args, "--min-shot-s", "0.2", "--max-shot-s", "0.3", "--holdout", str(HOLDOUT)]) == 0
    )
    truth = json.loads((tmp_path / "truth.json").read_text())
    filmed = {(s["colour"], s["shape"], s["direction"]) for e in truth for s in e["shots"]}
    filmed.discard((None, None, None))
    assert len(filmed) >= 15 and not filmed & set(held)


def test_bad_holdout_files_name_the_flag(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    for text in ("holdout: [[red, hexagon, left]]\n", "nope: 1\n", "holdout: [[red, circle]]\n"):
        bad.write_text(text)
        with pytest.raises(ValueError, match="--holdout"):
            load_holdout(bad)
    with pytest.raises(ValueError, match="--holdout"):
        SynthConfig(holdout=tuple(all_combos()))
