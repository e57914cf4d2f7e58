"""Collection-wide dedup (driver, at pack time): exact, perceptual and semantic duplicates.

Clips in: every candidate row, scored; only clips no other reason rejected take part
          (the best member of a cluster must be one that would be kept).
Out:      clusters of the same shot; all but one member get `duplicate_of` (the kept
          clip's id) and, with `--dedup.keep best`, the reason `duplicate`.

Edges between clips, each from its own signal:
- exact: equal sha256 of the mp4 bytes;
- perceptual: DCT hashes of frames sampled at a fixed rate (`pipeline/stages/phash.py`)
  within `--dedup.max_hamming` bits for at least `--dedup.min_matched` of the
  shorter clip's frames, in order, at one time offset. Candidates come from exact
  matches of any of four 16-bit bands of any frame hash (multi-index hashing), so
  the cost grows with the matches, not with N^2: a pair whose matching frames
  differ in <= 3 bits is always found, one at the threshold almost always (it has
  many matching frames to try);
- semantic: CLIP embeddings at cosine >= `--dedup.threshold` (`pipeline/pack/neighbours.py`).
Windows of one scene (same video and scene_index) are consecutive pieces of one
shot, not repeats: they never share a cluster. Edges are merged strongest first
(exact, then smallest distance), and a merge that would put two windows of one
scene together is skipped, so a repeated long shot pairs window with window.

Which clip is kept: the longest; then the highest aesthetic, clip_score and
sharpness (unknown counts as lowest); then the first in input order.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations
from typing import Any

import numpy as np

from pipeline.config.curate import CurateConfig
from pipeline.pack.neighbours import similar_pairs

BANDS = 4
MAX_BUCKET = 512  # a hash band shared by more clips than this says nothing (flat frames)


class UnionFind:
    """Components of n items; a component's root is its smallest index."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


class SceneUnionFind(UnionFind):
    """Union-find whose components never hold two clips of the same scene."""

    def __init__(self, scenes: list[tuple[str, int]]) -> None:
        super().__init__(len(scenes))
        self.scenes = [{s} for s in scenes]

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb or self.scenes[ra] & self.scenes[rb]:
            return
        root, child = min(ra, rb), max(ra, rb)
        self.parent[child] = root
        self.scenes[root] |= self.scenes[child]


def hashes_of(clip: dict[str, Any]) -> np.ndarray:
    return np.array([int(h, 16) for h in clip.get("phash") or []], dtype=np.uint64)


def match_distance(
    a: np.ndarray, b: np.ndarray, max_hamming: int, min_matched: float
) -> float | None:
    """Mean bits of the matched frames at the best time offset of the shorter sequence
    against the longer, when at least `min_matched` of its frames match there; else None."""
    if not len(a) or not len(b):
        return None
    if len(a) > len(b):
        a, b = b, a
    bits = np.bitwise_count(a[:, None] ^ b[None, :])
    need = max(1, int(np.ceil(min_matched * len(a) - 1e-9)))
    best: tuple[int, float] | None = None
    for offset in range(-(len(a) - 1), len(b)):  # a[i] against b[i + offset]
        diag = np.diagonal(bits, offset)
        ok = diag[diag <= max_hamming]
        if len(ok) >= need and (best is None or (-len(ok), ok.mean()) < (-best[0], best[1])):
            best = (len(ok), float(ok.mean()))
    return None if best is None else best[1]


def perceptual_pairs(
    hashes: list[np.ndarray], max_hamming: int, min_matched: float
) -> list[tuple[int, int, float]]:
    """(i, j, mean bits), i < j, of clips whose frame hashes match (module docstring)."""
    buckets: dict[tuple[int, int], set[int]] = defaultdict(set)
    for i, hs in enumerate(hashes):
        for h in hs.tolist():
            for band in range(BANDS):
                buckets[(band, (h >> (16 * band)) & 0xFFFF)].add(i)
    candidates = set()
    for members in buckets.values():
        if 1 < len(members) <= MAX_BUCKET:
            candidates.update(combinations(sorted(members), 2))
    out = []
    for i, j in sorted(candidates):
        dist = match_distance(hashes[i], hashes[j], max_hamming, min_matched)
        if dist is not None:
            out.append((i, j, dist))
    return out


def semantic_enabled(cfg: CurateConfig) -> bool:
    """Semantic dedup runs when asked for, or (auto) when CLIP has pretrained weights."""
    mode = cfg.dedup.semantic
    return cfg.clip.enabled and (mode == "on" or (mode == "auto" and bool(cfg.clip.pretrained)))


def keep_key(clip: dict[str, Any], order: int) -> tuple:
    """Sort key: the first clip of a cluster under this key is the one kept."""

    def high(name: str) -> float:
        value = clip.get(name)
        return -float(value) if value is not None else float("inf")

    return (-clip["duration_s"], high("aesthetic"), high("clip_score"), high("sharpness"), order)


def find_duplicates(
    clips: list[dict[str, Any]], cfg: CurateConfig, embeddings: dict[str, np.ndarray]
) -> dict[str, str]:
    """{clip_id: kept clip_id} for every non-kept member of a cluster of `clips`."""
    uf = SceneUnionFind([(c["video_id"], c["scene_index"]) for c in clips])
    for _, i, j in sorted(duplicate_edges(clips, cfg, embeddings)):
        uf.union(i, j)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(clips)):
        groups[uf.find(i)].append(i)
    out = {}
    for members in groups.values():
        if len(members) > 1:
            best = min(members, key=lambda i: keep_key(clips[i], i))
            out.update({clips[i]["clip_id"]: clips[best]["clip_id"] for i in members if i != best})
    return out


def duplicate_edges(
    clips: list[dict[str, Any]], cfg: CurateConfig, embeddings: dict[str, np.ndarray]
) -> list[tuple[float, int, int]]:
    """(distance, i, j): 0 for equal bytes, hash bits / 64, or 1 - cosine."""
    d, edges = cfg.dedup, []
    if d.exact:
        by_hash: dict[str, list[int]] = defaultdict(list)
        for i, c in enumerate(clips):
            if c.get("sha256"):
                by_hash[c["sha256"]].append(i)
        edges += [(0.0, m[0], j) for m in by_hash.values() for j in m[1:]]
    if d.perceptual:
        hashes = [hashes_of(c) for c in clips]
        pairs = perceptual_pairs(hashes, d.max_hamming, d.min_matched)
        edges += [(bits / 64, i, j) for i, j, bits in pairs]
    if semantic_enabled(cfg):
        have = [i for i, c in enumerate(clips) if c["clip_id"] in embeddings]
        if len(have) > 1:
            emb = np.stack([embeddings[clips[i]["clip_id"]] for i in have]).astype(np.float32)
            pairs = similar_pairs(emb, d.threshold)
            edges += [(1.0 - sim, have[a], have[b]) for a, b, sim in pairs]
    return edges
