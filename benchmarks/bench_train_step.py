"""Train-step time of our DiT vs a peer of the same size and token count, and the
peak RSS of a tiny training run. CPU by default.

    python benchmarks/bench_train_step.py                 # tiny config: 16 x 8x32x32, 2x4x4 patches
    python benchmarks/bench_train_step.py --steps 20 --threads 2 --json out.json

1. Step time: forward + backward + AdamW step of the denoiser alone, on random
   video and random 384-wide text states (MiniLM's width), median of `--steps`
   after warm-up steps. Ours is timed with factorized and with full attention.
   The peer is diffusers' `LatteTransformer3DModel` (a factorized spatial/temporal
   DiT with cross-attention) configured to the same width, depth, heads, patch
   size and token count; it is skipped, and said so, when diffusers is missing.
   Latte patchifies 2D (1 x p x p), so at the same token count it sees twice the
   frames' tokens unless our patch_t is 1: both are reported with patch_t = 1.
2. Peak RSS: a child process runs `--rss-steps` steps of the full Lightning
   training of configs/train/tiny.yaml's model (MiniLM text encoder, EMA, AdamW)
   on in-memory synthetic clips; its peak resident memory is read from
   /proc/self/status (VmHWM). About 0.85 GB of it is importing torch + Lightning.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._measure import machine  # noqa: E402
from train.models.dit import DiT, DiTConfig  # noqa: E402


def time_steps(model: torch.nn.Module, forward, steps: int, warmup: int = 3) -> float:
    """Median seconds of forward + backward + AdamW step."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        loss = forward().float().square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def ours(args, attention: str, patch_t: int) -> dict:
    cfg = DiTConfig(
        patch_t=patch_t,
        patch_s=args.patch_s,
        width=args.width,
        depth=args.depth,
        heads=args.heads,
        attention=attention,
        text_dim=384,
    )
    torch.manual_seed(0)
    model = DiT(cfg)
    b, t, s = args.batch, args.frames, args.size
    x, tt = torch.randn(b, 3, t, s, s), torch.rand(b)
    text, mask = torch.randn(b, 12, 384), torch.ones(b, 12, dtype=torch.bool)
    micro = {"fps": torch.full((b,), 8.0)}
    sec = time_steps(model, lambda: model(x, tt, text, mask, micro), args.steps)
    return {
        "model": f"clipmill DiT ({attention})",
        "patch": f"{patch_t}x{args.patch_s}x{args.patch_s}",
        "tokens": model.num_tokens(x.shape),
        "params_M": _params(model),
        "step_s": sec,
    }


def latte(args) -> dict | None:
    try:
        from diffusers import LatteTransformer3DModel
    except ImportError:
        return None
    heads = args.heads
    model = LatteTransformer3DModel(
        num_attention_heads=heads,
        attention_head_dim=args.width // heads,
        in_channels=3,
        out_channels=3,
        num_layers=args.depth,
        cross_attention_dim=args.width,
        sample_size=args.size,
        patch_size=args.patch_s,
        num_embeds_ada_norm=1000,
        caption_channels=384,
        video_length=args.frames,
        norm_type="ada_norm_single",
    )
    b, t, s = args.batch, args.frames, args.size
    x, tt = torch.randn(b, 3, t, s, s), torch.randint(0, 1000, (b,))
    text = torch.randn(b, 12, 384)
    sec = time_steps(
        model, lambda: model(x, timestep=tt, encoder_hidden_states=text).sample, args.steps
    )
    tokens = t * (s // args.patch_s) ** 2
    return {
        "model": "diffusers LatteTransformer3DModel",
        "patch": f"1x{args.patch_s}x{args.patch_s}",
        "tokens": tokens,
        "params_M": _params(model),
        "step_s": sec,
    }


def _params(model: torch.nn.Module) -> float:
    return round(sum(p.numel() for p in model.parameters()) / 1e6, 2)


RSS_CHILD = """
import math, sys, torch, yaml, lightning as L
from train.module import VideoDiffusion
steps, batch = int(sys.argv[1]), int(sys.argv[2])
class Clips(torch.utils.data.IterableDataset):
    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        while True:
            yield {"video": torch.rand(3, 8, 32, 32, generator=g) * 2 - 1,
                   "caption": "a red circle moving left", "fps": torch.tensor(8.0),
                   "motion_score": torch.tensor(math.nan), "clip_score": torch.tensor(math.nan),
                   "weight": torch.tensor(1.0), "key": "k"}
cfg = yaml.safe_load(open("configs/train/tiny.yaml"))["model"]
cfg["sample_every_n_steps"] = 0
model = VideoDiffusion(**cfg)  # configs/train/tiny.yaml's model, MiniLM text encoder
trainer = L.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False)
trainer.fit(model, torch.utils.data.DataLoader(Clips(), batch_size=batch))
# VmHWM belongs to this exec'd image; ru_maxrss would inherit the forking parent's peak.
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print("VMHWM_KB", hwm)
"""


def peak_rss(steps: int, batch: int) -> dict:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, str(steps), str(batch)],
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    wall = time.perf_counter() - start
    kb = int(done.stdout.split("VMHWM_KB")[-1].split()[0])
    return {
        "steps": steps,
        "batch": batch,
        "peak_rss_mb": round(kb / 1024),
        "wall_s": round(wall, 1),
    }


def table(rows: list[dict]) -> str:
    lines = ["| model | patch | tokens/clip | params (M) | step (s) |", "|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['model']} | - | - | - | skipped: {r['skipped']} |")
        else:
            lines.append(
                f"| {r['model']} | {r['patch']} | {r['tokens']} | {r['params_M']} "
                f"| {r['step_s']:.3f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--patch-t", type=int, default=2)
    p.add_argument("--patch-s", type=int, default=4)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=6)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--rss-steps", type=int, default=30, help="0 skips the RSS run")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    rows = [ours(args, "factorized", args.patch_t), ours(args, "full", args.patch_t)]
    if args.patch_t != 1:
        rows.append(ours(args, "factorized", 1))
    rows.append(
        latte(args)
        or {"model": "diffusers LatteTransformer3DModel", "skipped": "diffusers is not installed"}
    )
    print(
        f"# train step: batch {args.batch} x {args.frames}x{args.size}x{args.size}, "
        f"width {args.width}, depth {args.depth}, {args.threads} threads, {machine()}"
    )
    print(table(rows))
    result = {"args": vars(args), "step": rows}
    if args.rss_steps:
        rss = result["rss"] = peak_rss(args.rss_steps, args.batch)
        print(
            f"\npeak RSS, {rss['steps']} Lightning training steps of tiny.yaml's model "
            f"at batch {rss['batch']}: {rss['peak_rss_mb']} MB ({rss['wall_s']} s wall)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
