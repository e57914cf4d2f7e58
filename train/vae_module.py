"""Alias of `train.autoencoder.module`, kept for configs written before the layout move.

LightningCLI saves each run's `config.yaml` with the model's `class_path`; autoencoder
runs made before the move name `train.vae_module.VideoAutoencoderModule`, and
`--config run/config.yaml` must still resolve it. New configs use the new path.
"""

from train.autoencoder.module import VideoAutoencoderModule

__all__ = ["VideoAutoencoderModule"]
