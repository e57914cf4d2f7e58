"""Cost of the clip-analysis stages (issue: filters, CLIP, dedup).

    .venv/bin/python benchmarks/bench_filters.py [--repeats 3] [--minutes 3]

1. Per-stage cost in ms per clip, each stage called directly (in this process) on the
   staged clips of one video: the split's low-res scorers, the shared frame decode, OCR,
   CLIP (tiny model), the thumbnail, and the pack-time decisions.
2. `clipmill curate` wall time with every CPU filter on vs all of them off, on the same
   input, in-process (`--ray.address none`) and on local Ray; then with CLIP too.
The input is bench_curate's (`clipmill synth`, 1280x720, many cuts) under benchmarks/data/.
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

sys.path.insert(0, str(Path(__file__).parent))
from _measure import machine, run  # noqa: E402
from bench_curate import DATA, curate_cmd, make_input  # noqa: E402

OFF = [
    "--filters.motion.enabled", "false", "--filters.blank.enabled", "false",
    "--filters.blur.enabled", "false", "--filters.text.enabled", "false",
    "--clip.enabled", "false", "--dedup.perceptual", "false",
]  # fmt: skip
CPU_ON = ["--clip.enabled", "false"]


def _timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def per_stage(src: Path) -> list[tuple[str, float, str]]:
    """ms per clip of each stage on one staged video (split + transcode run first)."""
    from pipeline.config.curate import build_config
    from pipeline.pack.decide import decide
    from pipeline.stages.base import scoreable
    from pipeline.stages.clip_embed import ClipStage
    from pipeline.stages.frames import decode_positions, frame_counts, remove_caches
    from pipeline.stages.motion import MotionStage
    from pipeline.stages.phash import PerceptualHashStage
    from pipeline.stages.probe import probe_video
    from pipeline.stages.technical import TechnicalStage
    from pipeline.stages.text_overlay import TextStage
    from pipeline.staging import SplitStage, TranscodeStage

    cfg = build_config({"ray": {"address": "none"}, "clip": {"enabled": True}})
    work = Path(tempfile.mkdtemp(prefix="bench_filters_"))
    row = {"video": json.dumps(probe_video({"path": str(src)}))}
    row, t_split = _timed(SplitStage(cfg.split, str(work)), row)
    row, t_trans = _timed(TranscodeStage(cfg.transcode), row)
    video = json.loads(row["video"])
    folder, clips = Path(video["stage_dir"]), scoreable(video)
    n = len(clips)
    rows = [
        ("backbone split (one low-res decode + detection), whole video", t_split / n * 1e3, ""),
        ("backbone transcode (one ffmpeg pass), whole video", t_trans / n * 1e3, ""),
    ]
    for name, cls in (
        ("motion (Farneback on the split's samples)", MotionStage),
        ("blank + blur (per-frame stats)", TechnicalStage),
        ("perceptual hashes", PerceptualHashStage),
    ):
        stage = cls(cfg)
        _, t = _timed(stage, row)
        rows.append((name, t / n * 1e3, ""))
    counts = frame_counts(cfg)
    _, t = _timed(lambda: [decode_positions(folder / f"{c['clip_id']}.mp4", counts) for c in clips])
    rows.append((f"frame decode for OCR+CLIP+thumbnail ({len(counts)} consumers)", t / n * 1e3, ""))
    for name, cls in (
        ("text OCR (rapidocr, 1 frame)", TextStage),
        ("CLIP tiny (4 frames)", ClipStage),
    ):
        stage, t_load = _timed(cls, cfg)
        stage(row)  # decodes the frames into the cache (as the first consumer does)
        _, t = _timed(stage, row)  # frames cached: the stage's own cost
        rows.append((name, t / n * 1e3, f"model load {t_load:.2f} s"))
    video = json.loads(row["video"])
    remove_caches(folder)
    records = [
        dict(c, video_id=video["video_id"], scene_index=c["scene_index"], kept=True)
        for c in video["clips"]
    ]
    _, t = _timed(decide, records, cfg, {})
    rows.append(("pack-time decisions (thresholds, dedup, weights, what-if)", t / n * 1e3, ""))
    shutil.rmtree(work, ignore_errors=True)
    print(f"{n} scoreable clips in {src.name}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=3)
    ap.add_argument("--skip-ray", action="store_true")
    args = ap.parse_args()
    DATA.mkdir(exist_ok=True)
    src = make_input(args.minutes)
    stage_rows = per_stage(src)
    print("| stage | ms per clip | note |\n|---|---|---|")
    for name, value, note in stage_rows:
        print(f"| {name} | {value:.1f} | {note} |", flush=True)
    out = DATA / "out_filters"
    variants = {"off": OFF, "cpu": CPU_ON, "all": ["--clip.enabled", "true"]}
    modes = {"--ray.address none": ["--ray.address", "none"]}
    if not args.skip_ray:
        modes["local Ray"] = []
    walls: dict[tuple[str, str], list[float]] = {}
    # Interleaved (off, on, all, off, …) so a change in the machine's load hits all alike.
    for _ in range(args.repeats):
        for label, extra in modes.items():
            for name, flags in variants.items():
                shutil.rmtree(out, ignore_errors=True)
                wall, _ = run(curate_cmd(src, out, *extra, *flags))
                walls.setdefault((label, name), []).append(wall)
                print(f"  {label} {name}: {wall:.1f} s", flush=True)
    runs: list[tuple[str, float, str]] = []
    for label in modes:
        off, on, both = (statistics.median(walls[(label, n)]) for n in variants)
        runs += [
            (f"curate, every filter off ({label})", off, "backbone"),
            (f"curate, CPU filters on ({label})", on, f"{on / off:.2f}x backbone"),
            (f"curate, CPU filters + CLIP tiny ({label})", both, f"{both / off:.2f}x backbone"),
        ]
    shutil.rmtree(out, ignore_errors=True)
    print(f"machine: {machine()}; median of {args.repeats}")
    print("\n| run | wall s | note |\n|---|---|---|")
    for name, value, note in runs:
        print(f"| {name} | {value:.2f} | {note} |")


if __name__ == "__main__":
    main()
