"""Locate and run the ffmpeg binary.

A system ffmpeg on PATH wins (users often have a build with more codecs or
NVENC); otherwise the static binary shipped by the `imageio-ffmpeg` wheel, so a
plain `pip install` is enough to run clipmill.
"""

from __future__ import annotations

import shutil
import subprocess
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
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        last = lines[-1] if lines else f"exit code {proc.returncode}"
        raise RuntimeError(f"ffmpeg failed: {last}")
    return proc
