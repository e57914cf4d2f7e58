"""Training from the latent cache (`--data.kind latents`): `clipmill cache` output -> batches.

The same sharded reader as the mp4 path (`train.data.module.ShardVideoDataset`: epoch
or resampled mode, the DDP split, corrupt samples counted), with a different
per-sample step. Each sample picks one of its clip's cached views and one of
that view's captions, draws z = mean + exp(logvar / 2) * eps afresh (so every
step sees a new latent, as if the autoencoder had run), scales it as the
denoiser expects, `(z - shift_factor) * scaling_factor`, and hands the stored
token states over with the encoder's id so the module skips its text encoder.

Rotation: in epoch mode, epoch e shows view (e + o) mod V and caption
((e + o) div V + o') mod N, with offsets o, o' seeded per clip, so V x N epochs
show every (view, caption) pair once; resampled mode (where an "epoch" is
arbitrary and a clip repeats within one) draws both from the seeded generator.
Validation uses view 0 (centred, unflipped), the primary caption and z = mean.

Joint image-video: stills from the cache's `images/` shards are mixed in at
`image_ratio` of the samples (resampled mode), and `LatentLoader` buckets
samples by latent shape, so a batch holds one frame count and size.
"""

from __future__ import annotations

import io
import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from train.cache.format import check_header, key_seed, read_header
from train.data.augment import CorruptSample, finite_number
from train.data.datasets import ShardVideoDataset, derive_seed
from train.data.loaders import BucketLoader
from train.data.shards import count_samples
from train.data.stills import mix_stills


@dataclass(frozen=True)
class LatentConfig:
    """Per-sample settings, most from the cache header."""

    scaling_factor: float = 1.0
    shift_factor: float = 0.0
    text_encoder_id: str = ""
    caption_rotation: bool = True
    use_weights: bool = True
    caption_dropout: float = 0.0
    """chance a training sample takes the empty caption (row 0 of every cached clip)"""


