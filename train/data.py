"""Training data from WebDataset shards: tar -> clip sample -> batch.

`--data.mode resampled` (default; many epochs over little data): each worker of
each rank draws shards with replacement, seeded by (seed, rank, worker, epoch),
through a shuffle buffer, forever; an epoch is `epoch_size` samples over all ranks.

`--data.mode epoch` (exact): all shards' samples, counted from the tar headers,
form one sequence (shard order and a rotation reshuffled per epoch, alike on
every rank). Rank r takes positions [r*T, (r+1)*T), T = ceil(N / world_size),
split contiguously among its workers. Splitting by sample, not shard, lets one
shard feed any ranks x workers, reads each sample once when world_size divides
N, and gives every rank the same number of batches: DDP hangs otherwise, the
longer ranks waiting in an all-reduce. Positions past N wrap (DistributedSampler
pads the same way); a rank that lost samples to corruption repeats some of its
own (`padded`). Local shards are read by seeking past other ranks' samples.

Corrupt samples (bad mp4 or json, missing mp4, unreadable shard) are skipped,
logged and counted in `VideoLoader.stats`, never raised; the counts travel
in-band from the DataLoader workers so the main process sees them all.
"""

from __future__ import annotations

import bisect
import glob
import itertools
import logging
import math
import os
import random
import tarfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import lightning as L
import numpy as np
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from webdataset.tariterators import base_plus_ext

from train.augment import DEFAULT_FLIP_PAIRS, CorruptSample, SampleConfig, collate, prepare_sample

log = logging.getLogger(__name__)

Mode = Literal["resampled", "epoch"]
# A resampling worker that fails this many samples in a row has nothing
# usable to read: stop with a message instead of spinning forever.
MAX_CONSECUTIVE_FAILURES = 1000


def expand_shards(spec: str | Sequence[str], flag: str = "--data.shards") -> list[str]:
    """Shard URLs from paths, directories (their *.tar), globs and brace patterns.

    `shard-{000000..000009}.tar`, `out/shards/*.tar`, `out/shards`, a list of
    any of these, or URLs webdataset opens (`pipe:aws s3 cp ... -`, `https://`),
    kept as they are (epoch mode streams each once more to count its samples).
    Raises FileNotFoundError naming `flag` when a path is missing or nothing matches.
    """
    patterns = [spec] if isinstance(spec, str) else list(spec)
    urls: dict[str, None] = {}
    for pattern in patterns:
        for item in wds.shardlists.expand_urls(str(pattern)):
            for url in _resolve(item, flag):
                urls.setdefault(url, None)
    if not urls:
        raise FileNotFoundError(f"{flag} matched no shards: {spec!r}")
    return list(urls)


def _is_local(url: str) -> bool:
    return "://" not in url and not url.startswith("pipe:")


def _resolve(item: str, flag: str) -> list[str]:
    if not _is_local(item):
        return [item]
    path = os.path.expanduser(item)
    if os.path.isdir(path):
        return sorted(glob.glob(os.path.join(path, "*.tar")))
    if glob.has_magic(path):
        return sorted(p for p in glob.glob(path) if os.path.isfile(p))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{flag}: no shard at {item!r}")
    return [path]


def _tar_members(url: str) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo, str, str]]:
    # Random access for local files: iterating headers seeks past member data,
    # so skipping another rank's samples reads nothing but 512-byte headers.
    local = _is_local(url)
    stream = open(url, "rb") if local else wds.gopen(url, "rb")  # noqa: SIM115 - closed below
    with stream, tarfile.open(fileobj=stream, mode="r:" if local else "r|") as tar:
        for member in tar:
            key, ext = base_plus_ext(member.name)
            if member.isreg() and key is not None and not os.path.basename(key).startswith("__"):
                yield tar, member, key, ext.lower()


def count_samples(url: str) -> int:
    """Samples in a shard (members grouped by key, as WebDataset groups them)."""
    return sum(1 for _ in itertools.groupby(_tar_members(url), key=lambda m: m[2]))


