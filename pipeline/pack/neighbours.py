"""Near neighbours of L2-normalised embeddings without an N x N matrix.

Semantic dedup and the density part of sample weights both ask "which clips
are within cosine t of each other?". Up to `EXACT_MAX` rows the answer is
exact, computed in row blocks (memory O(block x N), never N x N). Beyond that
the rows are first split by a deterministic spherical k-means into partitions
of about `PARTITION` rows and compared only within their partition, the
SemDeDup recipe: near-duplicates sit next to each other, so they almost always
share a centroid; a pair split across a partition border can be missed.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

EXACT_MAX = 8192
PARTITION = 2048
BLOCK = 1024


def partitions(emb: np.ndarray, size: int | None = None, iters: int = 8) -> list[np.ndarray]:
    """Index arrays that split the rows into groups of about `size` (one group when small)."""
    n, size = len(emb), size or PARTITION
    if n <= EXACT_MAX:
        return [np.arange(n)]
    k = int(np.ceil(n / size))
    rng = np.random.default_rng(0)
    centroids = emb[rng.choice(n, k, replace=False)].astype(np.float32)
    for _ in range(iters):
        assign = _nearest(emb, centroids)
        for c in range(k):
            members = emb[assign == c]
            if len(members):
                mean = members.astype(np.float32).mean(axis=0)
                centroids[c] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    assign = _nearest(emb, centroids)
    return [idx for c in range(k) if len(idx := np.flatnonzero(assign == c))]


def _nearest(emb: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    out = np.empty(len(emb), np.int64)
    for at in range(0, len(emb), BLOCK):
        out[at : at + BLOCK] = np.argmax(emb[at : at + BLOCK].astype(np.float32) @ centroids.T, 1)
    return out


def _blocks(emb: np.ndarray, idx: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(row indices, similarities of those rows to every row of the partition)."""
    part = emb[idx].astype(np.float32)
    for at in range(0, len(idx), BLOCK):
        yield idx[at : at + BLOCK], part[at : at + BLOCK] @ part.T


def similar_pairs(emb: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """(i, j, cosine), i < j, for rows with cosine >= threshold, sorted by (i, j)."""
    pairs: list[tuple[int, int, float]] = []
    for idx in partitions(emb):
        for rows, sims in _blocks(emb, idx):
            r, c = np.nonzero(sims >= threshold)
            for a, b, s in zip(rows[r].tolist(), idx[c].tolist(), sims[r, c].tolist(), strict=True):
                if a < b:
                    pairs.append((a, b, s))
    return sorted(pairs)


def neighbour_counts(emb: np.ndarray, threshold: float) -> np.ndarray:
    """For each row, how many other rows are within cosine >= threshold."""
    counts = np.zeros(len(emb), np.int64)
    for idx in partitions(emb):
        for rows, sims in _blocks(emb, idx):
            counts[rows] += (sims >= threshold).sum(axis=1) - 1  # minus itself
    return np.maximum(counts, 0)  # a threshold above 1 does not count a row as its own
