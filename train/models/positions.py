"""Absolute token positions for the DiT: learned per-axis tables, or fixed sin-cos features.

(RoPE, the relative scheme, lives with the attention in `attention.py`.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from train.models.attention import Grid, frequency_ladder


class LearnedPos(nn.Module):
    """Separate learned tables for t, h and w, summed; interpolated past their size."""

    def __init__(self, width: int, max_grid: tuple[int, int, int]) -> None:
        super().__init__()
        self.tables = nn.ParameterList(nn.Parameter(torch.randn(n, width) * 0.02) for n in max_grid)

    def forward(self, grid: Grid) -> Tensor:
        out = 0
        for axis, (table, n) in enumerate(zip(self.tables, grid, strict=True)):
            if n > table.shape[0]:
                table = F.interpolate(table.T[None], size=n, mode="linear", align_corners=True)[0].T
            shape = [1, 1, 1, table.shape[-1]]
            shape[axis] = n
            out = out + table[:n].view(shape)
        return out


class SinCosPos(nn.Module):
    """Fixed absolute (t, h, w) positions: sin-cos features of each axis in its share of width.

    RoPE alone is relative: a token can tell where another is, not where it is. At high
    noise the input carries no layout, so "a square at the left in the first frame, at the
    right in the last" must come from absolute positions; learning them from the grid's
    edges through attention is slow (`benchmarks/bench_layout.py`). No parameters, so any
    grid size works and checkpoints are unchanged.
    """

    def __init__(self, width: int, theta: float) -> None:
        super().__init__()
        dt = width // 4 // 2 * 2
        dh = (width - dt) // 2 // 2 * 2
        self.dims = (dt, dh, width - dt - dh)
        self.theta = theta

    def _axis(self, n: int, dim: int, device: torch.device) -> Tensor:
        freqs = frequency_ladder(dim // 2, self.theta).to(device)
        a = torch.outer(torch.arange(n, device=device, dtype=torch.float32), freqs)
        out = torch.cat([a.sin(), a.cos()], dim=-1)
        return F.pad(out, (0, dim - out.shape[-1]))  # an odd share gets a zero column

    def forward(self, grid: Grid, device: torch.device) -> Tensor:
        """`[T', H', W', width]`."""
        parts = []
        for axis, (n, dim) in enumerate(zip(grid, self.dims, strict=True)):
            shape = [1, 1, 1, dim]
            shape[axis] = n
            parts.append(self._axis(n, dim, device).view(shape).expand(*grid, dim))
        return torch.cat(parts, dim=-1)
