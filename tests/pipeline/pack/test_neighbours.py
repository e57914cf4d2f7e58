"""Near-neighbour search: exact in blocks, and partitioned beyond RAM-sized pairwise."""

from __future__ import annotations

import numpy as np

import pipeline.pack.neighbours as nb


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _brute(emb: np.ndarray, t: float) -> set[tuple[int, int]]:
    sims = emb @ emb.T
    return {(i, j) for i in range(len(emb)) for j in range(i + 1, len(emb)) if sims[i, j] >= t}


def test_blockwise_pairs_and_counts_equal_brute_force(monkeypatch):
    monkeypatch.setattr(nb, "BLOCK", 7)
    emb = _unit(np.random.default_rng(0).normal(size=(40, 4)))
    pairs = nb.similar_pairs(emb, 0.8)
    assert {(i, j) for i, j, _ in pairs} == _brute(emb, 0.8)
    counts = nb.neighbour_counts(emb, 0.8)
    sims = emb @ emb.T
    assert counts.tolist() == ((sims >= 0.8).sum(1) - 1).tolist()


def test_partitioned_search_finds_near_duplicates(monkeypatch):
    monkeypatch.setattr(nb, "EXACT_MAX", 50)
    monkeypatch.setattr(nb, "PARTITION", 40)
    rng = np.random.default_rng(1)
    base = _unit(rng.normal(size=(300, 32)))
    dups = _unit(base[:60] + 0.02 * rng.normal(size=(60, 32)))
    emb = np.concatenate([base, dups])
    assert len(nb.partitions(emb)) > 3
    found = {(i, j) for i, j, _ in nb.similar_pairs(emb, 0.95)}
    assert {(i, 300 + i) for i in range(60)} <= found
    assert found <= _brute(emb, 0.95)
