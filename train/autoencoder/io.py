"""Load an autoencoder (our checkpoint or `diffusers:<folder>`) and save ours.

Above both implementations: the one place that dispatches on the spec's form.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from train.autoencoder.codec import LatentCodec
from train.autoencoder.model import AutoencoderConfig, VideoAutoencoder


def load_autoencoder(spec: str, device: str = "cpu") -> LatentCodec:
    """An autoencoder in eval mode with frozen weights, from `spec`.

    `spec` is a `.ckpt` written by `clipmill train fit --config configs/train/vae_tiny.yaml`
    (read with `torch.load(weights_only=True)`), or `diffusers:<local folder>` holding an
    `AutoencoderKLCogVideoX`, `AutoencoderKLWan` or `AutoencoderKL` saved with
    `save_pretrained` (wrapped to this API; see `train.autoencoder.diffusers_vae`).
    """
    if spec.startswith("diffusers:"):
        from train.autoencoder.diffusers_vae import load_diffusers

        model = load_diffusers(spec.removeprefix("diffusers:"))
    else:
        model = _load_ckpt(spec)
    model = model.to(device).eval()
    model.requires_grad_(False)
    return model


def save_autoencoder(model: VideoAutoencoder, path: str | Path) -> str:
    """Write `model` in the checkpoint layout `_load_ckpt` reads (and `clipmill train fit
    --config configs/train/vae_tiny.yaml` writes): for tests, benchmarks and conversions."""
    state = {f"autoencoder.{k}": v for k, v in model.state_dict().items()}
    hp = {"autoencoder": dataclasses.asdict(model.cfg)}
    torch.save({"state_dict": state, "hyper_parameters": hp}, path)
    return str(path)


def _load_ckpt(path: str) -> VideoAutoencoder:
    if not Path(path).is_file():
        raise FileNotFoundError(f"autoencoder checkpoint not found: {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    cfg = (ckpt.get("hyper_parameters") or {}).get("autoencoder")
    if cfg is None:
        raise ValueError(
            f"{path} is not an autoencoder checkpoint (no hyper_parameters.autoencoder); "
            "train one with `clipmill train fit --config configs/train/vae_tiny.yaml`"
        )
    model = VideoAutoencoder(AutoencoderConfig(**cfg))
    prefix = "autoencoder."
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    model.load_state_dict(state)
    return model
