"""Exponential moving average of a model's weights, itself a module.

Being an `nn.Module` means the averaged copy moves with the LightningModule
between devices, lands in every checkpoint's state_dict (so resuming and
`clipmill sample` need nothing else), and is skipped by DDP because none of
its parameters require gradients.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


def warmed_decay(decay: float, updates: int) -> float:
    """The decay of the update after `updates` earlier ones: min(decay, (1 + n) / (10 + n))."""
    return min(decay, (1 + updates) / (10 + updates))


class EMA(nn.Module):
    """`shadow = decay_n * shadow + (1 - decay_n) * model`, with decay warmup.

    `decay_n = min(decay, (1 + n) / (10 + n))` after n updates: early on the
    average follows the model closely, so a short run's EMA is not stuck near
    the random init (a fixed 0.999 needs thousands of steps to forget it).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"--model.ema_decay must be in [0, 1), got {decay}")
        self.decay, self.warmup = decay, warmup
        self.shadow = copy.deepcopy(model).requires_grad_(False).eval()
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def current_decay(self) -> float:
        return warmed_decay(self.decay, int(self.num_updates)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        ema_params = list(self.shadow.parameters())
        params = [
            p.detach().to(e.dtype) for p, e in zip(model.parameters(), ema_params, strict=True)
        ]
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        for b_ema, b in zip(self.shadow.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)
        self.num_updates += 1

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.shadow(*args, **kwargs)

    def train(self, mode: bool = True) -> EMA:
        # The average is never trained; keep it in eval mode.
        super().train(mode)
        self.shadow.eval()
        return self
