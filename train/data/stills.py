"""Joint image-video training: stills as 1-frame samples, mixed in, batched by shape.

Scarce video is padded out with images, as Latte and Open-Sora do: an image
is a 1-frame clip (the causal autoencoder encodes frame 0 alone, and the DiT
pads time to whole patches). Three pieces serve both data kinds:

- `mix_stills`: before each clip, a geometric number of stills, so that a
  fraction `ratio` of all samples are stills;
- `BucketLoader`: samples wait in a bucket per shape until it holds a batch,
  so every batch has one frame count and size;
- `StillFolder` + `MixedVideoDataset`: for `--data.kind mp4`, images from a
  folder (`--data.images`) with the trainer's crop and caption-aware flip.
  (The latent kind reads stills the cache encoded: train/cache/latent.py.)
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from train.data.augment import (
    CorruptSample,
    SampleConfig,
    crop,
    flip_caption,
    flip_video,
    pick_caption,
    resize_for_crop,
)
from train.data.datasets import ShardVideoDataset, derive_seed
from train.data.loaders import BucketLoader

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def mix_stills(
    videos: Iterator[dict], stills: Iterator[dict], ratio: float, rng: random.Random
) -> Iterator[dict]:
    """Clips' records with stills interleaved: a fraction `ratio` of the samples."""
    for record in videos:
        while not record.get("_end") and rng.random() < ratio:
            yield next(stills)
        yield record


def image_captions(path: Path) -> list[str]:
    """A sidecar `name.txt` (one caption a line), else the file name's words."""
    sidecar = path.with_suffix(".txt")
    if sidecar.is_file():
        lines = sidecar.read_text(encoding="utf-8", errors="replace").splitlines()
        captions = [line.strip() for line in lines if line.strip()]
        if captions:
            return captions
    words = " ".join(path.stem.replace("_", " ").replace("-", " ").split())
    return [words] if words else []


def list_images(folder: str, flag: str) -> list[Path]:
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{flag}: no folder {folder}")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(
            f"{flag}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}"
        )
    return paths


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def prepare_still(path: Path, cfg: SampleConfig, rng: np.random.Generator | None) -> dict:
    """One image -> a 1-frame sample shaped like `train.data.augment.prepare_sample`'s."""
    import cv2

    try:
        image = load_rgb(path)
    except Exception as err:  # a bad file is the sample's fault, not the run's
        raise CorruptSample("bad_image", f"{path}: {err}") from err
    height, width = resize_for_crop(image.shape[0], image.shape[1], cfg.size)
    video = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)[None]
    video = crop(video, cfg.size, rng)
    caption = pick_caption(image_captions(path), rng if cfg.caption_rotation else None)
    if rng is not None and cfg.flip_prob > 0 and rng.random() < cfg.flip_prob:
        video, caption = flip_video(video), flip_caption(caption, cfg.flip_pairs)
    nan = math.nan
    return {"video": np.ascontiguousarray(video), "caption": caption, "fps": nan,
            "motion_score": nan, "clip_score": nan, "aesthetic": nan, "weight": 1.0,
            "key": f"img-{path.stem}"}  # fmt: skip


@dataclass(eq=False)
class StillFolder:
    """An endless, seeded stream of still samples drawn from an image folder."""

    paths: list[Path]
    cfg: SampleConfig
    seed: int = 0
    rank: int = 0
    epoch: int = field(default=0, init=False)

    def iter_records(self, worker: int, num_workers: int) -> Iterator[dict[str, Any]]:
        rng = np.random.default_rng(derive_seed(self.seed, self.rank, worker, self.epoch, 4))
        failures = 0
        while True:
            path = self.paths[int(rng.integers(len(self.paths)))]
            try:
                sample = prepare_still(path, self.cfg, rng)
            except CorruptSample as err:
                failures += 1
                if failures >= len(self.paths) * 10:
                    raise RuntimeError(f"no usable image in --data.images ({err})") from err
                log.warning("skipping image %s: %s", path, err)
                continue
            failures = 0
            yield {**sample, "_skipped": {}}


@dataclass(eq=False)
class MixedVideoDataset(ShardVideoDataset):
    """Clips from shards with stills from `images` at `image_ratio` of the samples."""

    images: StillFolder | None = None
    image_ratio: float = 0.0

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if self.images is not None:
            self.images.epoch = epoch

    def iter_records(self, worker: int, num_workers: int) -> Iterator[dict[str, Any]]:
        videos = super().iter_records(worker, num_workers)
        if self.images is None or self.image_ratio <= 0:
            yield from videos
            return
        rng = random.Random(derive_seed(self.seed, self.rank, worker, self.epoch, 3))
        stills = self.images.iter_records(worker, num_workers)
        yield from mix_stills(videos, stills, self.image_ratio, rng)


def mixed_loader(dataset: ShardVideoDataset, hp: Any, epoch_fn: Any) -> BucketLoader:
    """The mp4 kind's training loader with `hp.images` mixed in at `hp.image_ratio`."""
    stills = StillFolder(
        list_images(hp.images, "--data.images"), dataset.cfg, hp.seed, dataset.rank
    )
    own = {f.name: getattr(dataset, f.name) for f in fields(dataset) if f.init}
    mixed = MixedVideoDataset(**own, images=stills, image_ratio=hp.image_ratio)
    return BucketLoader(mixed, hp.batch_size, hp.num_workers, hp.epoch_size, epoch_fn)
