"""The families' training objectives around `Family.predict`: flow matching and DDPM v.

Flow (Wan, LTX-Video): x_t = (1 - sigma) x0 + sigma * noise, target noise - x0,
timestep 1000 * sigma (the `FlowMatchEulerDiscreteScheduler` convention both pipelines
sample with), sigma logit-normal (SD3; finetrainers' and musubi-tuner's default
`logit_normal`) or uniform, then time-shifted by the family's shift (`Family.flow_shift`).
The interpolation and the loss are train.flow's, shared with the from-scratch DiT.

v-prediction (CogVideoX): `examples/cogvideo/train_cogvideox_lora.py` in diffusers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from train.flow import RectifiedFlow, shift_time

TimestepSampling = Literal["logit_normal", "uniform"]


@dataclass(frozen=True)
class ObjectiveConfig:
    """How timesteps are drawn. Every field is a `--model.objective.<field>` flag."""

    sampling: TimestepSampling = "logit_normal"
    """flow families: logit_normal (SD3) or uniform sigma"""
    logit_mean: float = 0.0
    logit_std: float = 1.0
    shift: float | None = None
    """flow families: a fixed time shift instead of the family's (Wan: the folder's
    flow_shift; LTX-Video: exp(mu) by token count)"""

    def __post_init__(self) -> None:
        if self.sampling not in ("logit_normal", "uniform"):
            raise ValueError(
                f"--model.objective.sampling must be logit_normal or uniform, got {self.sampling!r}"
            )
        if self.logit_std <= 0:
            raise ValueError("--model.objective.logit_std must be > 0")
        if self.shift is not None and self.shift <= 0:
            raise ValueError("--model.objective.shift must be > 0")


def _sigmas(cfg: ObjectiveConfig, n: int, shift: float, generator, device) -> Tensor:
    if cfg.sampling == "uniform":
        u = torch.rand(n, generator=generator, device=device)
    else:
        z = torch.randn(n, generator=generator, device=device)
        u = torch.sigmoid(cfg.logit_mean + cfg.logit_std * z)
    return shift_time(u, shift)


def flow_loss(
    family: Any,
    transformer: torch.nn.Module,
    x0: Tensor,
    text: Tensor,
    text_mask: Tensor | None,
    cfg: ObjectiveConfig,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per-sample flow-matching MSE `[B]` for normalised latents x0 [B, C, T, H, W]."""
    shift = cfg.shift if cfg.shift is not None else family.flow_shift(tuple(x0.shape))
    sigma = _sigmas(cfg, x0.shape[0], shift, generator, x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = RectifiedFlow.interpolate(x0, noise, sigma)
    pred = family.predict(transformer, x_t, sigma * 1000.0, text, text_mask)
    return RectifiedFlow.loss(pred, x0, noise)[1]


def vpred_loss(
    family: Any,
    transformer: torch.nn.Module,
    x0: Tensor,
    text: Tensor,
    text_mask: Tensor | None,
    scheduler: Any,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per-sample weighted x0 MSE `[B]` of a v-predicting model on the DDPM schedule."""
    n = x0.shape[0]
    steps = int(scheduler.config.num_train_timesteps)
    t = torch.randint(0, steps, (n,), generator=generator, device=x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    # add_noise/get_velocity broadcast over dim 1.., layout-agnostic: [B, C, T, H, W] is fine
    x_t = scheduler.add_noise(x0, noise, t)
    v = family.predict(transformer, x_t, t, text, text_mask)
    x0_pred = scheduler.get_velocity(v, x_t, t)
    alphas = scheduler.alphas_cumprod.to(x0.device, torch.float32)[t]  # float64 in diffusers
    weights = (1.0 / (1.0 - alphas)).view(n, *([1] * (x0.dim() - 1)))
    return (weights * (x0_pred.float() - x0.float()) ** 2).flatten(1).mean(1)
