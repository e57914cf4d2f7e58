"""Can the denoiser learn a layout at all? Memorise a few clips of the shapes world, then draw them.

The smallest question under issue 14. Each variant trains `configs/train/tiny.yaml`'s DiT
(with its flow settings) to denoise K ground-truth clips of the demo's world (synth's own
renderer: textured background, one shape moving in one direction), each clip with its own
fixed random text states, so the only thing to learn is "this condition -> this clip".
Then it samples every condition from fresh noise and asks:
- how far each sample is from its clip (MSE; the clips' spread around their mean is the
  no-layout reference: a model that only learned the average frame scores about that);
- whether `clipmill evaluate`'s checker reads the clip's colour, shape and direction in it.

With `--conditions` fewer than the clips, each condition stands for several clips (other
backgrounds and paths), as a caption stands for many shots: the model must then draw *a*
layout that fits, chosen by the noise, which is the demo's task; the MSE is to the nearest
clip of the sample's condition.

A model that cannot memorise 8 clips in a few hundred steps cannot learn the world from
thousands of them in `make demo`'s budget: this isolates the architecture and objective from
the data and the text encoder. Variants run side by side in one script (paired: same clips,
seed, noise, steps), each on one torch thread.

    python benchmarks/bench_layout.py --steps 400 \
        --variant rope=--model.dit.pos_embed=rope \
        --variant sincos=--model.dit.pos_embed=rope+sincos
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import yaml

COMBOS = [  # every colour, shape and direction, none twice in a row
    ("red", "square", "right"),
    ("blue", "circle", "down"),
    ("green", "triangle", "left"),
    ("yellow", "circle", "up"),
    ("red", "triangle", "down"),
    ("blue", "square", "left"),
    ("green", "circle", "up"),
    ("yellow", "triangle", "right"),
]


def truth_clips(
    combos: list[tuple[str, str, str]], size: int, frames: int, seed: int
) -> np.ndarray:
    """`[K, T, H, W, 3]` uint8 clips drawn by the synth renderer, one per entry of `combos`
    (a repeated combination gets another background and path)."""
    from pipeline.synthetic.evaluate import PROMPT
    from pipeline.synthetic.world import ShotRenderer, ShotSpec

    rng = np.random.default_rng(seed)
    clips = []
    for colour, shape, direction in combos:
        prompt = PROMPT.format(colour=colour, shape=shape, direction=direction)
        hue, seed_ = float(rng.random()), int(rng.integers(2**62))
        spec = ShotSpec(colour, shape, direction, prompt, hue, seed_)
        shot = ShotRenderer(spec, size, size, frames)
        clips.append(np.stack([shot.frame(t) for t in range(frames)]))
    return np.stack(clips)


def dit_config(overrides: dict[str, Any]) -> dict[str, Any]:
    """tiny.yaml's `model.dit` and `model.flow`, with `--model.dit.x=v` style overrides."""
    from pipeline.demo.presets import TINY

    cfg = yaml.safe_load(TINY.read_text())["model"]
    model = {"dit": dict(cfg["dit"]), "flow": dict(cfg["flow"])}
    for key, value in overrides.items():
        section, field = key.removeprefix("--model.").split(".", 1)
        model[section][field] = yaml.safe_load(value)
    return model


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """'name=--model.dit.a=1 --model.flow.b=2' -> (name, {flag: value})."""
    name, _, flags = text.partition("=")
    overrides = dict(f.split("=", 1) for f in flags.split())
    bad = [f for f in overrides if not f.startswith(("--model.dit.", "--model.flow."))]
    if not name or bad:
        raise SystemExit(f"--variant {text!r}: want 'name=--model.dit.<field>=<value> ...'")
    return name, overrides


