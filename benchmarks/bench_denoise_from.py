"""From which noise level does a trained model lose colour, shape and direction?

Takes real training samples (as `bench_data_ceiling.py` draws them), noises each to t0 with
the flow's own interpolation, integrates the trained model from t0 down to 0 (SDEdit), and
scores the result with the shapes checker against the sample's caption. t0 = 1 is ordinary
sampling from noise; a small t0 keeps the layout and asks only for the details. Where the
figures fall between two t0 says which part of generation the model has not learned yet:
layout (high t) or details (low t). CFG scales are compared at every t0.

    python benchmarks/bench_denoise_from.py --demo /tmp/d --ckpt RUN/checkpoints/last.ckpt \\
        --span clip --t0 0.3 0.5 0.7 0.85 1.0 --cfg 1 4

Prints a markdown table: t0, CFG, colour / shape / direction / all three / persistence.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_data_ceiling import add_data_args, percent, score_videos, training_data  # noqa: E402

from pipeline.synthetic.evaluate import ATTRIBUTES  # noqa: E402
from train.flow import guided, sample  # noqa: E402
from train.module import VideoDiffusion  # noqa: E402

COLUMNS = (*ATTRIBUTES, "all_three", "persistence")


def times_from(full: torch.Tensor, t0: float) -> torch.Tensor:
    """The sampler's schedule `full` (from 1 to 0), cut to start at t0."""
    return torch.cat([torch.tensor([t0]), full[full < t0 - 1e-6]])


@torch.no_grad()
def denoise_from(
    model: VideoDiffusion, x0: torch.Tensor, captions: list[str], t0: float, cfg: float, steps: int
) -> torch.Tensor:
    """x0 noised to t0 (fixed noise, seed 1) and integrated back to t = 0 with the EMA model."""
    states, mask = model.encoder(captions)
    cond = {"text_states": states, "text_mask": mask, "micro": {}}
    uncond = {**cond, "text_mask": torch.zeros_like(mask)}
    velocity = guided(model.ema.shadow, cond, uncond, cfg)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    x_t = model.flow.interpolate(x0, noise, torch.full((len(captions),), t0))
    full = model.flow.timesteps(steps, model.dit.num_tokens(x0.shape))
    return sample(velocity, x_t, times_from(full, t0)).clamp(-1, 1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_args(p)
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--samples", type=int, default=48, help="training samples (one batch)")
    p.add_argument("--t0", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.85, 1.0])
    p.add_argument("--cfg", type=float, nargs="+", default=[1.0, 4.0])
    p.add_argument("--steps", type=int, default=20, help="sampler steps over the full [1, 0]")
    args = p.parse_args()
    torch.manual_seed(0)
    model = VideoDiffusion.load_from_checkpoint(args.ckpt, map_location="cpu").eval()
    batch = next(iter(training_data(args, batch_size=args.samples).train_dataloader()))
    x0, captions = batch["video"], batch["caption"]
    print("| t0 | CFG | " + " | ".join(COLUMNS) + " |\n|---|---|" + "---|" * len(COLUMNS))
    data = percent(score_videos(x0, captions))
    print("| data | - | " + " | ".join(f"{data[c]:.0f}%" for c in COLUMNS) + " |")
    for t0 in args.t0:
        for cfg in args.cfg:
            out = denoise_from(model, x0, captions, t0, cfg, args.steps)
            row = percent(score_videos(out, captions))
            cells = " | ".join(f"{row[c]:.0f}%" for c in COLUMNS)
            print(f"| {t0:g} | {cfg:g} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
