"""Building blocks of the causal video autoencoder: every one is causal in time.

Causal means output frame t depends only on input frames <= t. It holds for each
block here, hence for the encoder and decoder built from them, which is what
lets frame 0 be encoded alone (an image is a 1-frame video) and lets a clip of
1 + k*f_t frames map to 1 + k latent frames exactly:

- `CausalConv3d` pads time only in front (with copies of the first frame, so
  frame 0 of a clip and the same still image give the same features);
- `FrameNorm` is GroupNorm per frame: a 5D GroupNorm would pool statistics
  over time, leaking later frames into frame 0;
- `Downsample` strides the causal conv in time, so output frame j sees input
  frames 2j-2..2j (frame 0 sees only itself);
- `Upsample` keeps latent frame 0 as one frame and doubles the others.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


def _triple(x: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return (x, x, x) if isinstance(x, int) else tuple(x)


class CausalConv3d(nn.Module):
    """Conv3d padded causally in time (replicate frame 0) and symmetrically in space (zeros).

    With kernel kt and time stride st, T frames give 1 + (T - 1) // st frames.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int | tuple[int, int, int] = 3,
        stride: int | tuple[int, int, int] = 1,
    ) -> None:
        super().__init__()
        kt, kh, kw = _triple(kernel)
        self.time_pad = kt - 1
        self.conv = nn.Conv3d(c_in, c_out, (kt, kh, kw), _triple(stride), (0, kh // 2, kw // 2))

    def forward(self, x: Tensor) -> Tensor:
        if self.time_pad:
            x = torch.cat([x[:, :, :1].expand(-1, -1, self.time_pad, -1, -1), x], dim=2)
        return self.conv(x)


class FrameNorm(nn.GroupNorm):
    """GroupNorm over (channels, H, W) of each frame separately: keeps the model causal."""

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        y = super().forward(x.transpose(1, 2).reshape(b * t, c, h, w))
        return y.reshape(b, t, c, h, w).transpose(1, 2)


def _norm(channels: int) -> FrameNorm:
    # 32 groups as in SD's VAE, fewer where the width is small.
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)
    return FrameNorm(groups, channels, eps=1e-6)


class ResBlock(nn.Module):
    """norm → SiLU → conv, twice, plus a (1x1x1 where widths differ) skip."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), CausalConv3d(c_in, c_out)
        self.norm2, self.conv2 = _norm(c_out), CausalConv3d(c_out, c_out)
        self.skip = nn.Conv3d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Downsample(nn.Module):
    """A strided causal conv: halves H and W (`space`) and/or T - 1 (`time`)."""

    def __init__(self, c_in: int, c_out: int, time: bool, space: bool) -> None:
        super().__init__()
        s = 2 if space else 1
        self.conv = CausalConv3d(c_in, c_out, 3, (2 if time else 1, s, s))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour upsampling, then a causal conv; frame 0 stays one frame."""

    def __init__(self, c_in: int, c_out: int, time: bool, space: bool) -> None:
        super().__init__()
        self.time, self.space = time, space
        self.conv = CausalConv3d(c_in, c_out)

    def forward(self, x: Tensor) -> Tensor:
        if self.time and x.shape[2] > 1:
            x = torch.cat([x[:, :, :1], x[:, :, 1:].repeat_interleave(2, dim=2)], dim=2)
        if self.space:
            b, c, t, h, w = x.shape
            x = F.interpolate(x.transpose(1, 2).reshape(b * t, c, h, w), scale_factor=2.0)
            x = x.reshape(b, t, c, 2 * h, 2 * w).transpose(1, 2)
        return self.conv(x)


def _run(block: nn.Module, x: Tensor, ckpt: bool) -> Tensor:
    if ckpt and torch.is_grad_enabled():
        return checkpoint(block, x, use_reentrant=False)
    return block(x)


class _Stack(nn.Module):
    """conv_in → layers (each optionally checkpointed) → norm, SiLU, conv_out."""

    conv_in: nn.Module
    layers: nn.ModuleList
    norm_out: nn.Module
    conv_out: nn.Module
    grad_checkpointing: bool

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for layer in self.layers:
            h = _run(layer, h, self.grad_checkpointing)
        return self.conv_out(F.silu(self.norm_out(h)))


class Encoder(_Stack):
    """Video → 2 * C_z channels (mean and log-variance) at the compressed grid.

    Level i has `blocks` ResBlocks at `widths[i]`, then a downsample to level i + 1
    that halves space while `space_steps[i]` and time while `time_steps[i]`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        widths: list[int],
        blocks: int,
        time_steps: list[bool],
        space_steps: list[bool],
    ) -> None:
        super().__init__()
        self.grad_checkpointing = False
        self.conv_in = CausalConv3d(in_channels, widths[0])
        layers: list[nn.Module] = []
        for i, width in enumerate(widths):
            c = widths[max(i - 1, 0)]
            for _ in range(blocks):
                layers.append(ResBlock(c, width))
                c = width
            if i < len(widths) - 1:
                layers.append(Downsample(width, width, time_steps[i], space_steps[i]))
        layers.append(ResBlock(widths[-1], widths[-1]))  # the "mid" block
        self.layers = nn.ModuleList(layers)
        self.norm_out = _norm(widths[-1])
        self.conv_out = CausalConv3d(widths[-1], out_channels)


class Decoder(_Stack):
    """C_z latent channels → video; the encoder's levels in reverse."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        widths: list[int],
        blocks: int,
        time_steps: list[bool],
        space_steps: list[bool],
    ) -> None:
        super().__init__()
        self.grad_checkpointing = False
        self.conv_in = CausalConv3d(in_channels, widths[-1])
        layers: list[nn.Module] = [ResBlock(widths[-1], widths[-1])]
        c = widths[-1]
        for i in reversed(range(len(widths))):
            for _ in range(blocks):
                layers.append(ResBlock(c, widths[i]))
                c = widths[i]
            if i > 0:
                # Narrowed to the next level's width: this conv runs at the finer
                # grid, where a wide one would cost the most (SD's keeps it wide).
                c = widths[i - 1]
                layers.append(Upsample(widths[i], c, time_steps[i - 1], space_steps[i - 1]))
        self.layers = nn.ModuleList(layers)
        self.norm_out = _norm(widths[0])
        self.conv_out = CausalConv3d(widths[0], out_channels)