def iter_tar_samples(url: str, start: int = 0, stop: int | None = None) -> Iterator[dict]:
    """Samples `start` to `stop` (exclusive) of a shard: {"__key__", "__url__", ext: bytes}."""
    groups = itertools.groupby(_tar_members(url), key=lambda m: m[2])
    for key, members in itertools.islice(groups, start, stop):
        sample: dict[str, Any] = {"__key__": key, "__url__": url}
        for tar, member, _, ext in members:
            sample[ext] = tar.extractfile(member).read()
        yield sample


def _read(url: str, start: int = 0, stop: int | None = None) -> Iterator[dict]:
    """`iter_tar_samples`, turning an unreadable shard into one error marker."""
    try:
        yield from iter_tar_samples(url, start, stop)
    except (OSError, EOFError, tarfile.TarError) as err:
        log.warning("unreadable shard %s: %s", url, err)
        yield {"__key__": "", "__url__": url, "__error__": "bad_shard"}


def _segments(urls: list[str], counts: list[int], lo: int, hi: int) -> Iterator[tuple]:
    """(url, start, stop) pieces of positions [lo, hi) of the shards' concatenation, wrapping."""
    total = sum(counts)
    starts = list(itertools.accumulate([0, *counts[:-1]]))
    pos = lo
    while pos < hi:
        p = pos % total
        i = bisect.bisect_right(starts, p) - 1  # the last shard starting at or before p: non-empty
        take = min(hi - pos, starts[i] + counts[i] - p)
        yield urls[i], p - starts[i], p - starts[i] + take
        pos += take


_warned: set[tuple[str, str]] = set()


