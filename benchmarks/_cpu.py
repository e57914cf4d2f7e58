"""CPU seconds of one command, split by the kind of process that spent them.

A run's wall time says that local Ray is slower; this says where its extra CPU goes on a
machine whose cores are all busy (where CPU is wall): ffmpeg, the driver, the stage workers,
Ray Data's own actors, Ray's daemons. The command's process tree is polled every
`interval` s and each process keeps the CPU it had when last seen; the machine's busy time
(/proc/stat, less this poller's own) is the total, so what processes too short-lived to be
seen spent (a preview's ffmpeg, a probe) is the `unseen` row. Run it on a quiet machine:
anything else running lands in `unseen` too. Linux only.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from pathlib import Path

from _measure import tree

TICK = os.sysconf("SC_CLK_TCK")
# Ray's processes by their 15-character `comm` (a worker takes its actor's or task's name).
RAY_DATA_ACTORS = ("ray::_StatsActo", "ray::_Autoscali", "ray::ActorLocat")
RAY_AGENTS = ("ray::DashboardA", "ray::RuntimeEnv")
DAEMON_CMDS = ("gcs_server", "raylet", "ray/dashboard/", "ray/autoscaler/", "log_monitor.py")
KINDS = (
    "ffmpeg",
    "driver (Python)",
    "Ray stage workers",
    "Ray Data's own actors",
    "Ray's daemons",
    "other",
    "unseen",
)


def kind(pid: int, root: int, comm: str, cmdline: str) -> str:
    """Which of KINDS a process belongs to."""
    if comm.startswith("ffmpeg") or "ffmpeg" in cmdline.split(" ", 1)[0]:
        return "ffmpeg"
    if pid == root:
        return "driver (Python)"
    if comm in RAY_DATA_ACTORS:
        return "Ray Data's own actors"
    if comm in RAY_AGENTS or any(d in cmdline for d in DAEMON_CMDS):
        return "Ray's daemons"
    if comm.startswith("ray::") or "default_worker.py" in cmdline:
        return "Ray stage workers"
    return "other"


def _busy_s() -> float:
    """The machine's busy CPU seconds since boot: user, nice, system, irq, softirq, steal."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return sum(int(fields[i]) for i in (0, 1, 2, 5, 6, 7)) / TICK


def _sample(root: int, seen: dict[tuple[int, int], tuple[float, str]]) -> None:
    """Record every live process of the tree under `root`: (pid, start tick) -> (CPU s, kind)."""
    for pid in tree(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            continue  # it exited while it was read
        comm, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
        f = rest.split()
        cpu = (int(f[11]) + int(f[12])) / TICK  # utime + stime (fields 14, 15 of stat)
        key = (pid, int(f[19]))
        # A process that has exited but is not yet reaped has no cmdline: keep its kind.
        seen[key] = (cpu, seen[key][1] if key in seen and not cmd else kind(pid, root, comm, cmd))


def run_cpu(cmd: list[str], interval: float = 0.1) -> tuple[float, dict[str, float]]:
    """(wall seconds, CPU seconds per kind of process, `unseen` included) of one command."""
    seen: dict[tuple[int, int], tuple[float, str]] = {}
    me = resource.getrusage(resource.RUSAGE_SELF)
    busy0, t0 = _busy_s(), time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while proc.poll() is None:
        _sample(proc.pid, seen)
        time.sleep(interval)
    wall, busy = time.perf_counter() - t0, _busy_s() - busy0
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {proc.stderr.read().decode()[-500:]}")
    after = resource.getrusage(resource.RUSAGE_SELF)
    busy -= (after.ru_utime + after.ru_stime) - (me.ru_utime + me.ru_stime)  # the poller
    out = dict.fromkeys(KINDS, 0.0)
    for cpu, k in seen.values():
        out[k] += cpu
    out["unseen"] = max(0.0, busy - sum(out.values()))
    return wall, out
