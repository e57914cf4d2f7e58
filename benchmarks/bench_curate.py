"""Curation speed and memory (issue: curation backbone; --gpu: curation at the speed limit).

    .venv/bin/python benchmarks/bench_curate.py [--repeats 3] [--minutes 3] [--long-minutes 30]
    .venv/bin/python benchmarks/bench_curate.py --files 6 --minutes 10 --parts speed  # an hour
    .venv/bin/python benchmarks/bench_curate.py --gpu [--minutes 2] [--json PATH]

1. curate (360p output) vs the floor: one ffmpeg decode+scale+encode with the same settings
   (per file, one after another, as a user would run it; `--files N` curates a folder of N).
2. curate at source resolution vs `scenedetect -i IN detect-adaptive split-video`.
3. peak RSS of curate on a short and a long input (the long one is the short one concatenated).
4. (`--parts cpu`) CPU seconds of the floor, curate in-process and on local Ray, split by the
   kind of process that spent them (`_cpu.py`): where local Ray's extra time goes.
--gpu instead: footage-hours per GPU-hour of split (TransNetV2), encode (NVENC, NVDEC) and CLIP
on one GPU, against the CPU path on the same footage (`_curate_gpu.py`); without a GPU every
row says "not measured" and why, and the script exits 0.
Inputs are made with `clipmill synth` (1280x720, many cuts) under benchmarks/data/ (ignored by git).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _cpu import KINDS, run_cpu  # noqa: E402
from _measure import machine, median_run, median_runs, run_all  # noqa: E402

from pipeline.ffmpeg import ffmpeg_exe, run_ffmpeg  # noqa: E402

DATA = Path(__file__).parent / "data"
BIN = Path(sys.executable).parent
OUT = DATA / "out"  # every curate run writes here, emptied before each
PARTS = {"speed", "source", "rss", "cpu"}


def clean_out() -> None:
    shutil.rmtree(OUT, ignore_errors=True)


def synth(raw: Path, videos: int, seed: int, minutes: float) -> None:
    """`clipmill synth` of `videos` 1280x720 videos of `minutes` each into `raw`."""
    import subprocess

    # `-m pipeline.cli`, not the `clipmill` script: a GPU machine may run a plain python3.
    subprocess.run([sys.executable, "-m", "pipeline.cli", "synth", "--output", str(raw),
                    "--videos", str(videos), "--seed", str(seed), "--width", "1280",
                    "--height", "720", "--duration-s", str(minutes * 60)], check=True)  # fmt: skip


def make_input(minutes: float) -> Path:
    path = DATA / f"synth_720p_{minutes:g}min.mp4"
    if path.exists():
        return path
    raw = DATA / f"raw_{minutes:g}"
    synth(raw, 1, 0, minutes)
    shutil.move(raw / "video_000.mp4", path)
    shutil.rmtree(raw)
    return path


def concat(src: Path, times: int, path: Path | None = None) -> Path:
    """A long input made of `times` copies of src (stream copy: seconds, not minutes), at
    `path` (default: DATA/<stem>_x<times>.mp4, kept for the next run)."""
    path = path or DATA / f"{src.stem}_x{times}.mp4"
    if times == 1:
        return src
    if not path.exists():
        listing = DATA / "concat.txt"
        listing.write_text("".join(f"file '{src.resolve()}'\n" for _ in range(times)))
        run_ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(path)])
        listing.unlink()
    return path


def make_inputs(files: int, minutes: float) -> Path:
    """A folder of `files` distinct 720p synth videos of `minutes` each: at most 2 minutes of
    each is filmed (seeds differ per video), then stream-copied end to end up to `minutes`."""
    folder = DATA / f"synth_720p_{files}x{minutes:g}min"
    if folder.exists():
        return folder
    filmed = min(minutes, 2.0)
    raw = DATA / f"raw_{files}x{filmed:g}"
    if not raw.exists():
        synth(raw, files, 1, filmed)
    tmp = folder.with_suffix(".partial")
    shutil.rmtree(tmp, ignore_errors=True)  # an interrupted run's files may be cut short
    tmp.mkdir(parents=True)
    for video in sorted(raw.glob("*.mp4")):
        if concat(video, max(1, round(minutes / filmed)), tmp / video.name) == video:
            shutil.copy(video, tmp / video.name)
    tmp.rename(folder)
    return folder


def floor_cmd(src: Path, scale: bool = True, encode: bool = True) -> list[str]:
    """The floor: `ffmpeg -threads 2 -i IN -vf scale=-2:360 -an -c:v libx264 -preset
    veryfast -crf 23 -f null -`, as a user would run it; without `encode` (and `scale`),
    the decode-only parts of it."""
    cmd = [ffmpeg_exe(), "-v", "error", "-y", "-threads", "2", "-i", str(src), "-an"]
    cmd += ["-vf", "scale=-2:360"] if scale else []
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23"] if encode else []
    return [*cmd, "-f", "null", "-"]


def curate_cmd(src: Path, out: Path, *extra: str) -> list[str]:
    return [str(BIN / "clipmill"), "curate", str(src), "--output", str(out), "--quiet", *extra]


def gpu_main(args: argparse.Namespace) -> None:
    """The --gpu table: every row measured here, or "not measured" with its reason."""
    from _curate_gpu import report, run_gpu_bench

    device, rows = run_gpu_bench(lambda: make_input(args.minutes), DATA / "gpu_work", args.repeats)
    print(f"median of {args.repeats}; footage {args.minutes:g} min of synthetic 720p")
    print(report(device, machine(), rows, Path(args.json)))


def contenders(inputs: list[Path], target: Path) -> dict[str, list[list[str]]]:
    """The commands parts 1 and 4 compare: the floor (one ffmpeg per file, one after
    another, as a user would loop over files), curate on local Ray and in-process."""
    return {
        "floor": [floor_cmd(src) for src in inputs],
        "local Ray": [curate_cmd(target, OUT)],
        "in-process": [curate_cmd(target, OUT, "--ray.address", "none")],
    }


def speed_rows(inputs: list[Path], target: Path, repeats: int) -> list[tuple[str, float, str]]:
    """Part 1: the contenders' wall times; the three alternate, so the machine's drift falls
    on all of them."""
    runs = contenders(inputs, target)
    walls: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, cmds in runs.items():
            clean_out()
            walls[name].append(run_all(cmds)[0])
    print("runs (s):", {name: [round(w, 2) for w in ws] for name, ws in walls.items()})
    t_floor, t_ray, t_local = (statistics.median(walls[name]) for name in runs)
    clean_out()
    return [
        ("ffmpeg floor (decode+scale 360p+x264 veryfast crf23)", t_floor, ""),
        ("clipmill curate, local Ray", t_ray, f"{t_ray / t_floor:.2f}x floor"),
        ("clipmill curate, --ray.address none", t_local, f"{t_local / t_floor:.2f}x floor"),
    ]


def source_rows(inputs: list[Path], target: Path, repeats: int) -> list[tuple[str, float, str]]:
    """Part 2: curate at source resolution vs PySceneDetect's CLI, one run per file (it
    needs an `ffmpeg` on PATH for split-video)."""
    shim = DATA / "bin"
    shim.mkdir(exist_ok=True)
    if not (shim / "ffmpeg").exists():
        os.symlink(ffmpeg_exe(), shim / "ffmpeg")
    env = {"PATH": f"{shim}:{os.environ['PATH']}"}
    sd_out = DATA / "sd_out"
    sd = [[str(BIN / "scenedetect"), "-q", "-i", str(src), "-o", str(sd_out), "detect-adaptive",
           "split-video"] for src in inputs]  # fmt: skip
    t_sd, _ = median_runs(sd, repeats, lambda: shutil.rmtree(sd_out, ignore_errors=True), env)
    at_source = ["--transcode.short_side", "null", "--split.detector", "adaptive"]
    t_src, _ = median_run(curate_cmd(target, OUT, *at_source), repeats, clean_out)
    in_process = curate_cmd(target, OUT, *at_source, "--ray.address", "none")
    t_one, _ = median_run(in_process, repeats, clean_out)
    clean_out()
    return [
        ("scenedetect detect-adaptive split-video", t_sd, ""),
        ("clipmill curate at source res, adaptive", t_src, f"{t_sd / t_src:.2f}x faster"),
        ("the same, --ray.address none", t_one, f"{t_sd / t_one:.2f}x faster"),
    ]


def cpu_rows(inputs: list[Path], target: Path, repeats: int) -> list[tuple[str, float, str]]:
    """Part 4: the contenders' CPU seconds by kind of process (medians per kind), the three
    runs alternating."""
    runs = contenders(inputs, target)
    got: dict[str, list[tuple[float, dict[str, float]]]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, cmds in runs.items():
            clean_out()
            each = [run_cpu(cmd) for cmd in cmds]
            kinds = {k: sum(c[k] for _, c in each) for k in KINDS}
            got[name].append((sum(w for w, _ in each), kinds))
    clean_out()
    rows = []
    for name, results in got.items():
        wall = statistics.median(w for w, _ in results)
        total = statistics.median(sum(c.values()) for _, c in results)
        rows.append((f"{name}: wall", wall, f"runs {[round(w, 2) for w, _ in results]}"))
        rows.append((f"{name}: CPU, all", total, "CPU s (the machine's busy time)"))
        for k in KINDS:
            cpu = statistics.median(c[k] for _, c in results)
            rows += [(f"{name}: CPU, {k}", cpu, "CPU s")] if cpu >= 0.05 else []
    return rows


def rss_rows(src: Path, minutes: float, long_minutes: float) -> list[tuple[str, float, str]]:
    """Part 3: in-process peak RSS on a short and a long input (copies of the short one)."""
    long_src = concat(src, max(1, round(long_minutes / minutes)))
    _, rss_short = median_run(curate_cmd(src, OUT, "--ray.address", "none"), 1, clean_out)
    _, rss_long = median_run(curate_cmd(long_src, OUT, "--ray.address", "none"), 1, clean_out)
    _, rss_ray = median_run(curate_cmd(src, OUT), 1, clean_out)
    clean_out()
    return [
        (f"peak RSS, {minutes:g}-min input (in-process)", rss_short, "MB"),
        (f"peak RSS, {long_minutes:g}-min input (in-process)", rss_long,
         f"MB ({rss_long / rss_short:.2f}x)"),
        (f"peak RSS, {minutes:g}-min input, local Ray (all processes)", rss_ray, "MB"),
    ]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=3, help="length of each input file")
    ap.add_argument(
        "--files",
        type=int,
        default=1,
        help="inputs: this many distinct synth videos (curate gets their folder)",
    )
    ap.add_argument("--long-minutes", type=float, default=30)
    ap.add_argument(
        "--parts",
        default="speed,source,rss",
        help="which tables: speed (vs the floor), source (vs scenedetect), rss, cpu",
    )
    ap.add_argument("--gpu", action="store_true", help="GPU vs CPU rates of the GPU-able stages")
    ap.add_argument("--json", default=str(DATA / "bench_curate_gpu.json"), help="--gpu's JSON")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    if parts - PARTS:
        ap.error(f"--parts: unknown {sorted(parts - PARTS)}")
    DATA.mkdir(exist_ok=True)
    if args.gpu:
        gpu_main(args)
        return
    if args.files > 1:
        target = make_inputs(args.files, args.minutes)
        inputs = sorted(target.glob("*.mp4"))
    else:
        target = make_input(args.minutes)
        inputs = [target]
    rows = []
    rows += speed_rows(inputs, target, args.repeats) if "speed" in parts else []
    rows += source_rows(inputs, target, args.repeats) if "source" in parts else []
    rows += rss_rows(inputs[0], args.minutes, args.long_minutes) if "rss" in parts else []
    rows += cpu_rows(inputs, target, args.repeats) if "cpu" in parts else []
    footage = f"{len(inputs)} file(s) of {args.minutes:g} min of synthetic 720p"
    print(f"machine: {machine()}; median of {args.repeats}; {footage}")
    print("| what | value | note |\n|---|---|---|")
    for name, value, note in rows:
        print(f"| {name} | {value:.2f} | {note} |")


if __name__ == "__main__":
    main()
