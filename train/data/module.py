"""`VideoDataModule`: `--data.*` for LightningCLI; picks the reader from `--data.kind`.

mp4 shards go through `train.data.datasets` and `train.data.loaders` (and
`train.data.stills` when images are mixed in); a latent cache goes through
`train.cache.latent`. How the shards are read and split among ranks is written
in `train.data.datasets`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import fields
from typing import Any, Literal

import lightning as L
import webdataset as wds

from train.data.augment import (
    DEFAULT_FLIP_PAIRS,
    SampleConfig,
)
from train.data.datasets import LOADER_MINIMUMS, Mode, check_options, make_dataset
from train.data.loaders import VideoLoader

log = logging.getLogger(__name__)


def _check_kind(
    kind: str, shards: Any, cache: str | None, image_ratio: float, mode: str, images: str | None
) -> None:
    if kind not in ("mp4", "latents"):
        raise ValueError(f"--data.kind must be 'mp4' or 'latents', got {kind!r}")
    if kind == "mp4" and not shards:
        raise ValueError("--data.shards is required with --data.kind mp4")
    if kind == "latents" and not cache:
        raise ValueError("--data.cache is required with --data.kind latents")
    if not 0 <= image_ratio < 1:
        raise ValueError(f"--data.image_ratio must be in [0, 1), got {image_ratio}")
    if image_ratio > 0 and mode != "resampled":
        raise ValueError("--data.image_ratio needs --data.mode resampled")
    if image_ratio > 0 and kind == "mp4" and not images:
        raise ValueError("--data.image_ratio with --data.kind mp4 needs --data.images (a folder)")


class VideoDataModule(L.LightningDataModule):
    """Video clips from WebDataset shards for LightningCLI (`--data.*`).

    Batches: video float32 [B, C, T, H, W] in [-1, 1]; caption list[str]; fps
    (rate of the sampled frames), motion_score, clip_score, aesthetic (NaN
    when unknown), weight (sample_weight, else 1) as float [B]; key list[str].
    Corrupt samples are skipped and counted in `stats`.

    Args:
        shards: training shards: paths, a directory, a glob or a brace
            pattern (`out/shards/shard-{000000..000009}.tar`), or a list of them.
        val_shards: validation shards (read once per validation, in order,
            without augmentation); None for no validation.
        num_frames: frames per sample.
        size: crop size, an int for a square or (height, width); clips are
            scaled to cover it (aspect kept), then cropped.
        fps: sample frames at this rate from each clip's own rate (never
            faster than the clip). Excludes frame_stride.
        frame_stride: take every n-th frame. None with fps None: consecutive.
            A clip too short for the span gets a smaller stride (reported in
            the batch's fps); one shorter than num_frames repeats its last frame.
        span_s: spread the frames evenly over this many seconds of each clip
            ("clip": over the whole clip), so a sample shows the shot's motion,
            not a fraction of a second of it; a clip shorter than the span is
            spanned whole. The rate this gives is the batch's fps. Excludes fps
            and frame_stride.
        stride_jitter: each training sample's stride times a log-uniform factor
            in [1 / (1 + j), 1 + j], so samples show their clips at several
            paces (the rate used is the batch's fps); validation is not
            jittered. 0: off.
        decode_cache_mb: keep up to this many MB of decoded clips (at the
            training size) in each DataLoader worker, so many epochs over few
            clips decode each clip about once per epoch instead of once a
            sample. 0: off.
        batch_size: samples per batch on each rank.
        num_workers: DataLoader worker processes per rank (0 = in process).
        shuffle_buffer: samples in each worker's shuffle buffer (0 or 1: off).
        mode: "resampled": infinite sampling with replacement, epoch_size
            samples an epoch; "epoch": every sample exactly once per epoch.
        epoch_size: samples per epoch over all ranks in resampled mode.
        flip_prob: chance of mirroring a clip left-right (its caption too).
        flip_pairs: words swapped in the caption of a mirrored clip.
        caption_rotation: draw each sample's caption from all stored captions
            (else the primary one).
        use_weights: batch["weight"] from the clip's sample_weight (else 1).
        seed: seeds shard order, shuffling and augmentation per rank and worker.
        kind: "mp4" decodes the shards' clips; "latents" reads a `clipmill cache`
            folder (`cache`): stored views and caption states, see train/cache/latent.py.
            num_frames, size, fps and flips are then the cache's, fixed when it was made.
        cache: the latent cache folder (kind latents).
        val_cache: a latent cache of validation clips (kind latents).
        image_ratio: fraction of samples that are still images, 1-frame samples
            (resampled mode): from the cache's images/ (kind latents) or from
            `images` (kind mp4). Batches are bucketed: each holds one shape.
        images: a folder of still images for kind mp4 (caption: a `name.txt`
            beside the image, else its file name).
    """

    def __init__(
        self,
        shards: str | list[str] | None = None,
        val_shards: str | list[str] | None = None,
        num_frames: int = 8,
        size: int | tuple[int, int] = 32,
        fps: float | None = None,
        frame_stride: int | None = None,
        span_s: float | Literal["clip"] | None = None,
        stride_jitter: float = 0.0,
        decode_cache_mb: float = 0.0,
        batch_size: int = 8,
        num_workers: int = 2,
        shuffle_buffer: int = 256,
        mode: Mode = "resampled",
        epoch_size: int = 1000,
        flip_prob: float = 0.5,
        flip_pairs: Sequence[tuple[str, str]] = DEFAULT_FLIP_PAIRS,
        caption_rotation: bool = True,
        use_weights: bool = True,
        seed: int = 0,
        kind: Literal["mp4", "latents"] = "mp4",
        cache: str | None = None,
        val_cache: str | None = None,
        image_ratio: float = 0.0,
        images: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()  # also what the code below reads, as self.hparams
        hp = self.hparams
        # Checked now, so that a bad value fails at start and not at the first batch.
        check_options(mode, **{k: hp[k] for k in LOADER_MINIMUMS})
        _check_kind(kind, shards, cache, image_ratio, mode, images)
        self.latent_header: dict | None = None  # the cache's header once set up (kind latents)
        self.sample_cfg = SampleConfig(**{f.name: hp[f.name] for f in fields(SampleConfig)})
        self._train: VideoLoader | None = None
        self._val: VideoLoader | None = None

    def setup(self, stage: str | None = None) -> None:
        """Expand (and in epoch mode count) the shards, on every rank."""
        hp, trainer = self.hparams, self.trainer
        if trainer is not None:
            rank, world = trainer.global_rank, trainer.world_size
        else:
            rank, world, _, _ = wds.utils.pytorch_worker_info()
        common = dict(seed=hp.seed, rank=rank, world_size=world)
        if hp.kind == "latents":
            return self._setup_latents(stage, rank, world)
        if self._train is None and stage in (None, "fit"):
            dataset = make_dataset(
                hp.shards, self.sample_cfg, mode=hp.mode, shuffle_buffer=hp.shuffle_buffer, **common
            )
            epoch_fn = self._trainer_epoch if trainer is not None else None
            if hp.image_ratio > 0:  # joint image-video: stills mixed in, batches by shape
                from train.data.stills import mixed_loader

                self._train = mixed_loader(dataset, hp, epoch_fn)
            else:
                self._train = VideoLoader(
                    dataset, hp.batch_size, hp.num_workers, hp.epoch_size, epoch_fn
                )
        if self._val is None and hp.val_shards is not None and stage in (None, "fit", "validate"):
            dataset = make_dataset(
                hp.val_shards,
                self.sample_cfg,
                mode="epoch",
                train=False,
                flag="--data.val_shards",
                **common,
            )
            self._val = VideoLoader(dataset, hp.batch_size, hp.num_workers)

    def _setup_latents(self, stage: str | None, rank: int, world: int) -> None:
        from train.cache.latent import make_latent_data  # only latent runs pay for it

        fit = self._train is None and stage in (None, "fit")
        val = self._val is None and stage in (None, "fit", "validate")
        epoch_fn = self._trainer_epoch if self.trainer is not None else None
        data = make_latent_data(self.hparams, rank, world, epoch_fn, (fit, val))
        self.latent_header = data.header
        self._train = data.train or self._train
        self._val = data.val or self._val

    def _trainer_epoch(self) -> int:
        return self.trainer.current_epoch

    def train_dataloader(self) -> VideoLoader:
        if self._train is None:
            self.setup("fit")
        return self._train

    def val_dataloader(self) -> VideoLoader | list:
        if self._val is None and (self.hparams.val_shards or self.hparams.val_cache):
            self.setup("validate")
        return self._val if self._val is not None else []

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        """Counts so far: {"train": {...}, "val": {...}} (samples, corrupt, padded)."""
        return {
            name: dict(loader.stats)
            for name, loader in (("train", self._train), ("val", self._val))
            if loader is not None
        }
