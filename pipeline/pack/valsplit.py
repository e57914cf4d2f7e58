"""The leakage-safe train/val split (driver, at pack time, after every decision).

Clips in: the decided rows (`kept`, `video_id`) and their embeddings.
Out:      `split` = "train" | "val" on every kept clip; a report for summary.json.

A val clip that has a near-duplicate in train measures memory, not generalisation.
So whole groups go to one side: a group is a source video together with every
kept clip that is a near-duplicate of one of its clips (the same exact, perceptual
and semantic edges as dedup, `pipeline/pack/dedup.py`), closed under union. With
`--dedup.keep best` no two kept clips are duplicates and groups are the videos;
with `keep all` (or a person's keep) repeats across videos join their videos.

Groups are shuffled by `--val.seed` and taken into val while each brings the count
nearer to `--val.fraction` of the kept clips, so the result is within one group of
the target (the smallest gap whole groups allow, or close to it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.config.curate import CurateConfig
from pipeline.pack.dedup import UnionFind, duplicate_edges


def leakage_groups(
    kept: list[dict[str, Any]], cfg: CurateConfig, embeddings: dict[str, np.ndarray]
) -> list[list[int]]:
    """Indices of `kept` by group, each sorted, groups in order of their first clip."""
    uf = UnionFind(len(kept))
    first_of_video: dict[str, int] = {}
    for i, c in enumerate(kept):
        uf.union(first_of_video.setdefault(c["video_id"], i), i)
    for _, i, j in duplicate_edges(kept, cfg, embeddings):
        uf.union(i, j)
    index = {c["clip_id"]: i for i, c in enumerate(kept)}
    for i, c in enumerate(kept):  # a kept member of a dedup cluster (keep all)
        if c.get("duplicate_of") in index:
            uf.union(i, index[c["duplicate_of"]])
    groups: dict[int, list[int]] = {}
    for i in range(len(kept)):
        groups.setdefault(uf.find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def choose_val(sizes: list[int], fraction: float, seed: int) -> set[int]:
    """Indices of the groups that go to val: seeded order, greedy towards the target."""
    target = fraction * sum(sizes)
    val: set[int] = set()
    count = 0
    for g in np.random.default_rng(seed).permutation(len(sizes)).tolist():
        # Take a group only when it brings the count nearer the target: the final gap
        # is then below half of the largest group that was left out.
        if abs(count + sizes[g] - target) < abs(count - target):
            val.add(g)
            count += sizes[g]
    return val


def assign_split(
    clips: list[dict[str, Any]], cfg: CurateConfig, embeddings: dict[str, np.ndarray]
) -> dict[str, Any] | None:
    """Set `split` on every clip (null unless kept with --val.fraction); the report."""
    for c in clips:
        c["split"] = None
    if not cfg.val.fraction:
        return None
    kept = [c for c in clips if c["kept"]]
    groups = leakage_groups(kept, cfg, embeddings)
    val = choose_val([len(g) for g in groups], cfg.val.fraction, cfg.val.seed)
    for g, members in enumerate(groups):
        for i in members:
            kept[i]["split"] = "val" if g in val else "train"
    report: dict[str, Any] = {
        "fraction": cfg.val.fraction,
        "seed": cfg.val.seed,
        "groups": len(groups),
        "largest_group": max((len(g) for g in groups), default=0),
    }
    for side in ("train", "val"):
        mine = [c for c in kept if c["split"] == side]
        report[side] = {
            "clips": len(mine),
            "seconds": round(sum(c["duration_s"] for c in mine), 3),
            "videos": len({c["video_id"] for c in mine}),
        }
    return report