def _npy(raw: dict[str, Any], name: str) -> np.ndarray:
    if name not in raw:
        raise CorruptSample("missing_latents", name)
    try:
        return np.load(io.BytesIO(raw[name]), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise CorruptSample("bad_npy", f"{name}: {err}") from err


def _parse(raw: dict[str, Any]) -> dict[str, Any]:
    try:
        record = json.loads(raw["json"])
    except (KeyError, ValueError, UnicodeDecodeError) as err:
        raise CorruptSample("bad_json", str(err)) from err
    if not isinstance(record, dict) or not record.get("views"):
        raise CorruptSample("bad_json", "no views")
    return record


def choose(n: int, rng: np.random.Generator | None, rotation: int | None) -> int:
    """Index 0 for validation (no rng), `rotation mod n` when rotating, else a draw."""
    if rng is None or n == 1:
        return 0
    return rotation % n if rotation is not None else int(rng.integers(n))


def prepare_latent(
    raw: dict[str, Any],
    cfg: LatentConfig,
    rng: np.random.Generator | None,
    rotation: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """One cache sample -> one training sample. `rotation`: (epoch, seed), epoch mode only."""
    record = _parse(raw)
    mean, logvar = _npy(raw, "mean.npy"), _npy(raw, "logvar.npy")
    states = _npy(raw, "text.npy")
    views = record["views"]
    if mean.shape[0] != len(views) or logvar.shape != mean.shape:
        raise CorruptSample("bad_latents", f"{mean.shape} for {len(views)} views")
    view_turn = caption_turn = None
    if rotation is not None:
        epoch, seed = rotation
        offset = key_seed(seed, raw["__key__"])
        view_turn = epoch + offset
        caption_turn = view_turn // len(views) + (offset >> 8)
    v = choose(len(views), rng, view_turn)
    rows = views[v]["captions"]
    row = rows[choose(len(rows), rng if cfg.caption_rotation else None, caption_turn)]
    if rng is not None and cfg.caption_dropout > 0 and rng.random() < cfg.caption_dropout:
        row = 0  # the builder stores "" first (`caption_table`)
    z = mean[v].astype(np.float32)
    if rng is not None:  # a fresh draw from the posterior every time the clip is seen
        eps = rng.standard_normal(z.shape, dtype=np.float32)
        z += np.exp(0.5 * logvar[v].astype(np.float32)) * eps
    z = (z - cfg.shift_factor) * cfg.scaling_factor
    length = max(1, int(record["text_lengths"][row]))
    weight = finite_number(record, "sample_weight", 1.0) if cfg.use_weights else 1.0
    return {
        "video": np.ascontiguousarray(z),
        "text_states": np.ascontiguousarray(states[row, :length], dtype=np.float32),
        "caption": record["texts"][row],
        "fps": finite_number(views[v], "fps", math.nan),
        "motion_score": finite_number(record, "motion_score", math.nan),
        "clip_score": finite_number(record, "clip_score", math.nan),
        "aesthetic": finite_number(record, "aesthetic", math.nan),
        "weight": weight if weight >= 0 else 1.0,
        "key": raw["__key__"],
        "view": v,
        "text_encoder_id": cfg.text_encoder_id,
    }


def collate_latents(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Samples of one latent shape -> batch: video [B, C, T', H', W'], text_states/mask padded."""
    video = torch.from_numpy(np.stack([s["video"] for s in samples]))
    lengths = [len(s["text_states"]) for s in samples]
    states = torch.zeros(len(samples), max(lengths), samples[0]["text_states"].shape[-1])
    for i, s in enumerate(samples):
        states[i, : lengths[i]] = torch.from_numpy(s["text_states"])
    mask = torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]
    batch: dict[str, Any] = {"video": video, "text_states": states, "text_mask": mask}
    for name in ("fps", "motion_score", "clip_score", "aesthetic", "weight"):
        batch[name] = torch.tensor([s[name] for s in samples], dtype=torch.float32)
    for name in ("caption", "key", "view", "text_encoder_id"):
        batch[name] = [s[name] for s in samples]
    return batch


@dataclass(eq=False)
class LatentDataset(ShardVideoDataset):
    """Cache samples; with `images`, stills mixed in at `image_ratio` of the samples."""

    images: LatentDataset | None = None
    image_ratio: float = 0.0

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if self.images is not None:
            self.images.set_epoch(epoch)

    def prepare(self, item: dict[str, Any], rng: np.random.Generator | None) -> dict[str, Any]:
        rotation = (self.epoch, self.seed) if self.mode == "epoch" else None
        return prepare_latent(item, self.cfg, rng, rotation)

    def iter_records(self, worker: int, num_workers: int) -> Iterator[dict[str, Any]]:
        videos = super().iter_records(worker, num_workers)
        if self.images is None or self.image_ratio <= 0:
            yield from videos
            return
        stills = self.images.iter_records(worker, num_workers)
        rng = random.Random(derive_seed(self.seed, self.rank, worker, self.epoch, 3))
        yield from mix_stills(videos, stills, self.image_ratio, rng)


@dataclass(eq=False)
class LatentLoader(BucketLoader):
    """Latent batches, one latent shape each (see `train.data.stills.BucketLoader`)."""

    @staticmethod
    def _collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
        return collate_latents(batch)


@dataclass(frozen=True)
class LatentData:
    """What `VideoDataModule` needs from a cache: the header and the two loaders."""

    header: dict[str, Any]
    train: LatentLoader | None
    val: LatentLoader | None


def _urls(folder: str, names: list[str]) -> list[str]:
    return [str(Path(folder) / n) for n in names]


def _dataset(urls: list[str], cfg: LatentConfig, mode: str, **kw: Any) -> LatentDataset:
    counts = [count_samples(u) for u in urls] if mode == "epoch" else None
    return LatentDataset(urls, cfg, mode, counts, **kw)


def make_latent_data(
    hp: Any, rank: int, world_size: int, epoch_fn: Any, stages: tuple[bool, bool]
) -> LatentData:
    """Loaders over `hp.cache` (train) and `hp.val_cache` (validation) for the `stages` asked."""
    header = read_header(hp.cache, "--data.cache")
    ae, text = header["autoencoder"], header["text_encoder"]["id"]
    cfg = LatentConfig(
        ae["scaling_factor"],
        ae["shift_factor"],
        text,
        hp.caption_rotation,
        hp.use_weights,
        getattr(hp, "caption_dropout", 0.0),
    )
    if not header["shards"]:
        raise ValueError(f"--data.cache {hp.cache} holds no clip shards")
    if hp.image_ratio > 0 and not header["image_shards"]:
        raise ValueError(f"--data.image_ratio {hp.image_ratio}: {hp.cache} holds no images")
    common = dict(seed=hp.seed, rank=rank, world_size=world_size)
    train = val = None
    if stages[0]:
        images = None
        if hp.image_ratio > 0:
            images = _dataset(_urls(hp.cache, header["image_shards"]), cfg, "resampled", **common)
        dataset = _dataset(
            _urls(hp.cache, header["shards"]), cfg, hp.mode, shuffle_buffer=hp.shuffle_buffer,
            images=images, image_ratio=hp.image_ratio, **common,
        )  # fmt: skip
        train = LatentLoader(dataset, hp.batch_size, hp.num_workers, hp.epoch_size, epoch_fn)
    if stages[1] and hp.val_cache:
        val_header = read_header(hp.val_cache, "--data.val_cache")
        check_header(
            val_header, fingerprint=ae["fingerprint"], text_encoder_id=text, flag="--data.val_cache"
        )
        urls = _urls(hp.val_cache, val_header["shards"])
        dataset = _dataset(urls, cfg, "epoch", train=False, **common)
        val = LatentLoader(dataset, hp.batch_size, hp.num_workers)
    return LatentData(header, train, val)
