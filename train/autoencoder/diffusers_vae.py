"""A pretrained diffusers autoencoder behind `LatentCodec`'s API (`diffusers:<folder>`).

Supported: `AutoencoderKLCogVideoX`, `AutoencoderKLWan`, `AutoencoderKLLTXVideo` (causal
video VAEs) and the image `AutoencoderKL` (applied frame by frame, so f_t = 1). The folder is what
`save_pretrained` writes (config.json + weights); nothing is fetched.

Normalisation: a per-channel `latents_mean`/`latents_std` in the config (Wan, some
image VAEs) or in the model's buffers (LTX-Video) is folded into encode/decode, i.e.
this wrapper's latent is already `(z - mean_c) / std_c`; the scalar
`scaling_factor`/`shift_factor` of the config become the wrapper's, so
`(z - shift) * scale` is what diffusers' pipelines feed their denoisers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from train.autoencoder.codec import LOGVAR_RANGE, LatentCodec

SUPPORTED = ("AutoencoderKLCogVideoX", "AutoencoderKLWan", "AutoencoderKLLTXVideo", "AutoencoderKL")


def _class_name(folder: Path) -> str:
    config = folder / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"diffusers:{folder}: no config.json (a save_pretrained folder)")
    name = json.loads(config.read_text(encoding="utf-8")).get("_class_name")
    if name not in SUPPORTED:
        raise ValueError(f"diffusers:{folder}: _class_name {name!r} is not one of {SUPPORTED}")
    return name


def load_diffusers(folder: str) -> DiffusersAutoencoder:
    """Wrap the autoencoder saved in `folder` (offline: a local folder only)."""
    import diffusers  # imported late: only this path needs it

    path = Path(folder).expanduser()
    name = _class_name(path)
    vae = getattr(diffusers, name).from_pretrained(
        str(path), local_files_only=True, low_cpu_mem_usage=False
    )
    return DiffusersAutoencoder(vae)


def compression(name: str, cfg: Mapping[str, Any]) -> tuple[int, int]:
    """(f_t, f_s) of VAE class `name` from its config (a config.json or `vae.config`), from
    the architecture, not from scale_factor_* fields that may disagree. The fine-tuning
    families read it from the folder without loading the VAE."""
    if name == "AutoencoderKLWan":
        down = list(cfg["temperal_downsample"])
        return 2 ** sum(bool(d) for d in down), 2 ** len(down) * (cfg.get("patch_size") or 1)
    if name == "AutoencoderKLLTXVideo":  # as the model computes them: patch x 2^(scalings)
        steps = sum(bool(s) for s in cfg["spatio_temporal_scaling"])
        return cfg.get("patch_size_t", 1) * 2**steps, cfg.get("patch_size", 4) * 2**steps
    spatial = 2 ** (len(cfg["block_out_channels"]) - 1)
    if name == "AutoencoderKLCogVideoX":
        return int(cfg["temporal_compression_ratio"]), spatial
    return 1, spatial


class DiffusersAutoencoder(LatentCodec):
    """encode → (mean, logvar) of the posterior; decode → video; both `[B, C, T, H, W]`."""

    def __init__(self, vae: Any) -> None:
        super().__init__()
        self.vae = vae
        cfg = vae.config
        self.frame_wise = type(vae).__name__ == "AutoencoderKL"  # an image VAE
        self.temporal_compression, self.spatial_compression = compression(
            type(vae).__name__, vae.config
        )
        self.latent_channels = int(getattr(cfg, "z_dim", None) or cfg.latent_channels)
        mean, std = getattr(cfg, "latents_mean", None), getattr(cfg, "latents_std", None)
        buffers = dict(vae.named_buffers())  # not getattr: diffusers warns on config names
        if mean is None and "latents_mean" in buffers:  # LTX-Video keeps them as buffers
            mean, std = buffers["latents_mean"].tolist(), buffers["latents_std"].tolist()
        per_channel = mean is not None and std is not None
        shape = (1, self.latent_channels, 1, 1, 1)
        self.register_buffer(
            "channel_mean",
            torch.tensor(mean if per_channel else 0.0)
            .reshape(-1)
            .expand(self.latent_channels)
            .reshape(shape)
            .clone(),
        )
        self.register_buffer(
            "channel_std",
            torch.tensor(std if per_channel else 1.0)
            .reshape(-1)
            .expand(self.latent_channels)
            .reshape(shape)
            .clone(),
        )
        self.scaling_factor = float(getattr(cfg, "scaling_factor", None) or 1.0)
        self.shift_factor = float(getattr(cfg, "shift_factor", None) or 0.0)

    def config_dict(self) -> dict[str, Any]:
        config = json.loads(json.dumps(dict(self.vae.config), default=str))
        return {"kind": "diffusers", "class": type(self.vae).__name__, **config}

    def _frames_to_batch(self, x: Tensor) -> Tensor:
        return x.transpose(1, 2).flatten(0, 1)  # [B, C, T, H, W] → [B*T, C, H, W]

    def _batch_to_frames(self, x: Tensor, b: int) -> Tensor:
        return x.unflatten(0, (b, -1)).transpose(1, 2)

    def encode(self, video: Tensor) -> tuple[Tensor, Tensor]:
        """`[B, 3, T, H, W]` in [-1, 1] → (mean, logvar), each `[B, C_z, T', H', W']`."""
        self.check_video(video)
        x = self._frames_to_batch(video) if self.frame_wise else video
        dist = self.vae.encode(x.to(self.vae.dtype)).latent_dist
        mean, logvar = dist.mean.float(), dist.logvar.float()
        if self.frame_wise:
            mean, logvar = (self._batch_to_frames(t, video.shape[0]) for t in (mean, logvar))
        mean = (mean - self.channel_mean) / self.channel_std
        logvar = logvar - 2 * torch.log(self.channel_std)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def decode(self, latents: Tensor) -> Tensor:
        """`[B, C_z, T', H', W']` → `[B, 3, 1 + (T'-1)*f_t, H'*f_s, W'*f_s]`, about [-1, 1]."""
        self.check_latents(latents)
        z = latents * self.channel_std + self.channel_mean
        x = self._frames_to_batch(z) if self.frame_wise else z
        out = self.vae.decode(x.to(self.vae.dtype)).sample.float()
        return self._batch_to_frames(out, latents.shape[0]) if self.frame_wise else out
