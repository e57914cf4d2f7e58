"""Rectified flow: the training objective and the Euler/Heun sampler with CFG.

Convention: `x_t = (1 - t) * x0 + t * noise`, t ∈ [0, 1], t = 1 is pure noise,
and the model predicts the velocity `v = noise - x0` (so dx/dt = v and sampling
integrates from t = 1 down to t = 0); with `prediction: x` it outputs x0 instead,
which `RectifiedFlow.velocity` turns into that velocity. Nothing here knows about Lightning or
the DiT: a model is any `fn(x, t, **cond) -> v`, as with a diffusers scheduler.

Timesteps follow SD3: logit-normal during training, and both training and
sampling times are shifted toward noise by `shift = base_shift * sqrt(tokens /
base_tokens)`, because more tokens carry more redundant signal and so need more
noise to be destroyed at the same t. `base_shift` > 1 suits pixel space: flat
colours and 8 near-identical frames keep a shape readable up to t ≈ 0.8, so
unshifted training hardly ever practises the noise levels where layout is decided.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

VelocityFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class FlowConfig:
    """Timestep distribution. Every field is a `--model.flow.<field>` flag."""

    logit_mean: float = 0.0
    logit_std: float = 1.0
    base_shift: float = 3.0
    """the shift at base_tokens tokens (3 for pixel space; ~1 suits latents)"""
    base_tokens: int = 256
    """the shift grows as base_shift * sqrt(tokens / base_tokens)"""
    shift: float | None = None
    """a fixed shift instead of the token rule"""
    prediction: Literal["v", "x"] = "v"
    """what the network outputs: the velocity, or the clean sample x0 (JiT, Li & He 2025),
    turned into a velocity before the loss and the sampler, so both stay velocity-based"""
    t_min: float = 0.05
    """x-prediction divides by t (v = (x_t - x0) / t): t is clamped here first"""

    def __post_init__(self) -> None:
        if self.logit_std <= 0:
            raise ValueError("--model.flow.logit_std must be > 0")
        if self.base_tokens < 1:
            raise ValueError("--model.flow.base_tokens must be >= 1")
        if self.shift is not None and self.shift <= 0:
            raise ValueError("--model.flow.shift must be > 0")
        if self.base_shift <= 0:
            raise ValueError("--model.flow.base_shift must be > 0")
        if self.prediction not in ("v", "x"):
            raise ValueError(f"--model.flow.prediction must be v or x, got {self.prediction!r}")
        if not 0 < self.t_min < 1:
            raise ValueError("--model.flow.t_min must be in (0, 1)")


def shift_time(t: Tensor, shift: float) -> Tensor:
    """Warp t ∈ [0, 1] toward 1 (more noise) for shift > 1; fixes 0 and 1."""
    return shift * t / (1 + (shift - 1) * t)


class RectifiedFlow:
    """The objective's pieces: sample t, make x_t, the target, the (weighted) loss."""

    def __init__(self, cfg: FlowConfig | None = None) -> None:
        self.cfg = cfg or FlowConfig()

    def shift_for(self, num_tokens: int) -> float:
        if self.cfg.shift is not None:
            return self.cfg.shift
        return self.cfg.base_shift * math.sqrt(num_tokens / self.cfg.base_tokens)

    def sample_t(
        self,
        n: int,
        num_tokens: int,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> Tensor:
        """Logit-normal t, shifted for the token count: `[n]` in (0, 1)."""
        z = torch.randn(n, generator=generator, device=device)
        t = torch.sigmoid(self.cfg.logit_mean + self.cfg.logit_std * z)
        return shift_time(t, self.shift_for(num_tokens))

    def velocity(self, out: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """The velocity the network's output `out` stands for at (x_t, t)."""
        if self.cfg.prediction == "v":
            return out
        # In float32: under bf16 autocast the 1/t (up to 1/t_min) would magnify bf16's error.
        t = t.view(-1, *([1] * (x_t.dim() - 1))).float().clamp_min(self.cfg.t_min)
        return (x_t.float() - out.float()) / t

    def as_velocity(self, model: Callable[..., Tensor]) -> Callable[..., Tensor]:
        """`model(x, t, ...)` wrapped to return velocities, for `guided` and `sample`."""
        if self.cfg.prediction == "v":
            return model
        return lambda x, t, *args, **kw: self.velocity(model(x, t, *args, **kw), x, t)

    @staticmethod
    def interpolate(x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        t = t.view(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
        return torch.lerp(x0, noise, t)

    @staticmethod
    def target(x0: Tensor, noise: Tensor) -> Tensor:
        return noise - x0

    @staticmethod
    def loss(
        pred: Tensor, x0: Tensor, noise: Tensor, weight: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """(scalar loss, per-sample MSE `[B]`). A weight averages samples by it."""
        error = pred.float() - RectifiedFlow.target(x0, noise).float()
        per_sample = error.pow(2).flatten(1).mean(1)
        if weight is None:
            return per_sample.mean(), per_sample
        w = weight.to(per_sample)
        return (per_sample * w).sum() / w.sum().clamp_min(1e-8), per_sample

    def timesteps(self, steps: int, num_tokens: int, device: torch.device | str = "cpu") -> Tensor:
        """`steps + 1` sampling times from 1 to 0, shifted like training."""
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        t = torch.linspace(1.0, 0.0, steps + 1, device=device)
        return shift_time(t, self.shift_for(num_tokens))


def initial_noise(
    shape: tuple[int, ...],
    seed: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Noise for sample i drawn from seed + i on the CPU: identical on any device and
    independent of how many prompts share the batch."""
    gens = [torch.Generator().manual_seed(seed + i) for i in range(shape[0])]
    noise = torch.stack([torch.randn(shape[1:], generator=g) for g in gens])
    return noise.to(device=device, dtype=dtype)


def _cat(a: Any, b: Any) -> Any:
    if isinstance(a, Tensor):
        return torch.cat([a, b])
    if isinstance(a, Mapping):
        return {k: _cat(a[k], b[k]) for k in a}
    return a


def _same_shapes(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor):
        return isinstance(b, Tensor) and a.shape[1:] == b.shape[1:]
    if isinstance(a, Mapping):
        return (
            isinstance(b, Mapping)
            and a.keys() == b.keys()
            and all(_same_shapes(a[k], b[k]) for k in a)
        )
    return True


def guided(
    model: Callable[..., Tensor],
    cond: Mapping[str, Any],
    uncond: Mapping[str, Any],
    scale: float,
) -> VelocityFn:
    """Classifier-free guidance: `v = v_u + scale * (v_c - v_u)`.

    Scale 1 skips the unconditional pass. Conditional and unconditional inputs
    run as one batch when their shapes allow it.
    """

    def velocity(x: Tensor, t: Tensor) -> Tensor:
        if scale == 1.0:
            return model(x, t, **cond)
        if _same_shapes(cond, uncond):
            both = model(torch.cat([x, x]), torch.cat([t, t]), **_cat(cond, uncond))
            v_c, v_u = both.chunk(2)
        else:
            v_c, v_u = model(x, t, **cond), model(x, t, **uncond)
        return v_u + scale * (v_c - v_u)

    return velocity


@torch.no_grad()
def sample(
    velocity: VelocityFn,
    noise: Tensor,
    timesteps: Tensor,
    method: Literal["euler", "heun"] = "euler",
) -> Tensor:
    """Integrate dx/dt = v from timesteps[0] (≈ 1) to timesteps[-1] (0). Deterministic.

    Heun averages the slopes at both ends of a step (2 model calls), except on the
    last step into t = 0 where the end slope is undefined and Euler is used, as in EDM.
    """
    if method not in ("euler", "heun"):
        raise ValueError(f"method must be 'euler' or 'heun', got {method!r}")
    x = noise
    ones = torch.ones(x.shape[0], device=x.device)
    for t_cur, t_next in zip(timesteps[:-1].tolist(), timesteps[1:].tolist(), strict=True):
        v = velocity(x, ones * t_cur)
        x_next = x + (t_next - t_cur) * v
        if method == "heun" and t_next > 0:
            v_next = velocity(x_next, ones * t_next)
            x_next = x + (t_next - t_cur) * 0.5 * (v + v_next)
        x = x_next
    return x
