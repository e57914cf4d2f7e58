"""Reading WebDataset shards: expand the user's shard spec, count and read samples by position.

Positions matter: epoch mode splits the shards' concatenation among ranks and workers
by sample (`shard_segments`), and local tars are read by seeking past other ranks'
samples, so skipping costs 512-byte headers, not data.
"""

from __future__ import annotations

import bisect
import glob
import itertools
import logging
import os
import tarfile
from collections.abc import Iterator, Sequence
from typing import Any

import webdataset as wds
from webdataset.tariterators import base_plus_ext

log = logging.getLogger(__name__)


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


def is_local(url: str) -> bool:
    return "://" not in url and not url.startswith("pipe:")


def _resolve(item: str, flag: str) -> list[str]:
    if not is_local(item):
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
    local = is_local(url)
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


def read_shard(url: str, start: int = 0, stop: int | None = None) -> Iterator[dict]:
    """`iter_tar_samples`, turning an unreadable shard into one error marker."""
    try:
        yield from iter_tar_samples(url, start, stop)
    except (OSError, EOFError, tarfile.TarError) as err:
        log.warning("unreadable shard %s: %s", url, err)
        yield {"__key__": "", "__url__": url, "__error__": "bad_shard"}


def shard_segments(urls: list[str], counts: list[int], lo: int, hi: int) -> Iterator[tuple]:
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


def warn_once(item: dict, err: Exception) -> None:
    # Resampling meets a bad clip again and again: one line per clip and process is enough.
    where = (item["__url__"], item["__key__"])
    if where not in _warned:
        _warned.add(where)
        log.warning("skipping sample %r of %s: %s", where[1], where[0], err)
