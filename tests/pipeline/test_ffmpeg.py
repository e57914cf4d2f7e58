"""ffmpeg's word on a codec: None when it works, else the cause in one line."""

from __future__ import annotations

from pipeline.ffmpeg import ffmpeg_problem, hwaccel_args

TINY = ["-f", "lavfi", "-i", "color=size=64x64:duration=0.04"]


def test_a_working_encode_has_no_problem():
    assert ffmpeg_problem([*TINY, "-c:v", "libx264", "-f", "null", "-"]) is None


def test_a_problem_is_the_first_line_without_its_component_prefix():
    # ffmpeg writes "[vost#0:0 @ 0x…] Unknown encoder 'nope'" and then its consequences.
    assert ffmpeg_problem([*TINY, "-c:v", "nope", "-f", "null", "-"]) == "Unknown encoder 'nope'"


def test_hwaccel_none_adds_no_argument():
    assert hwaccel_args("none") == []
    assert hwaccel_args("cuda") == ["-hwaccel", "cuda"]
