"""`clipmill demo --latent`: the latent path as one more row of the report.

On the curated shards: train the tiny video autoencoder (configs/train/vae_tiny.yaml)
-> `clipmill cache` (augmented views encoded once, caption states stored) -> train the
latent DiT (configs/train/latent_tiny.yaml) on the cache for the preset's steps ->
sample (decoded by that autoencoder) -> evaluate, like the pixel rows. Every step goes
through the CLI entry points a user would run, and writes under the demo's --output.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pipeline.demo.presets import ROOT, Preset
from pipeline.demo.rows import sample_data, train_and_sample, train_overrides

VAE = ROOT / "configs" / "train" / "vae_tiny.yaml"
LATENT = ROOT / "configs" / "train" / "latent_tiny.yaml"
VIEWS = 4  # augmented views per clip in the cache


def train_latent_row(out: Path, preset: Preset) -> dict[str, Any]:
    """Autoencoder, cache, latent DiT, samples, scores: the `latent` row."""
    from train.cache.cli import cache_main
    from train.cli import train_main

    began = time.perf_counter()
    shards = str(out / "curated" / "shards" / "*.tar")
    run = out / "run_vae"
    # The autoencoder sees clips as the DiT will: same fps, no flips.
    data = {**sample_data(preset), "batch_size": max(1, preset.batch_size // 2)}
    overrides = train_overrides(run, preset.vae_steps or preset.steps, None, data)
    argv = ["fit", "--config", str(VAE), "--config", str(overrides), "--data.shards", shards]
    if train_main(argv) != 0:
        raise RuntimeError("training the autoencoder failed (see the log above)")
    vae = str(run / "checkpoints" / "last.ckpt")
    cache = out / "cache"
    rate = [word for k, v in preset.rate().items() for word in ("--" + k.replace("_", "-"), str(v))]
    argv = ["--train-config", str(LATENT), "--ckpt-vae", vae, "--shards", shards, "--output",
            str(cache), "--views", str(VIEWS), *rate, "--flip-prob", "0",
            "--overwrite"]  # fmt: skip
    if cache_main(argv) != 0:
        raise RuntimeError("clipmill cache failed (see the log above)")
    cached = time.perf_counter()
    data_args = ["--data.cache", str(cache), "--model.autoencoder", vae]
    report = train_and_sample("latent", data_args, out, preset, config=LATENT)
    report["seconds"] = {"autoencoder+cache": cached - began, **report["seconds"]}
    return report
