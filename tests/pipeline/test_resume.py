"""kill -9 at several moments, then re-run: the result equals an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _cmd(raw: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipeline.cli",
        "curate",
        str(raw),
        "--output",
        str(out),
        "--ray.address",
        "none",
        "--quiet",
    ]


@pytest.mark.slow
def test_kill_nine_then_resume_equals_uninterrupted_run(synth_raw, tmp_path, digest_tree):
    raw = synth_raw[0]
    reference = tmp_path / "reference"
    subprocess.run(_cmd(raw, reference), check=True, capture_output=True)
    out = tmp_path / "interrupted"
    kills = 0
    # Kill at growing delays so the deaths land in discovery, mid-video and mid-pack.
    for delay in (1.0, 2.5, 4.0, 5.5, 7.0):
        proc = subprocess.Popen(
            _cmd(raw, out),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        if (out / "summary.json").exists():
            break  # this run finished before the kill
    assert kills >= 1
    subprocess.run(_cmd(raw, out), check=True, capture_output=True)
    assert digest_tree(out) == digest_tree(reference)
    clips = json.loads((out / "summary.json").read_text())["clips"]
    assert clips["kept"] > 0
