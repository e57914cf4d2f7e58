"""Locate and run the ffmpeg binary; ask it whether a GPU codec works here.

A system ffmpeg on PATH wins (users often have a build with more codecs or
NVENC); otherwise the static binary shipped by the `imageio-ffmpeg` wheel, so a
plain `pip install` is enough to run clipmill. That binary is built with NVENC and
NVDEC (CUDA) support, but whether they run depends on the GPU and driver of the
machine, so a GPU codec is probed once at start (`codec_problem`, `hwaccel_problem`).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

# ffmpeg prefixes a line with the component that wrote it: "[h264_nvenc @ 0x55ad…] ".
_PREFIX = re.compile(r"^(\[[^\]]*\]\s*)+")


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


def hwaccel_args(hwaccel: str) -> list[str]:
    """Input options that decode on the GPU ("cuda": NVDEC); "none" adds nothing.

    No `-hwaccel_output_format`: decoded frames come back to system memory, so the CPU
    filters after the decode (fps, scale, format) run unchanged.
    """
    return [] if hwaccel == "none" else ["-hwaccel", hwaccel]


def ffmpeg_problem(args: list[str], timeout: float = 60) -> str | None:
    """None when ffmpeg runs `args` without a word on stderr, else its first error line.

    The first line is the cause ("Cannot load libcuda.so.1", "OpenEncodeSessionEx failed:
    unsupported device"); the lines after it are its consequences ("Nothing was written").
    Any stderr counts: a decoder that cannot use its hwaccel says so and goes on in software.
    """
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"ffmpeg did not finish within {timeout:g} s"
    lines = [ln.strip() for ln in proc.stderr.decode(errors="replace").splitlines() if ln.strip()]
    if proc.returncode == 0 and not lines:
        return None
    return _PREFIX.sub("", lines[0]) if lines else f"ffmpeg exit code {proc.returncode}"


@cache
def codec_problem(encoder_args: tuple[str, ...]) -> str | None:
    """Why a video encoder with these options cannot encode here (None: it can).

    A tenth of a second of a 256x256 test colour, encoded and thrown away: it opens an
    encode session on the GPU, which is the step that fails without one. Cached, so a
    run pays for it once.
    """
    src = ["-f", "lavfi", "-i", "color=size=256x256:duration=0.1"]
    return ffmpeg_problem([*src, *encoder_args, "-f", "null", "-"])


@cache
def hwaccel_problem(hwaccel: str) -> str | None:
    """Why `-hwaccel {hwaccel}` cannot decode H.264 here (None: it can); cached."""
    with tempfile.TemporaryDirectory(prefix="clipmill-hwaccel-") as folder:
        sample = str(Path(folder) / "probe.mp4")
        src = ["-f", "lavfi", "-i", "testsrc2=size=256x256:duration=0.2"]
        made = ffmpeg_problem([*src, "-c:v", "libx264", "-pix_fmt", "yuv420p", sample])
        if made is not None:
            return f"could not make the H.264 probe file: {made}"
        return ffmpeg_problem([*hwaccel_args(hwaccel), "-i", sample, "-f", "null", "-"])


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
