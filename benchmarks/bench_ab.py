"""Paired A/B of `clipmill curate` between two checkouts: which change made it faster.

    .venv/bin/python benchmarks/bench_ab.py --old /tmp/old --new . --repeats 3 \\
        [--input benchmarks/data/synth_720p_3min.mp4 or a folder] -- --ray.address none [more flags]

Each checkout runs as `python -m pipeline.cli curate INPUT --output TMP FLAGS` with the
checkout as its working directory (so its own `pipeline` package is the one imported; the
venv's packages are shared), into a fresh output folder each time. Runs alternate old, new,
old, new, ... so drift in the machine's load falls on both. Reported per side: the median
wall seconds and the median CPU seconds (user + system of the process and its children,
ffmpeg included), and new/old of both medians.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_curate import DATA  # noqa: E402

DEFAULT_INPUT = DATA / "synth_720p_3min.mp4"


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_once(checkout: Path, src: Path, flags: list[str]) -> tuple[float, float]:
    """(wall s, CPU s) of one curate run of `checkout` on `src`."""
    out = Path(tempfile.mkdtemp(prefix="ab_"))
    cmd = [sys.executable, "-m", "pipeline.cli", "curate", str(src), "--output", str(out)]
    try:
        cpu0, t0 = _cpu(), time.perf_counter()
        subprocess.run([*cmd, *flags], cwd=checkout, check=True, capture_output=True)
        return time.perf_counter() - t0, _cpu() - cpu0
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", type=Path, required=True, help="checkout A (the baseline)")
    ap.add_argument("--new", type=Path, required=True, help="checkout B")
    ap.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("flags", nargs="*", help="curate flags, after --")
    args = ap.parse_args()
    if not args.input.exists():
        ap.error(f"--input: no such file or folder {args.input} (bench_curate.py makes one)")
    runs: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
    for _ in range(args.repeats):
        for side in ("old", "new"):
            runs[side].append(run_once(getattr(args, side).resolve(), args.input, args.flags))
            print(side, f"{runs[side][-1][0]:.2f} s wall, {runs[side][-1][1]:.2f} s CPU")
    med = {k: [statistics.median(x[i] for x in v) for i in (0, 1)] for k, v in runs.items()}
    print(f"flags: {' '.join(args.flags) or '(defaults)'}; input {args.input.name}")
    for side in ("old", "new"):
        walls = ", ".join(f"{w:.2f}" for w, _ in runs[side])
        print(f"{side}: wall {med[side][0]:.2f} s ({walls}), CPU {med[side][1]:.2f} s")
    wall, cpu = (med["new"][i] / med["old"][i] for i in (0, 1))
    print(f"new/old: wall {wall:.2f}, CPU {cpu:.2f}")


if __name__ == "__main__":
    main()
