"""The curate console: one live line on a terminal, a plain line per video elsewhere, and
everything libraries write to stderr kept in a file."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.console import Progress, clock_text, curate_console, libraries_to_file


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _two_videos(progress: Progress, clock: Clock) -> None:
    """120 s + 60 s of footage; the first done after 30 s of wall time, the second at 45 s."""
    progress.start(2, 180.0)
    clock.now += 30
    progress.video("aaaa", "ok", 120.0, 3)
    clock.now += 15
    progress.video("bbbb", "error", 60.0, 2)
    progress.finish()


def test_clock_text():
    assert [clock_text(s) for s in (0, 42.4, 725, 3723)] == ["0:00", "0:42", "12:05", "1:02:03"]


def test_a_log_gets_one_plain_line_per_video_with_rate_and_eta():
    stream, clock = io.StringIO(), Clock()
    _two_videos(Progress(stream, tty=False, clock=clock), clock)
    # 120 footage-s in 30 wall-s: 4 footage-min per wall-min; 60 s left: 15 s more.
    assert stream.getvalue().splitlines() == [
        "[1/2] aaaa ok 3 clips · 2.0/3.0 footage-min · 4.0 footage-min/min · ETA 0:15",
        "[2/2] bbbb error 2 clips · 3.0/3.0 footage-min · 4.0 footage-min/min · ETA 0:00",
    ]


def test_a_terminal_gets_one_line_rewritten_in_place():
    stream, clock = io.StringIO(), Clock()
    _two_videos(Progress(stream, tty=True, clock=clock), clock)
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # one line, ended when the pass ends
    frames = [f.removesuffix("\x1b[K") for f in text.rstrip("\n").split("\r") if f]
    assert frames == [
        "1/2 videos · 2.0/3.0 footage-min · 4.0 footage-min/min · ETA 0:15 · 3 clips",
        "2/2 videos · 3.0/3.0 footage-min · 4.0 footage-min/min · ETA 0:00 · 5 clips",
    ]


def test_unknown_rate_and_notes_above_the_live_line():
    stream, clock = io.StringIO(), Clock()
    progress = Progress(stream, tty=True, clock=clock)
    progress.start(3, 90.0, verb="re-scored")
    progress.video("aaaa", "ok", 0.0, 1)  # no footage yet, no time passed: no rate, no ETA
    progress.note("a note")
    assert stream.getvalue().split("\r")[1:] == [
        "1/3 videos re-scored · 0.0/1.5 footage-min · – footage-min/min · ETA – · 1 clips\x1b[K",
        "\x1b[Ka note\n",  # the live line is erased, the note printed, the line drawn again
        "1/3 videos re-scored · 0.0/1.5 footage-min · – footage-min/min · ETA – · 1 clips\x1b[K",
    ]


def test_lines_go_through_a_callable_when_there_is_no_stream():
    said: list[str] = []
    progress = Progress.lines(said.append)
    progress.note("4 videos")
    progress.start(1, 60.0)
    progress.video("aaaa", "ok", 60.0, 2)
    progress.finish()
    assert said[0] == "4 videos" and said[1].startswith("[1/1] aaaa ok 2 clips · 1.0/1.0")


def test_library_output_goes_to_the_file_and_ours_to_the_console(tmp_path, capfd):
    log = tmp_path / "work" / "curate.log"
    with libraries_to_file(log) as console:
        os.write(2, b"E core_worker.cc: from C++\n")  # what Ray's core worker does
        print("a Python warning", file=sys.stderr)  # and Ray's log handlers, which look it up late
        console.write("ours\n")
    print("after", file=sys.stderr)
    err = capfd.readouterr().err
    assert err == "ours\nafter\n"
    assert all(s in log.read_text() for s in ("from C++", "a Python warning"))


def test_the_real_stderr_is_kept_for_the_console(tmp_path):
    """Outside pytest's capture `sys.stderr` is descriptor 2 itself: the console is a copy."""
    code = (
        "import os, sys; from pathlib import Path; from pipeline.console import libraries_to_file\n"
        f"with libraries_to_file(Path({str(tmp_path / 'x.log')!r})) as console:\n"
        "    os.write(2, b'noise\\n'); print('more noise', file=sys.stderr)\n"
        "    console.write('ours\\n')\n"
        "print('after', file=sys.stderr)\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert (done.returncode, done.stderr) == (0, "ours\nafter\n")
    assert (tmp_path / "x.log").read_text() == "noise\nmore noise\n"


@pytest.mark.parametrize("verbose", [False, True])
def test_our_log_records_reach_the_console_and_others_only_when_verbose(tmp_path, capsys, verbose):
    with curate_console(tmp_path / "work", verbose=verbose, quiet=False) as progress:
        logging.getLogger("pipeline.report.page").warning("report failed")
        logging.getLogger("somelib").warning("a library notice")
        progress.note("4 videos")
    err = capsys.readouterr().err
    assert "report failed" in err and "4 videos" in err
    assert ("a library notice" in err) == verbose
    assert (tmp_path / "work" / "curate.log").exists() != verbose
    if not verbose:
        assert "a library notice" in (tmp_path / "work" / "curate.log").read_text()


def test_quiet_prints_no_progress(tmp_path, capsys):
    with curate_console(tmp_path, verbose=False, quiet=True) as progress:
        progress.note("4 videos")
        progress.start(1, 1.0)
        progress.video("aaaa", "ok", 1.0, 1)
    assert capsys.readouterr().err == ""
