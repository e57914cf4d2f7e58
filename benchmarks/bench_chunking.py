"""One long video on local Ray: encode units (`--transcode.chunk_s`) and analysis spans
(`--split.chunk_s`) on against off (issue 16.2).

    .venv/bin/python benchmarks/bench_chunking.py [--minutes 3] [--times 10] [--repeats 2]
    .venv/bin/python benchmarks/bench_chunking.py --in-process --times 1 --chunk-s 60
    .venv/bin/python benchmarks/bench_chunking.py --times 5 --split-chunk-s 300   # + spans

The input is `bench_curate`'s 720p synth of `--minutes`, concatenated `--times` times into
one file. Runs alternate (off, on, off, on, ...) so the machine's drift hits both; each row
is the median wall time, the whole machine's CPU use over the run from /proc/stat (run it on
a quiet box), and how many encode units and analysis spans ran on how many workers (the
staged record). "off" turns both off; "on" has encode units; with `--split-chunk-s`, a third
row "spans" has both. `--in-process` runs them one after the other: what they cost.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _measure import machine, run  # noqa: E402
from bench_curate import DATA, concat, curate_cmd, make_input  # noqa: E402


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def one_run(cmd: list[str], out: Path) -> tuple[float, float, list[dict], list[dict]]:
    """(wall s, CPU busy share of the machine, the video's encode units, its spans)."""
    shutil.rmtree(out, ignore_errors=True)
    busy0, total0 = cpu_jiffies()
    wall, _ = run(cmd)
    busy1, total1 = cpu_jiffies()
    units, spans = [], []
    for path in out.glob("work/videos/*/record.json"):
        record = json.loads(path.read_text())
        units += record.get("encode_units") or []
        spans += record.get("analysis_spans") or []
    return wall, (busy1 - busy0) / max(1, total1 - total0), units, spans


def _spread(parts: list[dict], whole: str) -> str:
    return f"{len(parts)} / {len({p['worker'] for p in parts})}" if parts else whole


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=3)
    ap.add_argument("--times", type=int, default=10, help="copies in the long file")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--chunk-s", default="120", help="--transcode.chunk_s of the 'on' runs")
    ap.add_argument("--split-chunk-s", default=None, help="--split.chunk_s of a 'spans' row")
    ap.add_argument("--in-process", action="store_true", help="--ray.address none")
    args = ap.parse_args()
    DATA.mkdir(exist_ok=True)
    src = concat(make_input(args.minutes), args.times)
    out = DATA / "chunk_out"
    runner = ["--ray.address", "none"] if args.in_process else []
    no_spans = ["--split.chunk_s", "null"]
    variants = {
        "off": [*runner, "--transcode.chunk_s", "null", *no_spans],
        "on": [*runner, "--transcode.chunk_s", args.chunk_s, *no_spans],
    }
    if args.split_chunk_s:
        spans = ["--split.chunk_s", args.split_chunk_s]
        variants["spans"] = [*runner, "--transcode.chunk_s", args.chunk_s, *spans]
    runs: dict[str, list[tuple[float, float, list[dict], list[dict]]]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, extra in variants.items():
            runs[name].append(one_run(curate_cmd(src, out, *extra), out))
            print(name, runs[name][-1][:2], flush=True)
    shutil.rmtree(out, ignore_errors=True)
    minutes = args.minutes * args.times
    where = "in-process" if args.in_process else "local Ray"
    print(f"machine: {machine()}; one {minutes:g}-min 720p file, {where}, chunk_s "
          f"{args.chunk_s}, split chunk_s {args.split_chunk_s}; median of {args.repeats}, "
          "alternating")  # fmt: skip
    print("| row | wall s | CPU busy | units / workers | spans / workers |")
    print("|---|---|---|---|---|")
    walls = {}
    for name, rs in runs.items():
        walls[name] = statistics.median(r[0] for r in rs)
        busy = statistics.median(r[1] for r in rs)
        units, spans = _spread(rs[-1][2], "1 encode"), _spread(rs[-1][3], "1 analysis")
        print(f"| {name} | {walls[name]:.1f} | {busy:.0%} | {units} | {spans} |")
    for name in walls:
        print(f"{name} / off wall: {walls[name] / walls['off']:.2f}")


if __name__ == "__main__":
    main()
