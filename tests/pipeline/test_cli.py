"""Exit codes and one-line messages naming the flag."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import termios
import threading

import pytest

from pipeline.cli import main


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--split.max_clip_s", "0.5"], "--split.max_clip_s"),
        (["--split.detector", "magic"], "split.detector"),
        (["--transcode.crf", "99"], "--transcode.crf"),
        (["--shards.max_samples", "0"], "--shards.max_samples"),
        (["--split.nonsense", "1"], "--split.nonsense"),
    ],
)
def test_bad_configuration_exits_2_naming_the_flag(tmp_path, capsys, argv, flag):
    code = main(["curate", str(tmp_path), "--output", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert flag in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_no_input_video_exits_nonzero(tmp_path, capsys):
    (tmp_path / "readme.txt").write_text("no videos here")
    code = main(["curate", str(tmp_path), "--output", str(tmp_path / "o"), "--ray.address", "none"])
    assert code == 1 and "no input video" in capsys.readouterr().err


def test_finished_run_exits_0(synth_raw, tmp_path, capsys):
    root, truth = synth_raw
    code = main(
        [
            "curate",
            str(root / truth[2]["file"]),
            "--output",
            str(tmp_path / "o"),
            "--ray.address",
            "none",
            "--quiet",
            "--split.detector",
            "adaptive",
        ]
    )
    assert code == 0 and "clips kept" in capsys.readouterr().out


def test_unknown_command_exits_2(capsys):
    assert main(["frobnicate"]) == 2


def test_a_run_prints_a_plain_line_per_video_and_nothing_else(synth_raw, tmp_path, capsys):
    """Not a terminal (pytest's capture): one plain line per video, each with the footage
    done of the probed duration; libraries' output lands in OUT/work/curate.log."""
    import pyarrow.parquet as pq

    root, truth = synth_raw
    out = tmp_path / "o"
    argv = ["curate", str(root / truth[2]["file"]), "--output", str(out)]
    code = main([*argv, "--ray.address", "none", "--split.detector", "adaptive"])
    err = capsys.readouterr().err.splitlines()
    (video,) = pq.read_table(out / "videos.parquet").to_pylist()
    minutes = f"{video['duration_s'] / 60:.1f}"
    assert code == 0 and err[0] == "1 videos (1 ok), 1 to process, 0 to re-score, 0 already done"
    assert err[1].startswith(f"[1/1] {video['video_id']} ok {video['n_clips']} clips · ")
    assert f"· {minutes}/{minutes} footage-min · " in err[1] and err[1].endswith("ETA 0:00")
    assert len(err) == 2 and (out / "work" / "curate.log").exists()


@pytest.mark.slow
def test_a_healthy_run_on_local_ray_prints_only_our_lines(synth_raw, tmp_path):
    """No token-auth notice, deprecation warning or core_worker.cc error on the console:
    Ray's output goes to OUT/work/curate.log."""
    root, truth = synth_raw
    out = tmp_path / "o"
    argv = [sys.executable, "-m", "pipeline.cli", "curate", str(root / truth[2]["file"])]
    done = subprocess.run([*argv, "--output", str(out)], capture_output=True, text=True)
    lines = done.stderr.splitlines()
    assert done.returncode == 0 and len(lines) == 2, done.stderr
    assert lines[0].startswith("1 videos (1 ok)") and lines[1].startswith("[1/1] ")
    assert done.stdout.startswith("done: ")
    assert "Started a local Ray instance" in (out / "work" / "curate.log").read_text()


def _own_terminal() -> None:
    """In the child: a session of its own whose controlling terminal is its stdin (a pty)."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _run_on_a_pty(argv: list[str], timeout: float) -> tuple[int, str]:
    """Run `argv` as a person's terminal would (the pty is its controlling terminal)."""
    import psutil

    master, slave = os.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, preexec_fn=_own_terminal)
    os.close(slave)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the terminal's last writer is gone
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        # Stopped Ray workers live in process groups of their own: kill the whole tree.
        for p in [*psutil.Process(proc.pid).children(recursive=True), proc]:
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                p.kill()
        code = -1
    reader.join(timeout=10)
    os.close(master)
    return code, b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_on_a_terminal_local_ray_finishes_with_one_live_line(synth_raw, tmp_path):
    """Ray's workers once inherited the terminal as stdin and stopped on SIGTTOU for good."""
    root, truth = synth_raw
    argv = [sys.executable, "-m", "pipeline.cli", "curate", str(root / truth[2]["file"])]
    code, text = _run_on_a_pty([*argv, "--output", str(tmp_path / "o")], timeout=240)
    assert code == 0, text[-3000:]
    assert "\r1/1 videos · " in text and "[1/1]" not in text and "done: " in text
