"""One row of the demo's report: train on a dataset, sample every eval prompt, score the samples.

Shared by the curated and naive rows (`train_rows`, side by side when there are cores for
it) and by the latent row (`pipeline.demo.latent`), so every row is trained and scored alike.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from pipeline.demo.presets import HOLDOUT, TINY, Preset
from pipeline.demo.report import loss_curve
from pipeline.synthetic.evaluate import evaluate
from pipeline.synthetic.vocab import load_holdout


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
    return {"batch_size": preset.batch_size, **preset.rate(), "flip_prob": 0.0}


def fit_argv(run: Path, data_args: list[str], preset: Preset, config: Path = TINY) -> list[str]:
    """`clipmill train fit` arguments of a demo row: `config`, the preset's steps, warm-up,
    sample rate and flags, writing into `run`."""
    model = {"sample_every_n_steps": 0, "warmup_steps": max(1, min(100, preset.steps // 5))}
    overrides = train_overrides(run, preset.steps, model, sample_data(preset))
    return ["fit", "--config", str(config), "--config", str(overrides), *data_args, *preset.train]


def train_and_sample(
    name: str, data_args: list[str], out: Path, preset: Preset, config: Path = TINY
) -> dict[str, Any]:
    """Fit `config` on `data_args` (`--data.shards GLOB`, or a latent cache), sample every
    eval prompt, evaluate; the row of the report."""
    import torch  # lazy, like train.cli: curation never imports torch

    from train.cli import sample_main, train_main

    run = out / f"run_{name}"
    began = time.perf_counter()
    if train_main(fit_argv(run, data_args, preset, config)) != 0:
        raise RuntimeError(f"training {name} failed (see the log above)")
    trained = time.perf_counter()
    prompts = out / "eval_prompts.txt"
    samples = out / f"samples_{name}"
    code = sample_main(["--ckpt", str(run / "checkpoints" / "last.ckpt"), "--prompts-file",
                        str(prompts), "--output", str(samples), "--steps",
                        str(preset.sample_steps), "--batch-size", "30",
                        *preset.sample])  # fmt: skip
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