def run_variant(name: str, overrides: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from pipeline.synthetic.checker import check_video
    from train.flow import FlowConfig, RectifiedFlow, initial_noise, sample
    from train.models.dit import DiT, DiTConfig

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    n_cond = args.conditions or args.clips
    cond = torch.arange(args.clips) % n_cond  # clip i is trained under condition cond[i]
    combos = [COMBOS[c % len(COMBOS)] for c in range(n_cond)]
    clips = truth_clips([combos[c] for c in cond.tolist()], args.size, args.frames, args.seed)
    x = torch.from_numpy(clips).permute(0, 4, 1, 2, 3).float() / 127.5 - 1  # [K, C, T, H, W]
    k = x.shape[0]
    cfg = dit_config(overrides)
    text_dim = 32
    model = DiT(DiTConfig(**{**cfg["dit"], "text_dim": text_dim, "micro_conditions": ()}))
    flow = RectifiedFlow(FlowConfig(**cfg["flow"]))
    gen = torch.Generator().manual_seed(args.seed)
    states = torch.randn(n_cond, 4, text_dim, generator=gen)
    mask = torch.ones(n_cond, 4, dtype=torch.bool)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    tokens = model.num_tokens(x.shape)
    start, losses = time.perf_counter(), []
    for _ in range(args.steps):
        idx = torch.randint(0, k, (args.batch,), generator=gen)
        x0, noise = x[idx], torch.randn(args.batch, *x.shape[1:], generator=gen)
        t = flow.sample_t(args.batch, tokens, gen)
        pred = model(flow.interpolate(x0, noise, t), t, states[cond[idx]], mask[cond[idx]])
        loss, _ = flow.loss(pred, x0, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    train_s = time.perf_counter() - start
    model.eval()
    # Each condition is sampled as often as it has clips (other seeds): K samples in all.
    which = torch.arange(k) % n_cond
    out = sample(
        lambda z, t: model(z, t, states[which], mask[which]),
        initial_noise(tuple(x.shape), args.seed),
        flow.timesteps(args.sample_steps, tokens),
    ).clamp(-1, 1)
    # Distance to the nearest clip of the sample's own condition (its only clip by default).
    dist = (out[:, None] - x[None]).pow(2).flatten(2).mean(2)  # [samples, clips]
    dist[which[:, None] != cond[None, :]] = float("inf")
    mse = dist.min(1).values
    frames = ((out.permute(0, 2, 3, 4, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    hits = {key: 0 for key in ("colour", "shape", "direction", "all three")}
    for i, video in enumerate(frames):
        colour, shape, direction = combos[int(which[i])]
        got = check_video(video)
        ok = [got["colour"] == colour, got["shape"] == shape, got["direction"] == direction]
        for key, good in zip(("colour", "shape", "direction"), ok, strict=True):
            hits[key] += good
        hits["all three"] += all(ok)
    return {
        "variant": name,
        "overrides": overrides,
        "train_s": round(train_s, 1),
        "final_loss": round(float(np.mean(losses[-20:])), 4),
        "sample_mse": round(float(mse.mean()), 4),
        "no_layout_mse": round(float((x - x.mean(0)).pow(2).mean()), 4),
        **{k_: f"{v}/{k}" for k_, v in hits.items()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--variant", action="append", required=True, help="'name=--model.dit.f=v ...'")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--clips", type=int, default=8, help="clips to memorise (> 8 repeats combos)")
    p.add_argument(
        "--conditions",
        type=int,
        default=0,
        help="distinct text conditions, shared round-robin by the clips (0: one per clip); "
        "fewer than clips makes each condition stand for several layouts, as a caption does",
    )
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--sample-steps", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads per variant")
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    variants = [parse_variant(v) for v in args.variant]
    with ProcessPoolExecutor(args.parallel, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_variant, name, ov, args) for name, ov in variants]
        rows = [f.result() for f in futures]
    keys = ["variant", "train_s", "final_loss", "sample_mse", "no_layout_mse",
            "colour", "shape", "direction", "all three"]  # fmt: skip
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
