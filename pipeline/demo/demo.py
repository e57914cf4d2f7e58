"""`clipmill demo`: raw footage to scored samples in one command, with a report.

synth (shapes world, junk, held-out combinations never filmed) -> curate ->
train (tiny pixel-space DiT) -> sample every evaluation prompt -> evaluate ->
`DIR/report.md`. `--ablate naive` trains the same budget on the naive dataset
(`pipeline.demo.naive`: fixed 4-s chunks, first-cue captions, no filtering or dedup) and
reports both rows (the two trainings side by side, see `train_rows`). `--latent`
adds the latent path's row (`pipeline.demo.latent`). The checker's own score on
ground-truth clips at the training size is the first row, so a reader can see
what 100% looks like.

Every stage runs through the same functions the CLI uses (`curate`,
`train_main`, `sample_main`, `cache_main`, `evaluate`); everything is written
under `--output`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from pipeline.demo.presets import HOLDOUT, JUNK, PARAPHRASES, PRESETS, SHORT_SIDE
from pipeline.demo.report import plot_losses, truth_strips, write_markdown
from pipeline.demo.rows import train_rows
from pipeline.synthetic.evaluate import eval_prompts, evaluate, render_truth_clips
from pipeline.synthetic.synth import synthesize
from pipeline.synthetic.vocab import load_holdout


def synth_footage(raw: Path, preset_name: str, seed: int = 0) -> Path:
    """The preset's raw footage (with `truth.json`) in `raw`: synth with the demo's junk."""
    preset = PRESETS[preset_name]
    synthesize(raw, preset.videos, seed, width=preset.width, height=preset.height,
               shots_per_video=preset.shots, holdout=load_holdout(HOLDOUT),
               shape_size=preset.shape_size, **JUNK)  # fmt: skip
    return raw


def run_demo(
    out: Path, preset_name: str, ablate: str | None = None, seed: int = 0, latent: bool = False
) -> dict:
    """The whole chain into `out`; returns report.json's content."""
    from pipeline.config.curate import build_config
    from pipeline.driver import curate

    preset = PRESETS[preset_name]
    out.mkdir(parents=True, exist_ok=True)
    clock: dict[str, float] = {}
    began = time.perf_counter()
    raw = synth_footage(out / "raw", preset_name, seed)
    clock["synth"] = time.perf_counter() - began
    cfg = build_config({"ray": {"address": "none"}, "transcode": {"short_side": SHORT_SIDE}})
    # No report.html: its previews of every clip (~14 s of 323 in `make demo`) are not what
    # the demo shows; `clipmill report OUT/curated` makes the page (the report says so).
    summary = curate([str(raw)], out / "curated", cfg, progress=lambda _: None, page=False)
    clock["curate"] = time.perf_counter() - began - clock["synth"]
    prompts = eval_prompts(PARAPHRASES, load_holdout(HOLDOUT))
    (out / "eval_prompts.txt").write_text("\n".join(prompts) + "\n", encoding="utf-8")
    naive_counts = None
    if ablate == "naive":
        from pipeline.demo.naive import naive_shards

        naive_counts = naive_shards(raw, out / "naive", SHORT_SIDE)
    names = ["curated", "naive"] if ablate else ["curated"]
    rows = train_rows(names, out, preset)
    if latent:
        from pipeline.demo.latent import train_latent_row

        rows["latent"] = train_latent_row(out, preset)
    # What 100% looks like at the training size: the checker on ground-truth clips, their
    # shapes as large as the footage's.
    truth = render_truth_clips(
        out / "checker_truth", 32, 8, seed=seed, shape_size=preset.shape_size
    )
    truth_strips(truth)
    rows = {"ground truth (checker)": evaluate(truth, load_holdout(HOLDOUT)), **rows}
    clock["total"] = time.perf_counter() - began
    report = {"preset": preset_name, "config": asdict(preset), "ablate": ablate, "latent": latent,
              "curation": {k: summary[k] for k in ("clips", "seconds") if k in summary},
              "rejected_by_reason": summary.get("clips", {}).get("rejected_by_reason"),
              "naive": naive_counts, "seconds": clock, "rows": rows}  # fmt: skip
    plot_losses({k: v["loss"] for k, v in rows.items() if "loss" in v}, out / "loss.png")
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    write_markdown(report, out / "report.md")
    return report


def main(argv: list[str] | None = None) -> int:
    """`clipmill demo --output DIR [--preset smoke|default|bench] [--ablate naive]`."""
    parser = argparse.ArgumentParser(
        prog="clipmill demo", description="synth -> curate -> train -> sample -> evaluate"
    )
    parser.add_argument("--output", type=Path, required=True, help="everything goes here")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default")
    parser.add_argument("--ablate", choices=["naive"], help="also train on the naive dataset")
    parser.add_argument(
        "--latent",
        action="store_true",
        help="also train the latent path on the curated clips (autoencoder -> cache -> DiT)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    report = run_demo(args.output, args.preset, args.ablate, args.seed, args.latent)
    print((args.output / "report.md").read_text(encoding="utf-8"))
    print(f"demo: {report['seconds']['total']:.0f} s; report in {args.output / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
