"""Locate and run the ffmpeg binary.

A system ffmpeg on PATH wins (users often have a build with more codecs or
NVENC); otherwise the static binary shipped by the `imageio-ffmpeg` wheel, so a
plain `pip install` is enough to run clipmill.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from functools import cache


@cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary clipmill runs."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(args: list[str], timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run ffmpeg with an argument list (never a shell string); raise with its last stderr line."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *args]
    proc = subprocess.run(
        cmd, capture_output=True, timeout=timeout, check=False, preexec_fn=_die_with_parent()
    )
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        last = lines[-1] if lines else f"exit code {proc.returncode}"
        raise RuntimeError(f"ffmpeg failed: {last}")
    return proc


def _die_with_parent():  # noqa: ANN202 - a preexec_fn or None
    """On Linux, a child ffmpeg gets SIGKILL when the worker that ran it dies.

    A Ray worker killed mid-transcode would otherwise leave its ffmpeg writing clip files
    into the staging folder that the retried video is being rebuilt in.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def arm() -> None:
        libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG

    return arm
