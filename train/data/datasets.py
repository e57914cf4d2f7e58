"""Datasets over WebDataset shards: tar -> clip sample (batched in `train.data.loaders`).

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

import logging
import math
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info

from train.data.augment import (
    CorruptSample,
    DecodedClips,
    SampleConfig,
    prepare_sample,
)
from train.data.shards import (
    count_samples,
    expand_shards,
    read_shard,
    shard_segments,
    warn_once,
)

log = logging.getLogger(__name__)

Mode = Literal["resampled", "epoch"]
# A resampling worker that fails this many samples in a row has nothing
# usable to read: stop with a message instead of spinning forever.
MAX_CONSECUTIVE_FAILURES = 1000


def derive_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([p & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


@dataclass(eq=False)
class ShardVideoDataset(IterableDataset):
    """Clip samples (`train.data.augment.prepare_sample`) from shards; build with `make_dataset`.

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
    decoded: DecodedClips | None = field(default=None, init=False, repr=False)

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
        stream_rng = random.Random(derive_seed(self.seed, self.rank, worker, self.epoch, 0))
        aug_rng = np.random.default_rng(derive_seed(self.seed, self.rank, worker, self.epoch, 1))
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
                warn_once(item, err)
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
        if self.decoded is None and self.cfg.decode_cache_mb > 0:
            self.decoded = DecodedClips(self.cfg.decode_cache_mb)
        return prepare_sample(item, self.cfg, rng, self.decoded)

    def _epoch_part(self, worker: int, num_workers: int) -> Iterator[dict]:
        order, shift = list(range(len(self.urls))), 0
        if self.train:  # same generator on every rank: they must agree on the sequence
            shared = random.Random(derive_seed(self.seed, self.epoch, 2))
            shared.shuffle(order)
            shift = shared.randrange(self.num_samples)
        per_rank = self.samples_per_rank()
        lo = self.rank * per_rank + worker * per_rank // num_workers
        hi = self.rank * per_rank + (worker + 1) * per_rank // num_workers
        urls = [self.urls[i] for i in order]
        counts = [self.counts[i] for i in order]
        for url, start, stop in shard_segments(urls, counts, lo + shift, hi + shift):
            yield from read_shard(url, start, stop)

    def _resample_forever(self, rng: random.Random) -> Iterator[dict]:
        # Uniform over shards, each read whole: every sample comes once per
        # draw of its shard, so all samples are equally frequent whatever the
        # shard sizes (weighting the draw by size would favour full shards).
        while True:
            url = rng.choice(self.urls)
            found = False
            for item in read_shard(url):
                found = True
                yield item
            if not found:
                yield {"__key__": "", "__url__": url, "__error__": "empty_shard"}


LOADER_MINIMUMS = {"batch_size": 1, "num_workers": 0, "epoch_size": 1, "shuffle_buffer": 0}


def check_options(mode: str = "resampled", **counts: int) -> None:
    """Raise ValueError naming the `--data.*` flag of the first bad loader option.

    `counts`: any of batch_size, num_workers, epoch_size, shuffle_buffer.
    """
    if mode not in ("resampled", "epoch"):
        raise ValueError(f"--data.mode must be 'resampled' or 'epoch', got {mode!r}")
    for flag, value in counts.items():
        if value < LOADER_MINIMUMS[flag]:
            raise ValueError(f"--data.{flag} must be at least {LOADER_MINIMUMS[flag]}, got {value}")


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
