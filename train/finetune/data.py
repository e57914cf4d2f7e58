"""`FinetuneDataModule`: curated shards (or a family latent cache) in the family's buckets.

Every clip is put in one bucket of the grid (`train.finetune.buckets`: a frame count on
the family's 1 + k*f_t grid, a size whose aspect ratio is nearest the clip's) before
training starts; the plan is logged, and a dataset that would train on nothing stops
there, naming the flag. Samples are decoded straight into their bucket's frames and size
by the from-scratch trainer's own sampling code (`train.data.augment`), and
`BucketLoader` makes every batch one bucket. Caption dropout (to the empty caption, which
is also what the families' pipelines encode as the unconditional prompt) and a
trigger-word prefix are applied here, so the cache path and the shard path agree.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import lightning as L
import numpy as np
import webdataset as wds
from lightning.pytorch.utilities import rank_zero_info

from train.data.augment import CorruptSample, SampleConfig, prepare_sample
from train.data.datasets import LOADER_MINIMUMS, ShardVideoDataset, check_options, make_dataset
from train.data.loaders import BucketLoader
from train.finetune.buckets import Bucket, BucketGrid, format_plan, plan, read_records

log = logging.getLogger(__name__)


def edit_caption(caption: str, prefix: str | None, dropout: float, rng: Any) -> str:
    """The caption a sample trains on: "" with chance `dropout` (training only), else
    `prefix` (a trigger word) in front."""
    if rng is not None and dropout > 0 and rng.random() < dropout:
        return ""
    return f"{prefix} {caption}".strip() if prefix else caption


def check_grid(grid: BucketGrid, family: Any) -> None:
    """ValueError naming the flag when `grid` is off the family's grid (frame step, size step,
    and latent frame counts, e.g. CogVideoX 1.5's even ones). Shared with `clipmill cache`,
    which must refuse the same buckets."""
    temporal, spatial = family.grid()
    grid.check_family(temporal, spatial, family.name)
    for frames in grid.frames:
        reason = family.check_latent_frames(1 + (frames - 1) // temporal)
        if reason:
            raise ValueError(f"--data.frame_buckets: {frames} frames: {reason}")


@dataclass(eq=False)
class BucketedDataset(ShardVideoDataset):
    """Shard samples decoded into the bucket the plan gave their clip."""

    assignments: dict[str, Bucket] = field(default_factory=dict)
    caption_dropout: float = 0.0
    caption_prefix: str | None = None

    def _resample_forever(self, rng: Any) -> Any:
        # Clips the plan left out are skipped here, before decoding, so they are neither
        # counted nor logged as corrupt (the plan already counted them, with the reason).
        for item in super()._resample_forever(rng):
            if "__error__" in item or item["__key__"] in self.assignments:
                yield item

    def prepare(self, item: dict[str, Any], rng: np.random.Generator | None) -> dict[str, Any]:
        bucket = self.assignments.get(item["__key__"])
        if bucket is None:  # dropped by the plan (too short, too small, no caption)
            raise CorruptSample("not_in_plan")
        cfg = dataclasses.replace(
            self.cfg, num_frames=bucket.frames, size=(bucket.height, bucket.width)
        )
        sample = prepare_sample(item, cfg, rng)
        sample["caption"] = edit_caption(
            sample["caption"], self.caption_prefix, self.caption_dropout, rng
        )
        return sample


class FinetuneDataModule(L.LightningDataModule):
    """Clips for fine-tuning a pretrained family (`--data.*`).

    Batches from shards: video float [B, 3, T, H, W] in [-1, 1] (one bucket per batch),
    caption list[str], weight [B]. From a cache (`--data.cache`, made by `clipmill cache
    --model.pretrained DIR`): the family's normalised latents and caption states.

    Args:
        shards: curated shards (a glob, folder, brace pattern or a list).
        cache: a latent cache made for this family, instead of shards.
        frame_buckets: frame counts a sample may have; each must be 1 + k*f_t of the
            family (Wan, CogVideoX: 4k+1; LTX-Video: 8k+1). A clip gets the largest that fits.
        size_buckets: (height, width) buckets, multiples of the family's stride (16 for Wan
            and CogVideoX, 32 for LTX-Video); a clip gets the nearest aspect ratio.
        fps: sample frames at this rate (Wan trains at 16, LTX-Video at 24-25, CogVideoX at
            8-16); None: each clip's own rate.
        max_upscale: a clip needing more enlargement than this for its bucket is dropped.
        batch_size: samples per batch on each rank (one bucket each).
        num_workers: DataLoader workers per rank.
        epoch_size: samples per epoch over all ranks (sampling is with replacement).
        shuffle_buffer: samples in each worker's shuffle buffer.
        caption_dropout: chance a training sample's caption is replaced by "" (what CFG
            needs at sampling time).
        caption_prefix: a trigger word put before every caption, e.g. "mystyle".
        caption_rotation: draw each sample's caption from all stored captions.
        use_weights: batch["weight"] from the clip's sample_weight.
        flip_prob: chance a clip is mirrored (its caption too); 0 keeps text and
            handedness in real footage the right way round.
        seed: seeds sampling and augmentation.
    """

    def __init__(
        self,
        shards: str | list[str] | None = None,
        cache: str | None = None,
        frame_buckets: list[int] = (17, 33, 49),
        size_buckets: list[tuple[int, int]] = ((480, 832), (832, 480), (624, 624)),
        fps: float | None = 16.0,
        max_upscale: float = 2.0,
        batch_size: int = 1,
        num_workers: int = 2,
        epoch_size: int = 1000,
        shuffle_buffer: int = 64,
        caption_dropout: float = 0.1,
        caption_prefix: str | None = None,
        caption_rotation: bool = True,
        use_weights: bool = True,
        flip_prob: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_options("resampled", **{k: self.hparams[k] for k in LOADER_MINIMUMS})
        if bool(shards) == bool(cache):
            raise ValueError("give one of --data.shards or --data.cache")
        if not 0 <= caption_dropout < 1:
            raise ValueError(f"--data.caption_dropout must be in [0, 1), got {caption_dropout}")
        if cache and caption_prefix:
            raise ValueError(
                "--data.caption_prefix: a cache holds encoded captions; rebuild it with "
                "`clipmill cache --caption-prefix` instead"
            )
        self.grid = BucketGrid(
            tuple(frame_buckets), tuple(map(tuple, size_buckets)), fps, max_upscale
        )
        self.plan: dict[str, Any] | None = None
        self.latent_header: dict[str, Any] | None = None
        self._train: BucketLoader | None = None

    def check_family(self, family: Any) -> None:
        """ValueError naming the flag when the buckets are off the family's grid."""
        check_grid(self.grid, family)

    def make_plan(self, quiet: bool = False) -> dict[str, Any]:
        """The bucket plan of the shards (also `clipmill train plan`), shown once at fit start.

        `quiet`: only compute it (the plan command prints it itself and reports an
        empty plan by its exit code)."""
        if self.plan is None:
            self.plan = plan(read_records(self.hparams.shards, "--data.shards"), self.grid)
            if quiet:
                return self.plan
            rank_zero_info("bucket plan:\n" + format_plan(self.plan))
            if not self.plan["total"]["used_clips"]:
                raise ValueError(
                    f"--data.shards: none of the {self.plan['total']['clips']} clips fits the "
                    "buckets (see the plan above); lower --data.frame_buckets or "
                    "--data.max_upscale, or caption the clips"
                )
        return self.plan

    def setup(self, stage: str | None = None) -> None:
        if self._train is not None or stage not in (None, "fit"):
            return
        trainer = self.trainer
        rank, world = (
            (trainer.global_rank, trainer.world_size)
            if trainer is not None
            else wds.utils.pytorch_worker_info()[:2]
        )
        epoch_fn = (lambda: self.trainer.current_epoch) if trainer is not None else None
        hp = self.hparams
        if hp.cache:
            from train.cache.latent import make_latent_data

            # the options make_latent_data reads (VideoDataModule's), for a resampled run
            options = SimpleNamespace(**hp, image_ratio=0.0, mode="resampled", val_cache=None)
            data = make_latent_data(options, rank, world, epoch_fn, (True, False))
            self.latent_header, self._train = data.header, data.train
            made = (data.header.get("family") or {}).get("buckets")
            rank_zero_info(  # the bucket flags of this run do not apply: the cache is cut
                f"training on the cache's buckets {made} ({data.header['counts']}); "
                "--data.frame_buckets/size_buckets/fps apply when the cache is built"
            )
            return
        report = self.make_plan()
        assignments = {key: Bucket.parse(name) for key, name in report["assignments"].items()}
        base = make_dataset(
            hp.shards, self._sample_config(), shuffle_buffer=hp.shuffle_buffer,
            seed=hp.seed, rank=rank, world_size=world,
        )  # fmt: skip
        fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base) if f.init}
        dataset = BucketedDataset(
            **fields,
            assignments=assignments,
            caption_dropout=hp.caption_dropout,
            caption_prefix=hp.caption_prefix,
        )
        self._train = BucketLoader(dataset, hp.batch_size, hp.num_workers, hp.epoch_size, epoch_fn)

    def _sample_config(self) -> SampleConfig:
        hp = self.hparams
        return SampleConfig(
            num_frames=self.grid.frames[0],
            size=self.grid.sizes[0],
            fps=hp.fps,
            flip_prob=hp.flip_prob,
            caption_rotation=hp.caption_rotation,
            use_weights=hp.use_weights,
        )

    def train_dataloader(self) -> BucketLoader:
        if self._train is None:
            self.setup("fit")
        return self._train
