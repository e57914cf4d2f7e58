"""Every kind of bad input is one row with a clear error (or a good clip); the run goes on."""

from __future__ import annotations

import json
import os
import re

import pyarrow.parquet as pq
import pytest

from pipeline.config.curate import build_config
from pipeline.driver import curate
from pipeline.ffmpeg import ffmpeg_exe

ERRORS = {
    "zero_byte": "empty file",
    "truncated": "Error",
    "random_bytes": "Error",
    "png_as_mp4": "an image",
    "audio_only": "no video stream",
}
GOOD = [
    "odd_dims",
    "rotated",
    "vfr",
    "ten_bit",
    "hevc_mkv",
    "vp9_webm",
    "av1_mkv",
    "prores_mov",
    "weird_name",
]


def _listing(folder) -> dict[str, int]:
    return {
        os.path.join(d, f): os.path.getsize(os.path.join(d, f))
        for d, _, fs in os.walk(folder)
        for f in fs
    }


@pytest.fixture(scope="module")
def bad_out(tmp_path_factory):
    return tmp_path_factory.mktemp("out")


@pytest.fixture(scope="module")
def result(bad_inputs, bad_out):
    folder = next(iter(bad_inputs.values())).parent
    before = _listing(folder)
    out = bad_out
    # The valid files are one moving square in many encodings: dedup (tested elsewhere)
    # would rightly keep one; here each must show it decodes into a clip.
    cfg = build_config(
        {
            "ray": {"address": "none"},
            "split": {"min_clip_s": 1.0},
            "dedup": {"exact": False, "perceptual": False},
        }
    )
    curate([str(folder)], out, cfg)
    assert _listing(folder) == before, "the input folder must not be touched"
    videos = {
        os.path.basename(v["source_path"]): v
        for v in pq.read_table(out / "videos.parquet").to_pylist()
    }
    clips = pq.read_table(out / "clips.parquet").to_pylist()
    return videos, clips


@pytest.mark.parametrize("kind", sorted(ERRORS))
def test_bad_file_is_one_error_row_with_a_one_line_reason(result, bad_inputs, kind):
    videos, clips = result
    row = videos[bad_inputs[kind].name]
    assert row["status"] == "error"
    assert ERRORS[kind] in row["error"] and "\n" not in row["error"]
    assert not [c for c in clips if c["source_path"] == row["source_path"]]


@pytest.mark.parametrize("kind", GOOD)
def test_unusual_but_valid_file_yields_a_kept_clip(result, bad_inputs, kind):
    # Every kind must be made: a missing one (av1_mkv when no AV1 encoder of this ffmpeg
    # writes a file PyAV decodes) is a broken setup, not a pass.
    assert kind in bad_inputs, f"make_bad_inputs made no {kind} with {ffmpeg_exe()}"
    videos, clips = result
    row = videos[bad_inputs[kind].name]
    assert row["status"] == "ok", row["error"]
    assert row["error"] is None, "a valid file must not read as damaged"
    kept = [c for c in clips if c["source_path"] == row["source_path"] and c["kept"]]
    assert kept, [c for c in clips if c["source_path"] == row["source_path"]]
    assert all(c["width"] % 2 == 0 and c["height"] % 2 == 0 for c in kept)
    if kind == "rotated":
        assert row["rotation"] in (90, 270) and row["height"] > row["width"]
        assert all(c["height"] > c["width"] for c in kept)


def _damage_truth(bad_inputs, kind: str) -> dict:
    truth = json.loads((bad_inputs[kind].parent / "truth.json").read_text())
    return truth[bad_inputs[kind].name]


def test_damaged_stretch_is_a_corrupt_row_and_noted_on_the_video(result, bad_inputs):
    videos, clips = result
    row = videos[bad_inputs["damaged_mid"].name]
    truth = _damage_truth(bad_inputs, "damaged_mid")
    (a, b), *_ = truth["damaged"]
    assert row["status"] == "ok", row["error"]
    # Frames come from the source's timeline: none lost to the damage from the count.
    assert row["n_frames"] == truth["n_frames"]
    assert re.fullmatch(r"damaged: \d+ frames near [\d.]+ s", row["error"]), row["error"]
    assert abs(float(row["error"].split("near ")[1].split()[0]) - a / truth["fps"]) < 0.5
    mine = [c for c in clips if c["source_path"] == row["source_path"]]
    corrupt = [c for c in mine if "corrupt" in c["reject_reasons"]]
    assert corrupt and all(not c["kept"] for c in corrupt)
    # The corrupt rows cover every damaged frame; no other row touches one.
    covered = {f for c in corrupt for f in range(c["start_frame"], c["end_frame"])}
    assert set(range(a, b)) <= covered
    others = [c for c in mine if "corrupt" not in c["reject_reasons"]]
    assert not [c for c in others if c["start_frame"] < b and c["end_frame"] > a]
    # Clean stretches on both sides still give clips: every shot but the damaged one.
    kept = [c for c in mine if c["kept"]]
    shots = [s for s in truth["shots"] if s[1] <= a or s[0] >= b]
    assert len(kept) == len(shots) == len(truth["shots"]) - 1, kept


def test_kept_clips_of_a_damaged_file_show_the_frames_they_name(
    result, bad_out, bad_inputs, kept_clip_problems
):
    videos, clips = result
    path = videos[bad_inputs["damaged_mid"].name]["source_path"]
    mine = [c for c in clips if c["source_path"] == path]
    assert [c for c in mine if c["kept"]]
    assert kept_clip_problems(bad_out, mine) == []


def test_file_damaged_throughout_is_an_error_row(result, bad_inputs):
    videos, clips = result
    row = videos[bad_inputs["damaged_throughout"].name]
    assert row["status"] == "error"
    assert "damaged throughout" in row["error"] and "\n" not in row["error"]
    assert not [c for c in clips if c["source_path"] == row["source_path"]]


def test_non_video_files_in_a_folder_are_ignored_silently(result, bad_inputs):
    videos, _ = result
    assert bad_inputs["text_file"].name not in videos


def test_missing_explicit_input_is_an_error_row(synth_raw, tmp_path):
    root, truth = synth_raw
    cfg = build_config({"ray": {"address": "none"}})
    curate([str(root / truth[1]["file"]), str(tmp_path / "nope.mp4")], tmp_path / "out", cfg)
    videos = pq.read_table(tmp_path / "out" / "videos.parquet").to_pylist()
    assert [v["status"] for v in videos] == ["ok", "error"]
    assert videos[1]["error"] == "input not found"
