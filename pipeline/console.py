"""What a person sees while `clipmill curate` runs, and where everything else goes.

`Progress` reports each finished video: on a terminal as one line rewritten in place
(videos, footage minutes, footage-minutes per wall-minute, ETA, clips), in a log or a pipe
as one plain line per video, so a log file reads top to bottom without control characters.

`libraries_to_file` sends whatever Ray and other libraries write to stderr to a file under
OUT/work/: Python logging and warnings, and the lines Ray's C++ core worker writes to file
descriptor 2 itself, which no Python setting reaches. `clipmill curate --verbose` skips it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

LOG_NAME = "curate.log"  # under OUT/work/: what Ray and other libraries said during a run
OUR_LOGGERS = ("clipmill", "pipeline", "schemas")  # top-level logger names shown on the console
_FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def clock_text(seconds: float) -> str:
    """0:42, 12:05, 1:02:03: an ETA a person reads at a glance."""
    s = max(0, round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


class Progress:
    """Progress of one pass over videos (process, then re-score), fed one finished video at a time.

    `stream` is where lines go (stderr in the CLI); `tty` picks the in-place line. `clock`
    is injectable so the rate and ETA arithmetic can be tested without waiting.
    """

    def __init__(
        self,
        stream: TextIO | None,
        tty: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream, self.tty, self.clock = stream, tty and stream is not None, clock
        self._say: Callable[[str], None] = self._write_line
        self._live = False  # a TTY line is on screen without its newline
        self.start(0, 0.0)

    @classmethod
    def lines(cls, say: Callable[[str], None]) -> Progress:
        """Plain lines through a callable (`log.info`, or a caller's own sink): no stream."""
        progress = cls(None)
        progress._say = say
        return progress

    def start(self, videos: int, footage_s: float, verb: str = "") -> None:
        """A new pass over `videos` videos holding `footage_s` seconds of footage."""
        self.total, self.footage_total, self.verb = videos, footage_s, verb
        self.done, self.footage_done, self.clips = 0, 0.0, 0
        self.t0 = self.clock()

    def note(self, text: str) -> None:
        """A message of its own line (counts, a warning of ours), above any live line."""
        self._clear()
        self._say(text)
        if self._live:
            self._draw()

    def video(self, video_id: str, status: str, footage_s: float, clips: int) -> None:
        """One video finished: `footage_s` seconds of source, `clips` clips made from it."""
        self.done += 1
        self.footage_done += footage_s
        self.clips += clips
        if self.tty:
            self._live = True
            self._draw()
        else:
            head = f"[{self.done}/{self.total}] {video_id} {self.verb or status} {clips} clips"
            self._say(f"{head} · {self._figures()}")

    def finish(self) -> None:
        """End the live line with its newline (nothing to do for plain lines)."""
        if self._live and self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()
        self._live = False

    def rate(self) -> float | None:
        """Footage-minutes per wall-minute so far (the same as footage-s per wall-s)."""
        wall = self.clock() - self.t0
        return self.footage_done / wall if wall > 0 and self.footage_done > 0 else None

    def eta_s(self) -> float | None:
        """Wall seconds left if the rest of the footage goes at the rate so far."""
        rate = self.rate()
        if self.done >= self.total:
            return 0.0
        return max(0.0, self.footage_total - self.footage_done) / rate if rate else None

    def _figures(self) -> str:
        rate, eta = self.rate(), self.eta_s()
        parts = [
            f"{self.footage_done / 60:.1f}/{self.footage_total / 60:.1f} footage-min",
            f"{rate:.{1 if rate < 100 else 0}f} footage-min/min" if rate else "– footage-min/min",
            f"ETA {clock_text(eta)}" if eta is not None else "ETA –",
        ]
        return " · ".join(parts)

    def _draw(self) -> None:
        if self.stream is None:
            return
        verb = f" {self.verb}" if self.verb else ""
        text = f"{self.done}/{self.total} videos{verb} · {self._figures()} · {self.clips} clips"
        self.stream.write(f"\r{text}\x1b[K")  # \x1b[K: erase what a longer line left
        self.stream.flush()

    def _clear(self) -> None:
        if self._live and self.stream is not None:
            self.stream.write("\r\x1b[K")

    def _write_line(self, text: str) -> None:
        if self.stream is not None:
            self.stream.write(text + "\n")
            self.stream.flush()


def _on_fd2(stream: TextIO) -> bool:
    """True when `stream` writes to file descriptor 2 (the real stderr, not a test's capture)."""
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


@contextlib.contextmanager
def libraries_to_file(path: Path) -> Iterator[TextIO]:
    """Send everything written to stderr inside the block to `path`; yield the console.

    Both levels are redirected: `sys.stderr` (Python logging handlers that look it up at
    emit time, as Ray's do, and warnings) and file descriptor 2 (Ray's C++ logs, which
    write to it directly). The yielded stream still reaches the console: a duplicate of
    the original descriptor 2, or the Python-level stderr when that is not descriptor 2
    (under pytest's capsys). Ray's own progress bars are turned off: ours replace them.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    console = sys.stderr
    console.flush()
    saved = os.dup(2)
    env = os.environ.get("RAY_DATA_DISABLE_PROGRESS_BARS")
    with open(path, "a", buffering=1) as log:
        if _on_fd2(console):
            console = os.fdopen(os.dup(saved), "w", buffering=1)
        os.dup2(log.fileno(), 2)
        old, sys.stderr = sys.stderr, log
        os.environ["RAY_DATA_DISABLE_PROGRESS_BARS"] = "1"  # read when ray.data is imported
        try:
            yield console
        finally:
            sys.stderr = old
            os.dup2(saved, 2)
            os.close(saved)
            if console is not old:
                console.close()
            if env is None:
                os.environ.pop("RAY_DATA_DISABLE_PROGRESS_BARS", None)
            else:
                os.environ["RAY_DATA_DISABLE_PROGRESS_BARS"] = env


@contextlib.contextmanager
def stdin_from_devnull() -> Iterator[None]:
    """Processes started inside the block get /dev/null as stdin, not the person's terminal.

    A local Ray's daemons inherit the driver's stdin and hand it to every worker, and each
    worker is its own process group, in the terminal's background. A child that touches the
    terminal's modes (PySceneDetect probes with a bare `ffmpeg -v quiet`, which does) then
    gets SIGTTOU and stops its whole worker: a run started from a terminal hung for good.
    """
    try:
        saved: int | None = os.dup(0)
    except OSError:  # no stdin at all: nothing to keep
        saved = None
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    try:
        yield
    finally:
        if saved is not None:
            os.dup2(saved, 0)
            os.close(saved)


def is_terminal(stream: TextIO) -> bool:
    """True when `stream` is an interactive terminal (a live line), not a log or a pipe."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _ours(record: logging.LogRecord) -> bool:
    return record.name.split(".")[0] in OUR_LOGGERS


@contextlib.contextmanager
def _log_records(console: TextIO, level: int, verbose: bool) -> Iterator[None]:
    """Our loggers' records on the console; unless verbose, everyone else's to `sys.stderr`
    as it is now (the log file inside `libraries_to_file`), so a library's notice on a
    healthy run does not reach the person."""
    root, before = logging.getLogger(), logging.getLogger().level
    shown = logging.StreamHandler(console)
    shown.setLevel(level)
    handlers = [shown]
    if not verbose:
        shown.addFilter(_ours)
        rest = logging.StreamHandler(sys.stderr)
        rest.addFilter(lambda r: not _ours(r))
        handlers.append(rest)
    for h in handlers:
        h.setFormatter(logging.Formatter("%(message)s" if h is shown else _FILE_FORMAT))
        root.addHandler(h)
    root.setLevel(min(level, logging.INFO))
    try:
        yield
    finally:
        for h in handlers:
            h.flush()
            root.removeHandler(h)
        root.setLevel(before)


@contextlib.contextmanager
def curate_console(work: Path, verbose: bool, quiet: bool) -> Iterator[Progress]:
    """The console of one `clipmill curate` run: its `Progress` and logging.

    Unless `verbose`, what Ray and other libraries print goes to `work/curate.log`
    (appended, one header per run) and the person sees only our lines: on a terminal
    one live progress line, else one line per video. `quiet`: no per-video lines.
    """
    with contextlib.ExitStack() as stack:
        console = sys.stderr
        if not verbose:
            log = work / LOG_NAME
            console = stack.enter_context(libraries_to_file(log))
            print(f"=== clipmill curate, {time.strftime('%Y-%m-%d %H:%M:%S')} ===", file=sys.stderr)
        stack.enter_context(
            _log_records(console, logging.WARNING if quiet else logging.INFO, verbose)
        )
        if quiet:
            progress = Progress.lines(lambda _: None)
        else:
            progress = Progress(console, tty=is_terminal(console) and not verbose)
        try:
            yield progress
        finally:
            progress.finish()  # a run that raised mid-pass: its traceback starts on a new line
