"""Attention over a video token grid: 3D RoPE, self-attention along an axis, cross-attention.

Tokens stay in a `[B, T, H, W, D]` grid between blocks. A self-attention layer
projects q/k/v on the grid (a pointwise op), rotates q/k there with the 3D RoPE
of each token's (t, h, w) position, and only then folds the grid into the
sequences it attends over: one per frame (`space`), one per spatial position
(`time`), or the whole clip (`all`). Because RoPE is relative, rotating by the
full 3D position is correct for every axis: tokens in one frame share `t`, so
the time part of the rotation cancels in their dot products.
"""

from __future__ import annotations

import functools
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Axis = Literal["space", "time", "all"]
Grid = tuple[int, int, int]


def frequency_ladder(n: int, theta: float) -> Tensor:
    """`theta ** (-i / n)` for i < n: the geometric frequencies of RoPE and of the DiT's
    sin-cos positions (computed in float64, returned as float32)."""
    return (theta ** (-torch.arange(n, dtype=torch.float64) / max(1, n))).float()


class Rope3D(nn.Module):
    """Rotary position embedding over (t, h, w), any grid size, no parameters.

    The head's rotation pairs are shared out between the three axes (time gets
    the remainder). `theta` is small by default because our grids are small: with
    the usual 10,000 most frequencies barely turn across 8 positions.
    """

    def __init__(self, head_dim: int, theta: float = 100.0) -> None:
        super().__init__()
        pairs = head_dim // 2
        if pairs < 3:
            raise ValueError(f"3D RoPE needs head_dim >= 6, got {head_dim}")
        ph = pw = pairs // 3
        self.splits = (pairs - ph - pw, ph, pw)
        for name, n in zip("thw", self.splits, strict=True):
            self.register_buffer(f"freqs_{name}", frequency_ladder(n, theta), persistent=False)

    def forward(self, grid: Grid) -> tuple[Tensor, Tensor]:
        """cos and sin, each `[T, H, W, 1, head_dim]` (the 1 broadcasts over heads)."""
        angles = []
        for axis, (name, size) in enumerate(zip("thw", grid, strict=True)):
            freqs = getattr(self, f"freqs_{name}")
            pos = torch.arange(size, device=freqs.device, dtype=freqs.dtype)
            a = torch.outer(pos, freqs)  # [size, n]
            shape = [1, 1, 1, a.shape[-1]]
            shape[axis] = size
            angles.append(a.view(shape).expand(*grid, -1))
        theta = torch.cat(angles, dim=-1).unsqueeze(-2).repeat(1, 1, 1, 1, 2)
        return theta.cos(), theta.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate `x` `[B, T, H, W, heads, hd]`, pairing dim i with dim i + hd/2 (rotate-half
    layout: fewer, larger kernels than interleaved pairs, which matters on CPU)."""
    xf = x.float()
    x1, x2 = xf.chunk(2, dim=-1)
    out = torch.addcmul(xf * cos, torch.cat((-x2, x1), dim=-1), sin)
    return out.type_as(x)


# How a `[B, T, H, W, heads, hd]` grid is folded into `[N, heads, L, hd]` sequences.
_FOLD = {"space": (0, 1, 4, 2, 3, 5), "time": (0, 2, 3, 4, 1, 5), "all": (0, 4, 1, 2, 3, 5)}


def _fold(x: Tensor, axis: Axis) -> Tensor:
    b, t, h, w, nh, hd = x.shape
    x = x.permute(_FOLD[axis])
    if axis == "space":
        return x.reshape(b * t, nh, h * w, hd)
    if axis == "time":
        return x.reshape(b * h * w, nh, t, hd)
    return x.reshape(b, nh, t * h * w, hd)


def _unfold(x: Tensor, axis: Axis, grid_shape: tuple[int, ...]) -> Tensor:
    b, t, h, w, nh, hd = grid_shape
    folded = [b, t, h, w, nh, hd]
    folded = [folded[i] for i in _FOLD[axis]]
    inverse = [_FOLD[axis].index(i) for i in range(6)]
    return x.reshape(folded).permute(inverse)


def locality_slopes(heads: int, locality: float) -> Tensor:
    """Per-head distance penalties: locality, locality/2, ... and 0 for the last head, which
    stays global (one head is enough to carry the clip-wide context)."""
    slopes = [locality * 2.0**-i for i in range(heads - 1)] + [0.0]
    return torch.tensor(slopes if locality > 0 else [0.0] * heads)


@functools.lru_cache(maxsize=32)
def _grid_distance(sizes: tuple[int, ...], device: torch.device) -> Tensor:
    """`[L, L]` Euclidean distances, in tokens, between the positions of a grid of `sizes`.
    Cached: every layer of every step asks for the same few grids."""
    axes = [torch.arange(n, dtype=torch.float32, device=device) for n in sizes]
    pos = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(sizes))
    return torch.cdist(pos, pos)


def distance_bias(grid: Grid, axis: Axis, slopes: Tensor) -> Tensor:
    """Additive attention bias `[1, heads, L, L]`: −slope × the Euclidean distance, in
    tokens, between two positions of the folded sequence (ALiBi on the video grid)."""
    sizes = {"space": grid[1:], "time": grid[:1], "all": grid}[axis]
    return -slopes[None, :, None, None] * _grid_distance(tuple(sizes), slopes.device)[None, None]


class SelfAttention(nn.Module):
    """Multi-head self-attention along one axis of the grid, with QK-norm.

    QK-norm (RMSNorm on each head's q and k) keeps attention logits bounded, which
    lets the small models here train at a high learning rate without spikes.
    `locality` > 0 adds a distance penalty to the logits of all heads but one, so
    a fresh model already pools evidence from its neighbours (see `distance_bias`).
    """

    def __init__(self, width: int, heads: int, axis: Axis, locality: float = 0.0) -> None:
        super().__init__()
        self.heads, self.axis = heads, axis
        self.register_buffer("slopes", locality_slopes(heads, locality), persistent=False)
        self.local = locality > 0
        self.qkv = nn.Linear(width, 3 * width)
        self.q_norm = nn.RMSNorm(width // heads, eps=1e-6)
        self.k_norm = nn.RMSNorm(width // heads, eps=1e-6)
        self.proj = nn.Linear(width, width)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None) -> Tensor:
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, -1)).unbind(-3)
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        shape = q.shape
        bias = None
        if self.local:
            bias = distance_bias(tuple(shape[1:4]), self.axis, self.slopes).to(q.dtype)
        folded = (_fold(a, self.axis) for a in (q, k, v))
        out = F.scaled_dot_product_attention(*folded, attn_mask=bias)
        return self.proj(_unfold(out, self.axis, shape).flatten(-2))


class CrossAttention(nn.Module):
    """Video tokens attend to text tokens; `mask` `[B, L]` marks the valid ones."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.q_norm = nn.RMSNorm(width // heads, eps=1e-6)
        self.k_norm = nn.RMSNorm(width // heads, eps=1e-6)
        self.proj = nn.Linear(width, width)

    def forward(self, x: Tensor, context: Tensor, mask: Tensor) -> Tensor:
        b, *grid, d = x.shape
        q = self.q_norm(self.q(x.reshape(b, -1, d)).unflatten(-1, (self.heads, -1)))
        k, v = self.kv(context).unflatten(-1, (2, self.heads, -1)).unbind(-3)
        k = self.k_norm(k)
        q, k, v = (a.transpose(1, 2) for a in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        return self.proj(out.transpose(1, 2).reshape(b, *grid, d))


class MLP(nn.Module):
    def __init__(self, width: int, ratio: float) -> None:
        super().__init__()
        hidden = int(width * ratio)
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))
