"""Video autoencoder: held-out reconstruction quality after a short CPU training, and speed.

Renders shots of the synthetic shapes world (pipeline/synthetic/world.py) into
shards with the curation's ShardWriter (train and held-out shots drawn from
different seeds), trains configs/train/vae_tiny.yaml through `clipmill train fit`
for --steps steps, then loads the checkpoint with `load_autoencoder` and measures
on the held-out clips (read by the same VideoDataModule, without augmentation):

- PSNR / SSIM of decode(posterior mean), and of a baseline with as many numbers
  per clip or more: every frame 4x average-pooled and bilinearly upsampled (16x
  fewer numbers; the VAE keeps 24x fewer);
- encode and decode throughput (clips/s, frames/s) at the training batch size.

    python benchmarks/bench_autoencoder.py --steps 300          # ~10 min on 2 busy cores
    python benchmarks/bench_autoencoder.py --steps 2000 --keep runs/bench_vae

Prints a JSON summary and one markdown table row.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._measure import machine  # noqa: E402
from pipeline.synthetic.world import ShotRenderer, draw_spec  # noqa: E402
from schemas.shards import ShardWriter  # noqa: E402
from train.autoencoder.io import load_autoencoder  # noqa: E402
from train.autoencoder.losses import psnr, ssim  # noqa: E402
from train.cli import train_main  # noqa: E402
from train.data.module import VideoDataModule  # noqa: E402
from train.data.video_io import encode_mp4  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "train" / "vae_tiny.yaml"


def write_world_shards(out: Path, n: int, seed: int, frames: int, size: int) -> str:
    """`n` shots of the shapes world as 24 fps mp4 clips (crf 18) in shards."""
    rng, spec = np.random.default_rng(seed), None
    with ShardWriter(out, max_samples=64) as writer:
        for i in range(n):
            spec = draw_spec(rng, spec)
            shot = ShotRenderer(spec, size, size, frames)
            video = np.stack([shot.frame(t) for t in range(frames)])
            key = f"{seed:08x}{i:08x}_{0:07d}_{frames:07d}"
            record = {"clip_id": key, "caption": spec.caption, "fps": 24.0, "n_frames": frames}
            record |= {"width": size, "height": size, "captions": []}
            mp4 = encode_mp4(video, 24.0, crf=18)
            writer.write(key, {"mp4": mp4, "txt": spec.caption, "json": json.dumps(record)})
    return str(out / "*.tar")


def held_out_batches(shards: str, frames: int, size: int, batch: int) -> list[torch.Tensor]:
    dm = VideoDataModule(
        shards, val_shards=shards, num_frames=frames, size=size, batch_size=batch, num_workers=0
    )
    dm.setup("validate")
    return [b["video"] for b in dm.val_dataloader()]


def pool_baseline(video: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """Each frame average-pooled by `factor` and bilinearly upsampled back."""
    b, c, t, h, w = video.shape
    frames = video.transpose(1, 2).reshape(b * t, c, h, w)
    small = torch.nn.functional.avg_pool2d(frames, factor)
    up = torch.nn.functional.interpolate(small, (h, w), mode="bilinear", align_corners=False)
    return up.reshape(b, t, c, h, w).transpose(1, 2)


def throughput(fn, x: torch.Tensor, repeats: int = 3) -> float:
    """Best-of-`repeats` seconds of fn(x)."""
    fn(x)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--train-clips", type=int, default=64)
    p.add_argument("--val-clips", type=int, default=16)
    p.add_argument("--render-size", type=int, default=64, help="shots are rendered this big")
    p.add_argument("--render-frames", type=int, default=24)
    p.add_argument("--keep", help="run folder to keep (default: a temporary one)")
    p.add_argument("--config", default=str(CONFIG))
    p.add_argument("--extra", default="", help="more `clipmill train fit` flags, quoted")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import yaml

    data_cfg = yaml.safe_load(Path(args.config).read_text())["data"]
    frames, size, batch = data_cfg["num_frames"], data_cfg["size"], data_cfg["batch_size"]
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench_vae_"))
    work.mkdir(parents=True, exist_ok=True)
    train = write_world_shards(
        work / "train", args.train_clips, 1, args.render_frames, args.render_size
    )
    val = write_world_shards(work / "val", args.val_clips, 2, args.render_frames, args.render_size)
    root = work / "run"
    argv = ["fit", "--config", args.config, "--data.shards", train, "--data.val_shards", val]
    argv += ["--trainer.default_root_dir", str(root), "--trainer.max_steps", str(args.steps)]
    argv += ["--trainer.enable_progress_bar", "false", *shlex.split(args.extra)]
    t0 = time.perf_counter()
    if train_main(argv) != 0:
        raise SystemExit("training failed")
    train_s = time.perf_counter() - t0

    last = root / "checkpoints" / "last.ckpt"
    step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    if step != args.steps:  # ModelCheckpoint saves every n steps, not at the end
        raise SystemExit(f"last.ckpt is from step {step}, not {args.steps}: use a multiple of 100")
    model = load_autoencoder(str(last))
    videos = torch.cat(held_out_batches(val, frames, size, batch))
    with torch.no_grad():
        recon = torch.cat([model.decode(model.encode(v)[0]) for v in videos.split(batch)])
        x = videos[:batch]
        enc_s = throughput(lambda v: model.encode(v), x)
        latents = model.encode(x)[0]
        dec_s = throughput(lambda z: model.decode(z), latents)
    base = pool_baseline(videos)
    result = {
        "steps": args.steps,
        "train_s": round(train_s, 1),
        "s_per_step": round(train_s / max(args.steps, 1), 2),
        "held_out_clips": len(videos),
        "clip": f"{frames}x{size}x{size}",
        "latent": "x".join(map(str, model.latent_shape(frames, size, size))),
        "psnr": round(psnr(recon, videos).mean().item(), 2),
        "ssim": round(ssim(recon, videos).mean().item(), 3),
        "baseline_pool4_psnr": round(psnr(base, videos).mean().item(), 2),
        "baseline_pool4_ssim": round(ssim(base, videos).mean().item(), 3),
        "encode_clips_s": round(len(x) / enc_s, 1),
        "decode_clips_s": round(len(x) / dec_s, 1),
        "params": sum(p.numel() for p in model.parameters()),
        "scaling_factor": round(model.scaling_factor, 4),
        "shift_factor": round(model.shift_factor, 4),
        "threads": torch.get_num_threads(),
        "machine": machine(),
    }
    print(json.dumps(result, indent=1))
    print(
        f"| {result['steps']} | {result['train_s']} s | {result['psnr']} / {result['ssim']} | "
        f"{result['baseline_pool4_psnr']} / {result['baseline_pool4_ssim']} | "
        f"{result['encode_clips_s']} / {result['decode_clips_s']} |"
    )


if __name__ == "__main__":
    main()
