"""Shard writer: whole samples, count and byte budgets, atomic names, deterministic bytes."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import webdataset as wds

from schemas.shards import ShardWriter


def _write(folder, n=7, size=1000, **kw):
    with ShardWriter(folder, **kw) as w:
        for i in range(n):
            w.write(
                f"k{i:03d}",
                {
                    "mp4": bytes([i]) * size,
                    "txt": f"cap {i}",
                    "json": {"i": i},
                    "emb.npy": np.arange(4, dtype=np.float16),
                },
            )
    return w.written


def test_budgets_split_shards_on_whole_samples(tmp_path):
    names = _write(tmp_path / "a", max_samples=3)
    assert names == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    names = _write(tmp_path / "b", size=40_000, max_samples=100, max_bytes=100_000)
    assert len(names) == 4  # two 40 kB samples per 100 kB shard
    got = [
        s["__key__"]
        for s in wds.WebDataset([str(tmp_path / "b" / n) for n in names], shardshuffle=False)
    ]
    assert got == [f"k{i:03d}" for i in range(7)]
    assert not list((tmp_path / "b").glob("*.tmp"))


def test_same_samples_same_bytes(tmp_path):
    _write(tmp_path / "a")
    _write(tmp_path / "b")
    h = [hashlib.sha256((tmp_path / d / "shard-000000.tar").read_bytes()).hexdigest() for d in "ab"]
    assert h[0] == h[1]


def test_fields_round_trip(tmp_path):
    _write(tmp_path, n=1)
    sample = next(
        iter(wds.WebDataset(str(tmp_path / "shard-000000.tar"), shardshuffle=False).decode())
    )
    assert sample["txt"] == "cap 0" and sample["json"] == {"i": 0}
    assert sample["emb.npy"].dtype == np.float16


def test_keys_with_dots_are_refused(tmp_path):
    with pytest.raises(ValueError, match="must not contain"):
        ShardWriter(tmp_path).write("a.b", {"txt": "x"})


def test_reserve_names_the_shard_the_next_write_uses(tmp_path):
    w = ShardWriter(tmp_path, max_samples=1)
    assert w.reserve(10) == "shard-000000.tar"
    assert w.write("a", {"txt": "x"}) == "shard-000000.tar"
    assert w.reserve(10) == "shard-000001.tar"
    assert w.write("b", {"txt": "x"}) == "shard-000001.tar"
    assert w.close() == ["shard-000000.tar", "shard-000001.tar"]
