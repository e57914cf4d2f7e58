"""Sizing per stage: CPU seconds per input minute and peak memory (README "Running at scale").

    .venv/bin/python benchmarks/bench_stage_sizing.py [--minutes 1] [--width 1280 --height 720]
        [--input VIDEO] [--set '{"split": {"detector": "transnetv2"}}'] [--stop-after split]

Each stage runs alone in a fresh Python process on the previous stage's output row (the
staging folder stays on disk between them), as one Ray worker would run it. Reported per
stage: CPU seconds (user + system, ffmpeg children included) to build it (model load) and
to process the video, and the process's peak RSS (VmHWM: imports, model and work) and its
largest child's (ffmpeg; an upper bound: a forked child starts with the parent's pages).
CPU time,
not wall time, because this machine's 2 cores are shared: CPU seconds say how many cores a
stage needs per minute of input whatever the load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

STAGES = ("probe", "split", "transcode", "motion", "technical", "phash", "text", "clip")
STAGES += ("caption", "finalize")

CHILD = """
import json, os, sys
from pathlib import Path
from pipeline.config.curate import build_config
from pipeline.staging import fingerprint, score_fingerprint

name, row_in, row_out, work = sys.argv[1:5]
values = {"ray": {"address": "none"}, "clip": {"enabled": True}}
for section, fields in json.loads(os.environ.get("SIZING_SET", "{}")).items():
    values[section] = {**values.get(section, {}), **fields}
cfg = build_config(values)

def make():
    if name == "probe":
        from pipeline.stages.probe import probe_video
        return lambda row: {"video": json.dumps(probe_video(row))}
    if name == "split":
        from pipeline.staging import SplitStage
        return SplitStage(cfg.split, work)
    if name == "transcode":
        from pipeline.staging import TranscodeStage
        return TranscodeStage(cfg.transcode)
    if name == "motion":
        from pipeline.stages.motion import MotionStage
        return MotionStage(cfg)
    if name == "technical":
        from pipeline.stages.technical import TechnicalStage
        return TechnicalStage(cfg)
    if name == "phash":
        from pipeline.stages.phash import PerceptualHashStage
        return PerceptualHashStage(cfg)
    if name == "text":
        from pipeline.stages.text_overlay import TextStage
        return TextStage(cfg)
    if name == "clip":
        from pipeline.stages.clip_embed import ClipStage
        return ClipStage(cfg)
    if name == "caption":
        from pipeline.captions.stage import CaptionStage
        return CaptionStage(cfg.caption, cfg.clip)
    from pipeline.staging import FinalizeStage
    return FinalizeStage(fingerprint(cfg), score_fingerprint(cfg), True)

def cpu():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system

row = json.loads(Path(row_in).read_text())
t0 = cpu()
stage = make()
t1 = cpu()
out = stage(row)
t2 = cpu()
Path(row_out).write_text(json.dumps(out))
status = Path("/proc/self/status").read_text()
hwm = int(next(l.split()[1] for l in status.splitlines() if l.startswith("VmHWM")))
import resource
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB; 0 without children
print(json.dumps({"stage": name, "init_cpu_s": t1 - t0, "run_cpu_s": t2 - t1,
                  "peak_rss_mb": hwm / 1024, "child_peak_mb": kids / 1024}))
"""


def _input(minutes: float, width: int, height: int, folder: Path) -> Path:
    from pipeline.synthetic.synth import synthesize

    synthesize(folder, 1, seed=0, width=width, height=height, duration_s=60 * minutes)
    return folder / "video_000.mp4"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--input", help="an existing video instead of synthetic footage")
    ap.add_argument("--set", default="{}", help="JSON config overrides, by section")
    ap.add_argument("--stop-after", choices=STAGES, default=STAGES[-1])
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_sizing_"))
    src = Path(args.input) if args.input else _input(args.minutes, args.width, args.height, tmp)
    row = tmp / "row_0.json"
    row.write_text(json.dumps({"path": str(src)}))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
    }
    env["SIZING_SET"] = args.set
    results = []
    for i, name in enumerate(STAGES[: STAGES.index(args.stop_after) + 1]):
        nxt = tmp / f"row_{i + 1}.json"
        cmd = [sys.executable, "-c", CHILD, name, str(row), str(nxt), str(tmp / "work")]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"{name} failed: {proc.stderr[-2000:]}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        row = nxt
    video = json.loads(json.loads((tmp / "row_1.json").read_text())["video"])
    minutes = video["duration_s"] / 60
    print(f"input: {src} ({video['duration_s']:.1f} s), config overrides {args.set}")
    print("| stage | model/init CPU s | CPU s per input minute | peak RSS MB | ffmpeg peak MB |")
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['stage']} | {r['init_cpu_s']:.2f} | {r['run_cpu_s'] / minutes:.2f} "
            f"| {r['peak_rss_mb']:.0f} | {r['child_peak_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
