"""Epoch time from the latent cache vs from mp4 shards, same model and config (issue 6).

Both paths train the same latent-space DiT (configs/train/latent_tiny.yaml's
shape) in the latent space of the same autoencoder, on the same clips:

- mp4: every step decodes the batch's clips (`--data.kind mp4`, the trainer's
  loader), encodes them with the VAE, samples z, encodes the captions
  (the text encoder's in-memory LRU cache helps from the second epoch on);
- cache: `clipmill cache` ran once (timed apart), every step reads stored
  views and caption states (`--data.kind latents`) and samples z.

    python benchmarks/bench_cache.py                  # 32 clips, 9x32x32, 4 views, MiniLM
    python benchmarks/bench_cache.py --clips 64 --text random

An epoch is every clip once (epoch mode), batch `--batch-size` (16, as latent_tiny), one DataLoader
worker, `--threads` torch threads. Prints markdown rows: per-epoch seconds
(whole step and data only), speed-up, cache build time, bytes per clip.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_dataloader import render_clip  # noqa: E402

from schemas.shards import ShardWriter  # noqa: E402
from train.autoencoder.io import save_autoencoder
from train.autoencoder.model import AutoencoderConfig, VideoAutoencoder  # noqa: E402
from train.cache.builder import CacheBuilder, CacheConfig  # noqa: E402
from train.cache.sources import add_shards  # noqa: E402
from train.data.module import VideoDataModule  # noqa: E402
from train.data.video_io import encode_mp4  # noqa: E402
from train.models.dit import DiTConfig  # noqa: E402
from train.models.text import TextEncoderSpec, build_text_encoder  # noqa: E402
from train.module import VideoDiffusion  # noqa: E402

WORDS = ("red", "blue", "green"), ("circle", "square"), ("left", "right", "up", "down")


def write_shards(out: Path, n: int, frames: int, height: int, width: int) -> int:
    rng = np.random.default_rng(0)
    total = 0
    with ShardWriter(out, max_samples=16) as writer:
        for i in range(n):
            mp4 = encode_mp4(render_clip(rng, frames, height, width), 24.0, crf=23, gop=24)
            words = [w[(i // (k + 1)) % len(w)] for k, w in enumerate(WORDS)]
            caption = f"a {words[0]} {words[1]} moving {words[2]}"
            key = f"{i:016x}_{0:07d}_{frames:07d}"
            record = {"clip_id": key, "caption": caption, "fps": 24.0, "motion_score": 1.0,
                      "captions": [{"text": caption, "source": "vlm", "score": 0.9},
                                   {"text": caption.replace("moving", "going"),
                                    "source": "filename", "score": None}]}  # fmt: skip
            writer.write(key, {"mp4": mp4, "txt": caption, "json": json.dumps(record)})
            total += len(mp4)
    return total


CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "train"
LATENT_TINY = yaml.safe_load((CONFIGS / "latent_tiny.yaml").read_text())


def vae_shape(name: str) -> dict:
    if name == "default":
        return {}
    return yaml.safe_load((CONFIGS / "vae_tiny.yaml").read_text())["model"]["init_args"][
        "autoencoder"
    ]


def to_latents(model: VideoDiffusion, batch: dict, gen: torch.Generator) -> dict:
    """What the mp4 path adds per step: the VAE encode and a posterior draw."""
    vae = model.vae
    with torch.no_grad():
        mean, logvar = vae.encode(batch["video"])
        z = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=gen)
    return {**batch, "video": (z - vae.shift_factor) * vae.scaling_factor}


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the DataLoader workers)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_epoch(model, loader, epoch: int, encode: bool, train: bool, opt) -> tuple[float, float]:
    """(wall s, CPU s) of one epoch; CPU time is what contention from other jobs inflates least."""
    gen = torch.Generator().manual_seed(epoch)
    loader.epoch_fn = lambda: epoch
    start, cpu = time.perf_counter(), cpu_seconds()
    for batch in loader:
        if encode:
            batch = to_latents(model, batch, gen)
        if train:
            loss, _ = model.flow_loss(batch, gen)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        elif not encode:
            model.encode_text(batch)  # the cache path's text "encoding": a lookup
    return time.perf_counter() - start, cpu_seconds() - cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=32)
    p.add_argument("--src-frames", type=int, default=48)
    p.add_argument("--src-size", default="96x128", help="HxW of the shard clips")
    p.add_argument("--frames", type=int, default=9, help="latent_tiny's data.num_frames")
    p.add_argument("--size", type=int, default=32, help="latent_tiny's data.size")
    p.add_argument(
        "--vae",
        choices=("vae_tiny", "default"),
        default="vae_tiny",
        help="vae_tiny.yaml's shape, or AutoencoderConfig() (4 ch, 4x8x8, 6.9M)",
    )
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--text", choices=("hf", "random"), default="hf")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    src_h, src_w = (int(v) for v in args.src_size.split("x"))
    text = TextEncoderSpec(kind=args.text, dim=64)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        mp4_bytes = write_shards(root / "shards", args.clips, args.src_frames, src_h, src_w)
        torch.manual_seed(0)
        vae = VideoAutoencoder(AutoencoderConfig(**vae_shape(args.vae))).eval()
        ckpt = save_autoencoder(vae, root / "vae.ckpt")
        cfg = CacheConfig(views=args.views, num_frames=args.frames, size=(args.size, args.size))
        start = time.perf_counter()
        builder = CacheBuilder(root / "cache", vae, build_text_encoder(text), cfg, ckpt)
        add_shards(builder, str(root / "shards" / "*.tar"))
        header = builder.finish()
        build_s = time.perf_counter() - start

        dit = DiTConfig(**{**LATENT_TINY["model"]["dit"], "in_channels": vae.latent_channels})
        model = VideoDiffusion(dit=dit, text=text, autoencoder=ckpt)
        common = dict(batch_size=args.batch_size, num_workers=1, mode="epoch", seed=0)
        mp4 = VideoDataModule(str(root / "shards" / "*.tar"), num_frames=args.frames,
                              size=args.size, **common)  # fmt: skip
        cached = VideoDataModule(kind="latents", cache=str(root / "cache"), **common)
        loaders = {}
        for name, dm in (("mp4", mp4), ("cache", cached)):
            dm.setup("fit")
            loaders[name] = dm.train_dataloader()
        opt = torch.optim.AdamW(model.dit.parameters(), lr=1e-4)
        runs: dict[tuple[str, bool], list] = {}
        # Interleaved, so that load from other jobs hits both paths alike; epoch 0 warms up.
        for epoch in range(args.epochs + 1):
            for train in (True, False):
                for name, loader in loaders.items():
                    took = run_epoch(model, loader, epoch, name == "mp4", train, opt)
                    if epoch:
                        runs.setdefault((name, train), []).append(took)
        rows = {
            name: [tuple(statistics.median(x) for x in zip(*runs[name, t], strict=True))
                   for t in (True, False)]
            for name in loaders
        }  # fmt: skip
    cmd = "python benchmarks/bench_cache.py " + shlex.join(sys.argv[1:])
    print(f"command: {cmd.strip()}  (load average {os.getloadavg()[0]:.1f} at the end)")
    print(f"cache build: {build_s:.1f} s for {args.clips} clips x {args.views} views "
          f"({header['counts']})")  # fmt: skip
    print(
        "| path | epoch wall s (train) | CPU s (train) | wall s (data only) | CPU s (data only) |"
    )
    print("|---|---|---|---|---|")
    for name, ((wall, cpu), (dwall, dcpu)) in rows.items():
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {dwall:.2f} | {dcpu:.2f} |")
    (w0, c0), (dw0, dc0) = rows["mp4"]
    (w1, c1), (dw1, dc1) = rows["cache"]
    print(f"speed-up (mp4 / cache): train wall {w0 / w1:.1f}x, CPU {c0 / c1:.1f}x; "
          f"data only wall {dw0 / dw1:.1f}x, CPU {dc0 / dc1:.1f}x")  # fmt: skip
    per_clip = header["bytes"]["per_item"]
    print(f"bytes per clip: cache {per_clip / 1024:.1f} KiB ({args.views} views, mean+logvar "
          f"fp16 + caption states), mp4 {mp4_bytes / args.clips / 1024:.1f} KiB")  # fmt: skip


if __name__ == "__main__":
    main()
