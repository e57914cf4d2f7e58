"""Where `clipmill curate`'s time goes on one video: ffmpeg floors, then each stage alone.

    .venv/bin/python benchmarks/bench_curate_breakdown.py [--minutes 3] [--repeats 3] [--input F]

Rows (medians of --repeats):
- ffmpeg alone: decode; decode + scale to 360p; decode + scale + x264 (the issue's floor); the
  analysis decode as the split stage runs it (skip_loop_filter, area-scaled to the analysis
  width, RGB into Python), consumed and discarded;
- each curate stage on the same video, in this process, in pipeline order (probe, split,
  transcode, the scorers, finalize), with the default config: the stage list is the driver's;
- the whole `clipmill curate` in-process and on local Ray, so the remainder (start-up, imports,
  pack, report, Ray's scheduling) is the difference.
The input defaults to `bench_curate.py`'s 720p synth file (made on first use).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import machine, median_run  # noqa: E402
from bench_curate import BIN, DATA, floor_cmd, make_input  # noqa: E402

from pipeline.config.curate import build_config  # noqa: E402
from pipeline.driver import _discover, video_stages  # noqa: E402
from pipeline.stages.lowres import decode_lowres  # noqa: E402
from pipeline.stages.probe import probe_video  # noqa: E402
from pipeline.stages.split import analysis_size  # noqa: E402
from schemas.layout import work_dir  # noqa: E402


def ffmpeg_rows(src: Path, repeats: int) -> list[tuple[str, float]]:
    """Wall seconds of ffmpeg alone: decode, + scale, + x264 (the floor's own command)."""
    cmds = {
        "ffmpeg decode only": floor_cmd(src, scale=False, encode=False),
        "ffmpeg decode + scale 360p": floor_cmd(src, encode=False),
        "ffmpeg decode + scale + x264 (the floor)": floor_cmd(src),
    }
    return [(name, median_run(cmd, repeats)[0]) for name, cmd in cmds.items()]


def analysis_decode(src: Path, video: dict, width: int) -> float:
    """Seconds to pull every analysis frame into Python, as the split stage decodes them."""
    w, h = analysis_size(video["width"], video["height"], width)
    start = time.perf_counter()
    for _ in decode_lowres(str(src), w, h, []):
        pass
    return time.perf_counter() - start


def stage_rows(src: Path, repeats: int) -> list[tuple[str, float]]:
    """Each stage of the default config on `src`, in order, in this process (one encode
    for the video: the encode units of a long one would be rows of their own)."""
    cfg = build_config({"transcode": {"chunk_s": None}})
    times: dict[str, list[float]] = {}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            work = work_dir(out)
            (row,) = _discover([str(src)], out)
            t0 = time.perf_counter()
            video = probe_video(row)
            times.setdefault("stage probe", []).append(time.perf_counter() - t0)
            decode = analysis_decode(src, video, cfg.split.analysis_width)
            times.setdefault("analysis decode alone (inside split)", []).append(decode)
            item = {"video": json.dumps(video)}
            for cls, args, _ in video_stages(cfg, work):
                stage = cls(*args)  # built outside the clock: a Ray actor builds it once
                t0 = time.perf_counter()
                item = stage(item)
                times.setdefault(f"stage {cls.__name__}", []).append(time.perf_counter() - t0)
    return [(name, statistics.median(v)) for name, v in times.items()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--input", type=Path, help="a video (default: the 720p synth file)")
    args = ap.parse_args()
    DATA.mkdir(exist_ok=True)
    src = args.input or make_input(args.minutes)
    rows = ffmpeg_rows(src, args.repeats) + stage_rows(src, args.repeats)
    out = DATA / "breakdown_out"
    clean = lambda: shutil.rmtree(out, ignore_errors=True)  # noqa: E731
    curate = [str(BIN / "clipmill"), "curate", str(src), "--output", str(out), "--quiet"]
    rows.append(("clipmill curate, in-process", median_run([*curate, "--ray.address", "none"],
                                                           args.repeats, clean)[0]))  # fmt: skip
    rows.append(("clipmill curate, local Ray", median_run(curate, args.repeats, clean)[0]))
    clean()
    floor = dict(rows)["ffmpeg decode + scale + x264 (the floor)"]
    print(f"machine: {machine()}; input {src.name}; median of {args.repeats}")
    print("| what | seconds | × floor |\n|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {seconds / floor:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
