"""The denoiser's optimizer: AdamW, or Muon on the hidden matrices with AdamW for the rest.

Muon (Jordan et al. 2024) orthogonalises each weight matrix's momentum before the update,
so every direction of a matrix learns at the same rate. It is meant for the hidden layers
only: embeddings, the output layer, biases, norms and tables stay on AdamW. Moonshot's rule
(Liu et al. 2025, "Muon is scalable") scales Muon's update to AdamW's RMS, so one
`--model.lr` and `--model.weight_decay` serve both halves.

Not torch.optim.Muon: it runs its Newton-Schulz iteration in bfloat16, which a CPU without
bf16 matrix units runs far slower than float32 (1.4 s against a 0.7 s training step of
`make demo`'s DiT on 2 cores). Here the iteration runs in float32 on CPU and bfloat16 on
CUDA, on all matrices of one shape at once.

Lightning takes one optimizer per LightningModule in automatic optimisation, so `MuonAdamW`
presents the two as one: the same param-group dicts (an LR scheduler scales both), one
`step`, one `state_dict`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal, get_args

import torch
from torch import Tensor

OptimizerKind = Literal["adamw", "muon"]
OPTIMIZERS: tuple[str, ...] = get_args(OptimizerKind)
# Where Muon applies: the DiT's transformer blocks and the hourglass's merge/split
# projections. Everything else is an input or output map (patch, time, micro and text
# embeddings; the final layer), which Muon's authors leave to AdamW.
MUON_PREFIXES = ("blocks.", "hourglass.")


def _is_table(name: str) -> bool:
    """Learned null embeddings and position tables: no weight decay, no Muon."""
    return "null" in name or "pos." in name


def split_params(
    named: Iterable[tuple[str, Tensor]], weight_decay: float, muon: bool
) -> tuple[list[Tensor], list[dict[str, Any]]]:
    """(Muon's matrices, AdamW's groups): decay on matrices only, none on biases/norms/tables."""
    matrices, decay, no_decay = [], [], []
    for name, p in named:
        if not p.requires_grad:
            continue
        is_matrix = p.dim() >= 2 and not _is_table(name)
        if muon and p.dim() == 2 and name.startswith(MUON_PREFIXES):
            matrices.append(p)
        else:
            (decay if is_matrix else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return matrices, [g for g in groups if g["params"]]


# Newton-Schulz's quintic coefficients (Jordan et al.): the fastest slope at zero that
# still lands every singular value in roughly [0.7, 1.2] in five steps.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(g: Tensor, steps: int = 5) -> Tensor:
    """[N, A, B] matrices → their nearest semi-orthogonal matrices (approximately: U V^T)."""
    a, b, c = NS_COEFFICIENTS
    x = g.to(torch.bfloat16 if g.is_cuda else torch.float32)
    tall = x.size(-2) > x.size(-1)
    if tall:  # iterate on the wide side: its Gram matrix is the smaller one
        x = x.mT
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=1e-7)
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.mT if tall else x).to(g.dtype)


class Muon(torch.optim.Optimizer):
    """Muon for 2-D weights: Nesterov momentum, orthogonalised, AdamW-matched RMS."""

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        weight_decay: float = 0.0,
        momentum: float = 0.95,
        ns_steps: int = 5,
    ) -> None:
        defaults = {
            "lr": lr,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "ns_steps": ns_steps,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() != 2:
                    raise ValueError(f"Muon takes 2-D weights only, got shape {tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            by_shape: dict[torch.Size, list[tuple[Tensor, Tensor]]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - group["momentum"])
                by_shape.setdefault(p.shape, []).append((p, p.grad.lerp(buf, group["momentum"])))
            for shape, items in by_shape.items():
                updates = orthogonalize(torch.stack([u for _, u in items]), group["ns_steps"])
                scale = group["lr"] * 0.2 * math.sqrt(max(shape))
                for (p, _), u in zip(items, updates, strict=True):
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                    p.add_(u, alpha=-scale)
        return loss


class MuonAdamW(torch.optim.Optimizer):
    """`Muon` on `matrices`, torch.optim.AdamW on `groups`, as one optimizer."""

    def __init__(
        self,
        matrices: list[Tensor],
        groups: list[dict[str, Any]],
        lr: float,
        weight_decay: float,
        betas: tuple[float, float] = (0.9, 0.99),
        momentum: float = 0.95,
    ) -> None:
        if not matrices:
            raise ValueError("--model.optimizer muon: the model has no hidden matrices for Muon")
        self.muon = Muon(matrices, lr=lr, weight_decay=weight_decay, momentum=momentum)
        self.adamw = torch.optim.AdamW(groups, lr=lr, betas=betas)
        # The children's own group dicts (add_param_group keeps them), so whatever sets
        # a group's lr here (the LR scheduler) sets the child's too.
        super().__init__(self.muon.param_groups + self.adamw.param_groups, {})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = self.muon.step(closure)  # evaluates the closure once, for both
        self.adamw.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none)
        self.adamw.zero_grad(set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if set(state_dict) != {"muon", "adamw"}:
            raise ValueError(
                "this checkpoint's optimizer state is not Muon + AdamW; resume with the "
                "--model.optimizer it was trained with"
            )
        self.muon.load_state_dict(state_dict["muon"])
        self.adamw.load_state_dict(state_dict["adamw"])


def check_optimizer(kind: str) -> None:
    """Fail at start on an unknown `--model.optimizer`."""
    if kind not in OPTIMIZERS:
        raise ValueError(f"--model.optimizer must be one of {', '.join(OPTIMIZERS)}, got {kind!r}")


def check_resume(saved: str, kind: str) -> None:
    """A checkpoint's optimizer state fits only the optimizer that wrote it."""
    if saved != kind:
        raise ValueError(
            f"--model.optimizer {kind}: this checkpoint was trained with {saved}; "
            f"resume with --model.optimizer {saved}"
        )


def build_optimizer(
    kind: str,
    named: Iterable[tuple[str, Tensor]],
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    fsdp: bool = False,
) -> torch.optim.Optimizer:
    """The optimizer `--model.optimizer` names, over a model's named parameters."""
    check_optimizer(kind)
    if kind == "muon" and fsdp:
        # FSDP hands each rank flat shards; Newton-Schulz needs whole matrices.
        raise ValueError("--model.optimizer muon needs whole matrices: use DDP, not FSDP")
    matrices, groups = split_params(named, weight_decay, muon=kind == "muon")
    if kind == "muon":
        return MuonAdamW(matrices, groups, lr=lr, weight_decay=weight_decay, betas=betas)
    return torch.optim.AdamW(groups, lr=lr, betas=betas)