def _warn_once(item: dict, err: Exception) -> None:
    # Resampling meets a bad clip again and again: one line per clip and process is enough.
    where = (item["__url__"], item["__key__"])
    if where not in _warned:
        _warned.add(where)
        log.warning("skipping sample %r of %s: %s", where[1], where[0], err)


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([p & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


@dataclass(eq=False)
class ShardVideoDataset(IterableDataset):
    """Clip samples (`train.augment.prepare_sample`) from shards; build with `make_dataset`.

    Iterating it yields single samples; `VideoLoader` batches them and adds
    what needs the whole rank (batch count, padding, corrupt-sample counts).
    `counts` (samples per shard) is needed in epoch mode.
    """

    urls: list[str]
    cfg: SampleConfig
    mode: Mode = "resampled"
    counts: list[int] | None = None
    shuffle_buffer: int = 256
    train: bool = True
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    epoch: int = field(default=0, init=False)
    stats: Counter = field(default_factory=Counter, init=False)  # this process's iterations

    def __post_init__(self) -> None:
        if self.mode == "epoch" and len(self.counts or []) != len(self.urls):
            raise ValueError("epoch mode needs the sample count of every shard")

    def set_epoch(self, epoch: int) -> None:
        """Reseed for `epoch` (shard order, shuffle, augmentations)."""
        self.epoch = epoch

    @property
    def num_samples(self) -> int:
        """Samples in the shards (epoch mode; corrupt ones included)."""
        return sum(self.counts or [])

    def samples_per_rank(self) -> int:
        """Samples each rank yields per epoch in epoch mode (ceil(N / world_size))."""
        return math.ceil(self.num_samples / self.world_size)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        for record in self.iter_records(worker, num_workers):
            self.stats.update(record.pop("_skipped"))
            if not record.get("_end"):
                yield record

    def iter_records(self, worker: int, num_workers: int) -> Iterator[dict[str, Any]]:
        """What worker `worker` of `num_workers` on this rank yields, stats included.

        Each sample carries `_skipped` (corrupt samples counted since the
        previous one) and the stream ends with an `_end` record holding the
        rest; `__iter__` and `VideoLoader` strip them. Public so that tests can
        play any worker of any rank in one process.
        """
        stream_rng = random.Random(_seed(self.seed, self.rank, worker, self.epoch, 0))
        aug_rng = np.random.default_rng(_seed(self.seed, self.rank, worker, self.epoch, 1))
        if self.mode == "epoch":
            raw = self._epoch_part(worker, num_workers)
        else:
            raw = self._resample_forever(stream_rng)
        if self.train and self.shuffle_buffer > 1:
            # Shuffle encoded samples: the buffer's memory then does not grow with
            # num_frames and size (16 frames of 256x256 decode to 3 MB per sample).
            initial = min(self.shuffle_buffer, 64)
            raw = wds.shuffle(self.shuffle_buffer, initial=initial, rng=stream_rng)(raw)
        skipped: Counter = Counter()
        failures = 0
        for item in raw:
            try:
                if "__error__" in item:
                    raise CorruptSample(item["__error__"], item["__url__"])
                sample = self.prepare(item, aug_rng if self.train else None)
            except CorruptSample as err:
                skipped[err.reason] += 1
                failures += 1
                _warn_once(item, err)
                if self.mode == "resampled" and failures >= MAX_CONSECUTIVE_FAILURES:
                    raise RuntimeError(
                        f"{failures} samples in a row were unusable (last: {err}); "
                        "check --data.shards"
                    ) from err
                continue
            failures = 0
            sample["_skipped"], skipped = dict(skipped), Counter()
            yield sample
        yield {"_end": True, "_skipped": dict(skipped)}

    def prepare(self, item: dict[str, Any], rng: np.random.Generator | None) -> dict[str, Any]:
        """One raw shard sample -> one training sample (the latent cache overrides this)."""
        return prepare_sample(item, self.cfg, rng)

    def _epoch_part(self, worker: int, num_workers: int) -> Iterator[dict]:
        order, shift = list(range(len(self.urls))), 0
        if self.train:  # same generator on every rank: they must agree on the sequence
            shared = random.Random(_seed(self.seed, self.epoch, 2))
            shared.shuffle(order)
            shift = shared.randrange(self.num_samples)
        per_rank = self.samples_per_rank()
        lo = self.rank * per_rank + worker * per_rank // num_workers
        hi = self.rank * per_rank + (worker + 1) * per_rank // num_workers
        urls = [self.urls[i] for i in order]
        counts = [self.counts[i] for i in order]
        for url, start, stop in _segments(urls, counts, lo + shift, hi + shift):
            yield from _read(url, start, stop)

    def _resample_forever(self, rng: random.Random) -> Iterator[dict]:
        # Uniform over shards, each read whole: every sample comes once per
        # draw of its shard, so all samples are equally frequent whatever the
        # shard sizes (weighting the draw by size would favour full shards).
        while True:
            url = rng.choice(self.urls)
            found = False
            for item in _read(url):
                found = True
                yield item
            if not found:
                yield {"__key__": "", "__url__": url, "__error__": "empty_shard"}


@dataclass(eq=False)
class _Records(IterableDataset):
    """What a DataLoader worker runs: the dataset's records, stats included."""

    dataset: ShardVideoDataset

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        return self.dataset.iter_records(worker, num_workers)


def _as_is(record: Any) -> Any:
    return record


@dataclass(eq=False)
class VideoLoader:
    """Batches of a `ShardVideoDataset` for one rank; iterable with a length (Lightning takes it).

    Each iteration is one epoch, run by a fresh DataLoader whose workers copy
    the dataset after `set_epoch`, so every epoch is seeded (by `epoch_fn()`,
    e.g. the trainer's epoch, else by counting iterations) and a resumed run
    sees the epochs it would have seen. `stats` accumulates over epochs:
    samples, corrupt (and corrupt/<reason>), padded.
    """

    source: ShardVideoDataset  # not `dataset`: Lightning would take this for a DataLoader
    batch_size: int = 8
    num_workers: int = 2
    epoch_size: int = 1000
    epoch_fn: Callable[[], int] | None = None
    stats: Counter = field(default_factory=Counter, init=False)
    _iterations: int = field(default=0, init=False, repr=False)

    def samples_per_epoch(self) -> int:
        """Samples this rank yields per epoch (padding included)."""
        if self.source.mode == "epoch":
            return self.source.samples_per_rank()
        per_rank = math.ceil(self.epoch_size / (self.source.world_size * self.batch_size))
        return max(1, per_rank) * self.batch_size

    def __len__(self) -> int:
        return math.ceil(self.samples_per_epoch() / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # A generator: nothing starts until the first batch is asked for, so
        # Lightning's "is it iterable?" probe costs no worker processes.
        epoch = self.epoch_fn() if self.epoch_fn is not None else self._iterations
        self._iterations += 1
        self.source.set_epoch(epoch)
        loader = DataLoader(
            _Records(self.source),
            batch_size=None,  # workers send samples; batches are made here, across workers
            num_workers=self.num_workers,
            collate_fn=_as_is,
            persistent_workers=False,  # fresh workers see the new epoch's seed
        )
        samples = self._samples(iter(loader))
        for batch in self._batches(samples):
            self.stats["samples"] += len(batch)
            yield self._collate(batch)

    def _batches(self, samples: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        while batch := list(itertools.islice(samples, self.batch_size)):
            yield batch

    @staticmethod
    def _collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
        return collate(batch)

    def _samples(self, records: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """This epoch's samples: what the workers sent, then padding if the rank is short."""
        target, seen = self.samples_per_epoch(), 0
        kept: list[dict] = []  # a few samples to repeat if corruption leaves the rank short
        for record in records:
            for reason, n in record.pop("_skipped").items():
                self.stats["corrupt"] += n
                self.stats[f"corrupt/{reason}"] += n
            if record.get("_end"):
                continue
            if len(kept) < self.batch_size:
                kept.append(record)
            yield record
            seen += 1
            if seen >= target:  # resampled streams are infinite
                return
        if self.source.mode == "epoch" and self.source.world_size > 1:
            for i in range(seen, target):
                if not kept:
                    raise RuntimeError(f"rank {self.source.rank} got no usable sample this epoch")
                self.stats["padded"] += 1
                yield kept[i % len(kept)]


_MINIMUM = {"batch_size": 1, "num_workers": 0, "epoch_size": 1, "shuffle_buffer": 0}


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


def check_options(mode: str = "resampled", **counts: int) -> None:
    """Raise ValueError naming the `--data.*` flag of the first bad loader option.

    `counts`: any of batch_size, num_workers, epoch_size, shuffle_buffer.
    """
    if mode not in ("resampled", "epoch"):
        raise ValueError(f"--data.mode must be 'resampled' or 'epoch', got {mode!r}")
    for flag, value in counts.items():
        if value < _MINIMUM[flag]:
            raise ValueError(f"--data.{flag} must be at least {_MINIMUM[flag]}, got {value}")


def make_dataset(
    shards: str | Sequence[str],
    cfg: SampleConfig | None = None,
    *,
    mode: Mode = "resampled",
    shuffle_buffer: int = 256,
    train: bool = True,
    seed: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
    flag: str = "--data.shards",
) -> ShardVideoDataset:
    """Expand (and in epoch mode count) the shards and build the dataset.

    `train=False` is validation: epoch order unshuffled, centred frames and
    crops, primary caption, no flip. `rank`/`world_size` default to
    torch.distributed's (or RANK/WORLD_SIZE).
    """
    check_options(mode, shuffle_buffer=shuffle_buffer)
    if rank is None or world_size is None:
        rank, world_size, _, _ = wds.utils.pytorch_worker_info()
    urls = expand_shards(shards, flag)
    counts = None
    if mode == "epoch":
        counts = [count_samples(url) for url in urls]
        if sum(counts) == 0:
            raise ValueError(f"{flag}: the {len(urls)} shard(s) hold no samples")
    return ShardVideoDataset(
        urls, cfg or SampleConfig(), mode, counts, shuffle_buffer, train, seed, rank, world_size
    )


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
            folder (`cache`): stored views and caption states, see train/latent_data.py.
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
        check_options(mode, **{k: hp[k] for k in _MINIMUM})
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
                from train.image_data import mixed_loader

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
        from train.latent_data import make_latent_data  # only latent runs pay for it

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
