"""The video autoencoder: a causal 3D-conv VAE (`load_autoencoder` in `train.autoencoder.io`).

Videos are `[B, 3, T, H, W]` in [-1, 1]. The encoder returns a diagonal
Gaussian posterior (mean, logvar) over `[B, C_z, 1 + (T-1)//f_t, H/f_s, W/f_s]`
latents; the decoder maps latents back. Every layer is causal in time (see
`train.autoencoder.blocks`), so frame 0 is encoded alone: a still image is a
1-frame video, and valid frame counts are 1 + k*f_t.

The denoiser sees `(z - shift_factor) * scaling_factor`. Both factors are
buffers of the model, so they travel in its state dict and its fingerprint:
`train.autoencoder.module.VideoAutoencoderModule` tracks them during training as a
running mean and 1/std of sampled latents (no pass after fit is needed; the
checkpoint always holds the current values).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from train.autoencoder.blocks import Decoder, Encoder
from train.autoencoder.codec import LOGVAR_RANGE, LatentCodec

# A fresh encoder's log-variance starts here, not at 0: unit posterior noise would
# drown the untrained latent, and with a small KL weight it only shrinks slowly.
# (Overfitting two 5x16x16 clips: 25 dB at step 200 this way, ~280 from 0.)
INIT_LOGVAR = -6.0


def _log2(value: int, flag: str) -> int:
    if value < 1 or value & (value - 1):
        raise ValueError(f"{flag} must be a power of 2 (1, 2, 4, ...), got {value}")
    return int(math.log2(value))


@dataclass(frozen=True)
class AutoencoderConfig:
    """Shape of the causal VAE (`--model.autoencoder.*`).

    Args:
        latent_channels: C_z, channels of the latent.
        temporal_compression: f_t, a power of 2: T = 1 + k*f_t frames → 1 + k latent frames.
        spatial_compression: f_s, a power of 2: H, W must be multiples of it.
        base_width: channels of the first level.
        channel_mult: width of level i = base_width * channel_mult[i]; one entry per
            level, levels = 1 + log2(max(f_t, f_s)). None = 1, 2, 4, 4, ...
        blocks_per_level: ResBlocks per level in the encoder and the decoder.
        grad_checkpointing: recompute block activations in the backward pass.
    """

    in_channels: int = 3
    latent_channels: int = 4
    temporal_compression: int = 4
    spatial_compression: int = 8
    base_width: int = 32
    channel_mult: tuple[int, ...] | None = None
    blocks_per_level: int = 1
    grad_checkpointing: bool = False

    def __post_init__(self) -> None:
        flag = "--model.autoencoder"
        ft = _log2(self.temporal_compression, f"{flag}.temporal_compression")
        fs = _log2(self.spatial_compression, f"{flag}.spatial_compression")
        for name in ("in_channels", "latent_channels", "base_width", "blocks_per_level"):
            if getattr(self, name) < 1:
                raise ValueError(f"{flag}.{name} must be >= 1, got {getattr(self, name)}")
        levels = 1 + max(ft, fs)
        if self.channel_mult is not None:
            if len(self.channel_mult) != levels or min(self.channel_mult) < 1:
                raise ValueError(
                    f"{flag}.channel_mult needs {levels} positive entries "
                    f"(1 + log2(max(f_t, f_s))), got {list(self.channel_mult)}"
                )
            object.__setattr__(self, "channel_mult", tuple(self.channel_mult))

    @property
    def widths(self) -> list[int]:
        levels = 1 + max(_log2(self.temporal_compression, ""), _log2(self.spatial_compression, ""))
        mult = self.channel_mult or tuple(min(2**i, 4) for i in range(levels))
        return [self.base_width * m for m in mult]

    def steps(self) -> tuple[list[bool], list[bool]]:
        """Which downsamples halve time and which halve space.

        Time is halved at the first log2(f_t) downsamples (as CogVideoX does): the
        big early levels then run on fewer frames, the cheapest choice on a CPU.
        """
        n = len(self.widths) - 1
        ft, fs = _log2(self.temporal_compression, ""), _log2(self.spatial_compression, "")
        return [i < ft for i in range(n)], [i < fs for i in range(n)]


class VideoAutoencoder(LatentCodec):
    """The causal 3D-conv VAE of `AutoencoderConfig`."""

    def __init__(self, cfg: AutoencoderConfig | dict[str, Any] | None = None) -> None:
        super().__init__()
        cfg = cfg if isinstance(cfg, AutoencoderConfig) else AutoencoderConfig(**(cfg or {}))
        self.cfg = cfg
        self.latent_channels = cfg.latent_channels
        self.temporal_compression = cfg.temporal_compression
        self.spatial_compression = cfg.spatial_compression
        time_steps, space_steps = cfg.steps()
        args = (cfg.widths, cfg.blocks_per_level, time_steps, space_steps)
        self.encoder = Encoder(cfg.in_channels, 2 * cfg.latent_channels, *args)
        self.decoder = Decoder(cfg.latent_channels, cfg.in_channels, *args)
        with torch.no_grad():
            self.encoder.conv_out.conv.bias[cfg.latent_channels :].fill_(INIT_LOGVAR)
        self.set_grad_checkpointing(cfg.grad_checkpointing)

    def set_grad_checkpointing(self, on: bool = True) -> None:
        self.encoder.grad_checkpointing = self.decoder.grad_checkpointing = on

    def config_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self.cfg)
        d.pop("grad_checkpointing")  # how it trains, not what it computes
        return {"kind": "clipmill", **d}

    def encode(self, video: Tensor) -> tuple[Tensor, Tensor]:
        """`[B, 3, T, H, W]` in [-1, 1] → (mean, logvar), each `[B, C_z, T', H', W']`."""
        self.check_video(video)
        mean, logvar = self.encoder(video).chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def decode(self, latents: Tensor) -> Tensor:
        """`[B, C_z, T', H', W']` → `[B, 3, 1 + (T'-1)*f_t, H'*f_s, W'*f_s]`, about [-1, 1]."""
        self.check_latents(latents)
        return self.decoder(latents)

    def forward(self, video: Tensor, generator: torch.Generator | None = None) -> tuple:
        """(reconstruction, mean, logvar) through a posterior sample."""
        mean, logvar = self.encode(video)
        z = sample_posterior(mean, logvar, generator)
        return self.decode(z), mean, logvar


def sample_posterior(mean: Tensor, logvar: Tensor, generator: torch.Generator | None = None):
    """z = mean + std * eps."""
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + torch.exp(0.5 * logvar) * eps


def kl_divergence(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) per latent element, averaged."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
