"""Scaffolding shared by the training tests: tiny shards, a tiny VAE, a quiet Trainer.

Test modules run with `--import-mode=importlib` and cannot import each other, so
each helper is handed out by a fixture that returns it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

# Tiny, shared by the cache tests: 1 + k*2 frames of multiples of 4 px -> 4 latent channels.
TINY_VAE = dict(latent_channels=4, temporal_compression=2, spatial_compression=4, base_width=8)

# (key, uint8 video [T, H, W, 3] or mp4 bytes, clip record)
Sample = tuple[str, np.ndarray | bytes, dict[str, Any]]


def write_shards(out: Path, samples: Iterable[Sample], fps: float, max_samples: int) -> str:
    """Write `(key, video, record)` samples with the curation's ShardWriter; returns the glob.

    `video` is uint8 `[T, H, W, 3]` (encoded here at `fps`) or mp4 bytes as they are (a
    corrupt sample, or a clip encoded once for many samples); the txt field is the record's
    caption, as the curation writes it.
    """
    from schemas.shards import ShardWriter
    from train.data.video_io import encode_mp4

    with ShardWriter(out, max_samples=max_samples) as writer:
        for key, video, record in samples:
            mp4 = video if isinstance(video, bytes) else encode_mp4(video, fps)
            writer.write(key, {"mp4": mp4, "txt": record["caption"] or "", "json": record})
    return str(Path(out) / "*.tar")


@pytest.fixture(scope="session")
def shard_writer() -> Callable[..., str]:
    """`write_shards(out, samples, fps, max_samples) -> glob` (above)."""
    return write_shards


def make_tiny_vae(seed: int = 0):
    """A random VideoAutoencoder of the TINY_VAE shape, in eval mode, seeded."""
    from train.autoencoder.model import AutoencoderConfig, VideoAutoencoder

    torch.manual_seed(seed)
    return VideoAutoencoder(AutoencoderConfig(**TINY_VAE)).eval()


@pytest.fixture(scope="session")
def tiny_vae() -> Callable[..., Any]:
    """`tiny_vae(seed=0) -> VideoAutoencoder` (above)."""
    return make_tiny_vae


def make_trainer(**overrides: Any):
    """A CPU Lightning Trainer with no logger, checkpoints, bars, summary or sanity check."""
    import lightning as L

    args = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    return L.Trainer(**{**args, **overrides})


@pytest.fixture(scope="session")
def trainer() -> Callable[..., Any]:
    """`trainer(**overrides) -> L.Trainer` (above)."""
    return make_trainer


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module: tiny convolutions are dominated by OpenMP hand-offs,
    and on a busy 2-core box one thread is several times faster than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def read_scalars_and_images(root: Path) -> tuple[set[str], set[str]]:
    """(scalar tags, image tags) of every TensorBoard event file under `root`."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: set[str] = set()
    images: set[str] = set()
    for events in sorted(root.glob("**/events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"images": 0, "scalars": 0})
        acc.Reload()
        tags = acc.Tags()
        scalars |= set(tags["scalars"])
        images |= set(tags["images"])
    return scalars, images


@pytest.fixture(scope="session")
def logged_tags() -> Callable[[Path], tuple[set[str], set[str]]]:
    """`logged_tags(root) -> (scalar tags, image tags)` of the TensorBoard logs under root."""
    return read_scalars_and_images
