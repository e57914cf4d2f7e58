"""Shared helpers for the benchmark scripts: timing, peak RSS of a process tree."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path


def machine() -> str:
    """One line naming the box a figure came from: CPU model, cores, Python, 1-min load."""
    cpu = platform.processor() or platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, load {load:.1f}"


def _children(pid: int) -> list[int]:
    out = []
    try:  # the process may exit while it is read: then it has no children left
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def tree(pid: int) -> Iterator[int]:
    """A process and all its descendants (Ray workers included), each read as it is reached:
    one that exits on the way is still yielded, and its children are then none."""
    stack = [pid]
    while stack:
        p = stack.pop()
        yield p
        stack += _children(p)


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, MB."""
    total = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def run(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, peak tree RSS MB) of one command, polled every 50 ms."""
    peak = 0.0
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    done = threading.Event()

    def poll() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_mb(proc.pid))
            time.sleep(0.05)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    t.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {err.decode()[-500:]}")
    return wall, peak


def run_all(cmds: list[list[str]], env: dict | None = None) -> tuple[float, float]:
    """(summed wall seconds, largest peak tree RSS MB) of commands run one after another,
    as a user runs one command per file in a loop."""
    results = [run(cmd, env) for cmd in cmds]
    return sum(w for w, _ in results), max(p for _, p in results)


def median_run(cmd: list[str], repeats: int, before=None, env=None) -> tuple[float, float]:
    return median_runs([cmd], repeats, before, env)


def median_runs(cmds: list[list[str]], repeats: int, before=None, env=None) -> tuple[float, float]:
    """(median wall, max peak RSS) of `repeats` runs of `run_all(cmds)`, `before` before each."""
    walls, peaks = [], []
    for _ in range(repeats):
        if before:
            before()
        w, p = run_all(cmds, env)
        walls.append(w)
        peaks.append(p)
    return statistics.median(walls), max(peaks)
