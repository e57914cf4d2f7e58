"""Seconds per training step of `make demo`'s recipe by how samples are made (issue 14).

    python benchmarks/bench_train_loader.py --demo /tmp/d48 [--steps 250] [--repeats 2]

Reuses a `clipmill demo` output folder's curated shards and trains the demo preset's row
(`pipeline.demo.rows`: tiny.yaml, the preset's flags) for `--steps` steps in a fresh process
per run, with the samples made three ways:

- `fresh`: one loader worker, a new worker every epoch (the loader before its workers were
  kept: each epoch's worker starts with an empty decode cache);
- `kept`: one loader worker kept for the whole run (its decode cache stays warm);
- `inproc`: no worker (`--data.num_workers 0`), samples made between steps.

Runs alternate (fresh, kept, inproc, fresh, ...) so the machine's drift hits all three. A
step's time is the wall time between the ends of training steps 20 and `--steps` (start-up,
the first epoch's fill of the shuffle buffer and model build left out), medians over repeats.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

import lightning as L  # noqa: E402
from _measure import machine  # noqa: E402

MODES = ("fresh", "kept", "inproc")
WARMUP = 20


class StepClock(L.Callback):
    """Writes the wall time at the end of every training step to $STEP_CLOCK (one per line)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_end(self, *args, **kwargs) -> None:
        self.times.append(time.perf_counter())

    def on_train_end(self, *args, **kwargs) -> None:
        Path(os.environ["STEP_CLOCK"]).write_text(json.dumps(self.times))


def child(demo: Path, steps: int, mode: str, run: Path) -> None:
    """One training run in this process (the bench calls itself with --child)."""
    from pipeline.demo.presets import PRESETS
    from pipeline.demo.rows import fit_argv
    from train.cli import train_main
    from train.data import loaders

    preset = dataclasses.replace(PRESETS["default"], steps=steps)
    if mode == "fresh":  # the old loader: a DataLoader, and fresh workers, every epoch
        made = loaders.VideoLoader._epoch_loader

        def fresh(self, epoch):
            self._loader = None
            return made(self, epoch)

        loaders.VideoLoader._epoch_loader = fresh
    workers = "0" if mode == "inproc" else "1"
    shards = ["--data.shards", str(demo / "curated" / "shards" / "*.tar")]
    argv = fit_argv(run, shards, preset)
    argv += ["--data.num_workers", workers, "--trainer.callbacks+=bench_train_loader.StepClock"]
    sys.exit(train_main(argv))


def one_run(demo: Path, steps: int, mode: str, scratch: Path) -> float:
    """Seconds per step after the warm-up, from a fresh process."""
    clock = scratch / f"clock_{mode}.json"
    env = {**os.environ, "STEP_CLOCK": str(clock), "PYTHONPATH": str(Path(__file__).parent)}
    cmd = [sys.executable, __file__, "--child", mode, "--demo", str(demo), "--steps", str(steps),
           "--scratch", str(scratch)]  # fmt: skip
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times = json.loads(clock.read_text())
    return (times[-1] - times[WARMUP - 1]) / (len(times) - WARMUP)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demo", type=Path, required=True, help="a `clipmill demo` output folder")
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/bench_train_loader"))
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.demo, args.steps, args.child, args.scratch / f"run_{args.child}")
    args.scratch.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    seconds: dict[str, list[float]] = {m: [] for m in MODES}
    for _ in range(args.repeats):
        for mode in MODES:
            seconds[mode].append(one_run(args.demo, args.steps, mode, args.scratch))
            print(f"  {mode}: {seconds[mode][-1]:.3f} s/step", flush=True)
    base = statistics.median(seconds["fresh"])
    print("| samples made | s/step (runs) | vs fresh |\n|---|---|---|")
    for mode in MODES:
        med = statistics.median(seconds[mode])
        runs = ", ".join(f"{s:.3f}" for s in seconds[mode])
        print(f"| {mode} | **{med:.3f}** ({runs}) | {med / base:.2f}× |")


if __name__ == "__main__":
    main()
