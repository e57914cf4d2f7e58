"""`LatentCodec`: what the latent pipeline needs of an autoencoder, ours or a diffusers one.

The bottom of `train.autoencoder`: our VAE (`model`) and the diffusers wrapper
(`diffusers_vae`) both implement it, and `io.load_autoencoder` chooses between them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch
from torch import Tensor, nn

LOGVAR_RANGE = (-30.0, 20.0)  # as in SD's DiagonalGaussianDistribution: exp() stays finite


class LatentCodec(nn.Module):
    """What the latent pipeline needs of an autoencoder (ours or a diffusers wrapper)."""

    latent_channels: int
    temporal_compression: int
    spatial_compression: int

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("latent_scale", torch.ones(()))
        self.register_buffer("latent_shift", torch.zeros(()))

    @property
    def scaling_factor(self) -> float:
        return float(self.latent_scale)

    @scaling_factor.setter
    def scaling_factor(self, value: float) -> None:
        self.latent_scale.fill_(float(value))

    @property
    def shift_factor(self) -> float:
        return float(self.latent_shift)

    @shift_factor.setter
    def shift_factor(self, value: float) -> None:
        self.latent_shift.fill_(float(value))

    def encode(self, video: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def decode(self, latents: Tensor) -> Tensor:
        raise NotImplementedError

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(C_z, T', H', W') of the latent of a `frames` x `height` x `width` clip."""
        self.check_input(frames, height, width)
        ft, fs = self.temporal_compression, self.spatial_compression
        return (self.latent_channels, 1 + (frames - 1) // ft, height // fs, width // fs)

    def check_input(self, frames: int, height: int, width: int) -> None:
        """ValueError unless frames = 1 + k*f_t and H, W are multiples of f_s."""
        ft, fs = self.temporal_compression, self.spatial_compression
        if frames < 1 or (frames - 1) % ft:
            raise ValueError(f"frame count must be 1 + k*{ft} for this autoencoder, got {frames}")
        if height % fs or width % fs:
            raise ValueError(
                f"height and width must be multiples of {fs} for this autoencoder, "
                f"got {height}x{width}"
            )

    def check_video(self, video: Tensor) -> None:
        """ValueError unless `video` is [B, C, T, H, W] with a shape this codec takes."""
        if video.dim() != 5:
            raise ValueError(f"expected a video [B, C, T, H, W], got shape {tuple(video.shape)}")
        self.check_input(*video.shape[2:])

    def check_latents(self, latents: Tensor) -> None:
        """ValueError unless `latents` is [B, C_z, T', H', W'] for this codec."""
        if latents.dim() != 5 or latents.shape[1] != self.latent_channels:
            raise ValueError(
                f"expected latents [B, {self.latent_channels}, T, H, W], "
                f"got shape {tuple(latents.shape)}"
            )

    def config_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def fingerprint(self) -> str:
        """16 hex digits of SHA-256 over the config and every tensor of the state dict."""
        h = hashlib.sha256(json.dumps(self.config_dict(), sort_keys=True).encode())
        for name, tensor in sorted(self.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]
