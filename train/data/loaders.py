"""Batches for one rank: one DataLoader, its workers kept across epochs, and buckets.

`VideoLoader` batches samples of one shape; `BucketLoader` (joint image-video and
latent batches) keeps a bucket per sample shape so each batch holds one shape.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from train.data.augment import (
    collate,
)
from train.data.datasets import ShardVideoDataset


@dataclass(eq=False)
class _Records(IterableDataset):
    """What a DataLoader worker runs: the dataset's records, stats included.

    Workers live across epochs (their decode cache stays warm); each epoch's iteration
    reads the epoch the main process set from `epoch`, shared memory the workers inherit.
    """

    dataset: ShardVideoDataset
    epoch: Any = None  # multiprocessing.Value("q"), or None in process

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        if self.epoch is not None:  # only made for workers
            self.dataset.set_epoch(self.epoch.value)
        return self.dataset.iter_records(worker, num_workers)


def _as_is(record: Any) -> Any:
    return record


@dataclass(eq=False)
class VideoLoader:
    """Batches of a `ShardVideoDataset` for one rank; iterable with a length (Lightning takes it).

    Each iteration is one epoch, seeded by `epoch_fn()` (e.g. the trainer's epoch,
    else by counting iterations), so a resumed run sees the epochs it would have seen.
    The DataLoader and its workers are made once and kept: every epoch's iterator starts
    afresh from the epoch's seed, but each worker keeps its decode cache, which a fresh
    worker per epoch would refill from cold. `stats` accumulates over epochs: samples,
    corrupt (and corrupt/<reason>), padded.
    """

    source: ShardVideoDataset  # not `dataset`: Lightning would take this for a DataLoader
    batch_size: int = 8
    num_workers: int = 2
    epoch_size: int = 1000
    epoch_fn: Callable[[], int] | None = None
    stats: Counter = field(default_factory=Counter, init=False)
    _iterations: int = field(default=0, init=False, repr=False)
    _loader: DataLoader | None = field(default=None, init=False, repr=False)
    _epoch: Any = field(default=None, init=False, repr=False)

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
        samples = self._samples(iter(self._epoch_loader(epoch)))
        for batch in self._batches(samples):
            self.stats["samples"] += len(batch)
            yield self._collate(batch)

    def _epoch_loader(self, epoch: int) -> DataLoader:
        """The one DataLoader, told `epoch` (its workers read it when the epoch starts)."""
        if self._loader is None:
            if self.num_workers > 0:
                self._epoch = multiprocessing.Value("q", epoch, lock=False)
            self._loader = DataLoader(
                _Records(self.source, self._epoch),
                batch_size=None,  # workers send samples; batches are made here, across workers
                num_workers=self.num_workers,
                collate_fn=_as_is,
                persistent_workers=self.num_workers > 0,
            )
        if self._epoch is not None:
            self._epoch.value = epoch
        return self._loader

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


@dataclass(eq=False)
class BucketLoader(VideoLoader):
    """Batches of one sample shape each (a bucket per shape fills up to a batch).

    Resampled mode yields exactly len(self) full batches (leftovers are dropped:
    the stream is infinite); epoch mode yields every sample, the last batch of
    each bucket possibly short.
    """

    def samples_per_epoch(self) -> int:
        if self.source.mode == "epoch":
            return super().samples_per_epoch()
        return 1 << 62  # bucketing may hold samples back: the batch count decides instead

    def __len__(self) -> int:
        if self.source.mode == "epoch":
            return super().__len__()
        per_rank = math.ceil(self.epoch_size / (self.source.world_size * self.batch_size))
        return max(1, per_rank)

    def _batches(self, samples: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        buckets: dict[tuple, list] = {}
        wanted, made = len(self), 0
        for sample in samples:
            shape = sample["video"].shape
            buckets.setdefault(shape, []).append(sample)
            if len(buckets[shape]) == self.batch_size:
                yield buckets.pop(shape)
                made += 1
                if self.source.mode != "epoch" and made >= wanted:
                    return
        if self.source.mode == "epoch":
            yield from (b for b in buckets.values() if b)
