"""`clipmill demo`: raw footage to scored samples in one command, with a report.

synth (shapes world, junk, held-out combinations never filmed) -> curate ->
train (tiny pixel-space DiT) -> sample every evaluation prompt -> evaluate ->
`DIR/report.md`. `--ablate naive` trains the same budget on the naive dataset
(`demo_naive`: fixed 4-s chunks, first-cue captions, no filtering or dedup) and
reports both rows (the two trainings side by side, see `train_rows`). `--latent`
adds the latent path's row (`demo_latent`). The checker's own score on
ground-truth clips at the training size is the first row, so a reader can see
what 100% looks like.

Every stage runs through the same functions the CLI uses (`curate`,
`train_main`, `sample_main`, `cache_main`, `evaluate`); everything is written
under `--output`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import KW_ONLY, asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.demo_report import loss_curve, plot_losses, write_markdown
from pipeline.evaluate import eval_prompts, evaluate, render_truth_clips
from pipeline.synth import synthesize
from pipeline.synth_world import load_holdout

ROOT = Path(__file__).resolve().parents[1]
HOLDOUT = ROOT / "configs" / "world" / "holdout.yaml"
TINY = ROOT / "configs" / "train" / "tiny.yaml"
# Junk like real footage, each kind built to trip one curation stage (see synth_junk).
JUNK = dict(static_prob=0.06, flat_prob=0.03, blurry_prob=0.05, ad_prob=0.05, sign_prob=0.03,
            repeat_prob=0.1, miscaption_prob=0.08)  # fmt: skip


@dataclass(frozen=True)
class Preset:
    """How big each stage is. `train` holds extra `clipmill train fit` flags."""

    videos: int
    width: int
    height: int
    shots: tuple[int, int]
    steps: int
    batch_size: int
    sample_steps: int
    _: KW_ONLY
    vae_steps: int = 0
    """autoencoder steps of `--latent` (0: as many as the DiT's)"""
    fps: float = 12.0
    """frame rate of the training samples: 8 frames at 6 fps span 1.3 s, enough to show the
    slow steady motion of a 6-s shot at 32 px"""
    train: tuple[str, ...] = ()


SMOKE_MODEL = ("--model.dit.depth", "2", "--model.dit.width", "64", "--model.dit.heads", "2")
PRESETS: dict[str, Preset] = {
    # Wiring only (the test suite runs it): a 2-block model, a few steps, every stage real.
    "smoke": Preset(3, 128, 72, (3, 4), 12, 4, 3, train=SMOKE_MODEL),
    # `make demo`: under 10 minutes on 2 cores; learns colour, not yet shape or direction.
    "default": Preset(16, 192, 108, (3, 7), 500, 16, 20, fps=6),
    # The benchmark: about 40 minutes on 2 cores; with --ablate naive both models train side
    # by side on one core each (76 minutes measured on 2 cores).
    "bench": Preset(60, 320, 180, (3, 7), 3000, 16, 30, fps=6),
}  # fmt: skip
SHORT_SIDE = 90  # curated/naive clips; the trainer resizes to 32 px
# Extra prompts of seen combinations in unseen words ("a crimson disc drifting leftward"):
# does the pretrained text encoder carry the meaning over? Scored as the `paraphrase` group.
PARAPHRASES = 20


def train_overrides(run: Path, steps: int, model: dict | None, data: dict) -> Path:
    """A YAML over a training config: where to write, how long, log losses to CSV, one
    final checkpoint; `model` and `data` keys as given."""
    cfg: dict[str, Any] = {
        "trainer": {
            "default_root_dir": str(run),
            "max_steps": steps,
            "enable_progress_bar": False,
            "log_every_n_steps": max(1, min(10, steps // 10)),
            "logger": {
                "class_path": "lightning.pytorch.loggers.CSVLogger",
                "init_args": {"save_dir": str(run), "name": "logs"},
            },  # fmt: skip
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {"save_last": True, "save_top_k": 0, "every_n_train_steps": steps},
                }
            ],  # fmt: skip
        },
        **({"model": model} if model else {}),
        "data": data,
    }
    path = run / "train.yaml"
    run.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def sample_data(preset: Preset) -> dict[str, Any]:
    # No flips: a mirrored "left" clip would show a held-out "right" combination.
    return {"batch_size": preset.batch_size, "fps": preset.fps, "flip_prob": 0.0}


def train_and_sample(
    name: str, data_args: list[str], out: Path, preset: Preset, config: Path = TINY
) -> dict[str, Any]:
    """Fit `config` on `data_args` (`--data.shards GLOB`, or a latent cache), sample every
    eval prompt, evaluate; the row of the report."""
    import torch  # lazy, like train.cli: curation never imports torch

    from train.cli import sample_main, train_main

    run = out / f"run_{name}"
    began = time.perf_counter()
    model = {"sample_every_n_steps": 0, "warmup_steps": max(1, min(100, preset.steps // 5))}
    overrides = train_overrides(run, preset.steps, model, sample_data(preset))
    argv = ["fit", "--config", str(config), "--config", str(overrides), *data_args, *preset.train]
    if train_main(argv) != 0:
        raise RuntimeError(f"training {name} failed (see the log above)")
    trained = time.perf_counter()
    prompts = out / "eval_prompts.txt"
    samples = out / f"samples_{name}"
    code = sample_main(["--ckpt", str(run / "checkpoints" / "last.ckpt"), "--prompts-file",
                        str(prompts), "--output", str(samples), "--steps",
                        str(preset.sample_steps), "--batch-size", "30"])  # fmt: skip
    if code != 0:
        raise RuntimeError(f"sampling {name} failed")
    sampled = time.perf_counter()
    report = evaluate(samples, load_holdout(HOLDOUT))
    report["seconds"] = {"train": trained - began, "sample": sampled - trained,
                         "evaluate": time.perf_counter() - sampled}  # fmt: skip
    report["threads"] = torch.get_num_threads()
    report["loss"] = loss_curve(run)
    return report


def _use_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def train_rows(names: list[str], out: Path, preset: Preset) -> dict[str, dict[str, Any]]:
    """`train_and_sample` on each dataset in `names`; with two and at least 2 cores, side by
    side in two processes on half the cores each: small models use one core poorly, so on
    2 cores the pair finishes about a third sooner than one after the other."""
    jobs = {
        n: (n, ["--data.shards", str(out / n / "shards" / "*.tar")], out, preset) for n in names
    }
    cores = os.cpu_count() or 1
    if len(jobs) == 1 or cores < 2:
        return {n: train_and_sample(*args) for n, args in jobs.items()}
    context = multiprocessing.get_context("spawn")  # fork after torch's threads start is unsafe
    with ProcessPoolExecutor(len(jobs), context, _use_threads, (cores // len(jobs),)) as pool:
        futures = {n: pool.submit(train_and_sample, *args) for n, args in jobs.items()}
        return {n: f.result() for n, f in futures.items()}


def run_demo(
    out: Path, preset_name: str, ablate: str | None = None, seed: int = 0, latent: bool = False
) -> dict:
    """The whole chain into `out`; returns report.json's content."""
    from pipeline.config import build_config
    from pipeline.driver import curate

    preset = PRESETS[preset_name]
    out.mkdir(parents=True, exist_ok=True)
    clock: dict[str, float] = {}
    began = time.perf_counter()
    raw = out / "raw"
    synthesize(raw, preset.videos, seed, width=preset.width, height=preset.height,
               shots_per_video=preset.shots, holdout=load_holdout(HOLDOUT), **JUNK)  # fmt: skip
    clock["synth"] = time.perf_counter() - began
    cfg = build_config({"ray": {"address": "none"}, "transcode": {"short_side": SHORT_SIDE}})
    summary = curate([str(raw)], out / "curated", cfg, progress=lambda _: None)
    clock["curate"] = time.perf_counter() - began - clock["synth"]
    prompts = eval_prompts(PARAPHRASES, load_holdout(HOLDOUT))
    (out / "eval_prompts.txt").write_text("\n".join(prompts) + "\n", encoding="utf-8")
    naive_counts = None
    if ablate == "naive":
        from pipeline.demo_naive import naive_shards

        naive_counts = naive_shards(raw, out / "naive", SHORT_SIDE)
    names = ["curated", "naive"] if ablate else ["curated"]
    rows = train_rows(names, out, preset)
    if latent:
        from pipeline.demo_latent import train_latent_row

        rows["latent"] = train_latent_row(out, preset)
    # What 100% looks like at the training size: the checker on ground-truth clips.
    truth = render_truth_clips(out / "checker_truth", 32, 8, seed=seed)
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
