"""How well the split finds cuts, per detector, against synth's ground truth.

    .venv/bin/python benchmarks/bench_cuts.py [--raw DIR] [--detectors content,adaptive]

`--raw` is a `clipmill synth` folder (its `truth.json`); by default the 48 videos of
`make demo`'s footage are made in a temporary folder (`clipmill demo --preset default`'s
synth call). Each video goes through the split stage's own analysis and clip planning
(`Splitter` with the default `--split.*` config and the named detector), then:

- hard cuts found: a truth hard cut with a detected cut within 1 frame, or inside a
  transition run (both start a new clip);
- false cuts: detected cuts more than 2 frames from every truth cut or transition;
- content clips crossing a hard cut: candidate clips (before the filters) with a truth hard
  cut more than 1 frame inside them, i.e. two shots (and two captions) in one clip;
- seconds of analysis per minute of footage (the split alone, this process).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import machine  # noqa: E402

from pipeline.config.curate import build_config  # noqa: E402
from pipeline.demo.demo import synth_footage  # noqa: E402
from pipeline.stages.probe import probe_video  # noqa: E402
from pipeline.stages.split import Splitter  # noqa: E402


def score_video(truth: dict, video: dict) -> dict[str, int]:
    """Counts for one analysed and planned video against its truth entry."""
    hard = [c["frame"] for c in truth["cuts"] if c["kind"] == "hard"]
    soft = [(c["start_frame"], c["end_frame"]) for c in truth["cuts"] if c["kind"] != "hard"]
    found = list(video["cuts"])
    transition = video["transition_mask"]

    def near_truth(f: int) -> bool:
        return any(abs(f - h) <= 2 for h in hard) or any(s - 2 <= f <= e + 2 for s, e in soft)

    hit = sum(
        any(abs(f - h) <= 1 for f in found) or bool(transition[max(0, h - 1) : h + 1].any())
        for h in hard
    )
    content = [
        c for c in video["clips"] if not c["reject_reasons"] or c["reject_reasons"] == ["too_short"]
    ]
    crossing = sum(
        any(c["start_frame"] + 1 < h < c["end_frame"] - 1 for h in hard) for c in content
    )
    return {
        "hard": len(hard),
        "hit": hit,
        "false": sum(not near_truth(f) for f in found),
        "clips": len(content),
        "crossing": crossing,
    }


def run_detector(raw: Path, truths: list[dict], detector: str) -> dict[str, float]:
    cfg = build_config({"ray": {"address": "none"}, "split": {"detector": detector}}).split
    splitter = Splitter(cfg)
    totals = {"hard": 0, "hit": 0, "false": 0, "clips": 0, "crossing": 0}
    seconds = footage = 0.0
    for truth in truths:
        row = probe_video({"path": str(raw / truth["file"])})
        began = time.perf_counter()
        video = splitter(row)  # the stage itself: analysis, cut edits, clip planning
        seconds += time.perf_counter() - began
        footage += truth["duration_s"]
        for k, v in score_video(truth, video).items():
            totals[k] += v
    return {**totals, "s_per_min": seconds / (footage / 60)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--raw", type=Path, help="a `clipmill synth` folder (default: make demo's)")
    p.add_argument("--detectors", default="content,adaptive,transnetv2")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw = args.raw or synth_footage(Path(tmp) / "raw", "default")
        truths = json.loads((raw / "truth.json").read_text())
        print(f"machine: {machine()}; {len(truths)} videos in {raw}")
        print(
            "| detector | hard cuts found | false cuts | content clips crossing a hard cut "
            "| analysis s per footage min |"
        )
        print("|---|---|---|---|---|")
        for det in args.detectors.split(","):
            r = run_detector(raw, truths, det)
            print(
                f"| {det} | {r['hit']} / {r['hard']} | {r['false']} "
                f"| {r['crossing']} / {r['clips']} | {r['s_per_min']:.2f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
