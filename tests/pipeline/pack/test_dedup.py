"""Dedup: repeated shots inside one video and across videos keep exactly one; nothing else goes."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np
import pyarrow.parquet as pq

from pipeline.config.curate import CurateConfig, build_config
from pipeline.pack.dedup import SceneUnionFind, find_duplicates, keep_key, match_distance
from pipeline.stages.phash import clip_hashes, dct_hash
from schemas import empty_clip


def _origin(clip, truth, truth_kind) -> tuple[str, int]:
    """(file, shot index) of the shot a clip shows, following repeat_of to the original."""
    label, shot, index = truth_kind(clip, truth)
    entry = next(t for t in truth if clip["source_path"].endswith(t["file"]))
    if label == "repeat":
        return shot["repeat_of"]["file"], shot["repeat_of"]["shot"]
    return entry["file"], index


def test_repeats_in_one_video_and_across_videos_keep_exactly_one(junk_curated, truth_kind):
    out, summary, truth = junk_curated
    clips = pq.read_table(out / "clips.parquet").to_pylist()
    groups: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for c in clips:
        if c["phash"] and truth_kind(c, truth)[0] in ("shot", "repeat"):
            groups[_origin(c, truth, truth_kind)].append(c)
    repeated = {k: g for k, g in groups.items() if len(g) > 1}
    files = {(k[0], c["source_path"].rsplit("/", 1)[1]) for k, g in repeated.items() for c in g}
    assert any(a == b for a, b in files) and any(a != b for a, b in files)  # inside and across
    for members in repeated.values():
        kept = [c for c in members if c["kept"]]
        assert len(kept) == 1
        for c in members:
            if not c["kept"]:
                assert c["reject_reasons"] == ["duplicate"]
                assert c["duplicate_of"] == kept[0]["clip_id"]
    for members in groups.values():
        if len(members) == 1:  # a shot shown once is nobody's duplicate
            assert "duplicate" not in members[0]["reject_reasons"]
    assert summary["dedup"]["duplicates"] == sum(len(g) - 1 for g in repeated.values())


def test_hashes_survive_reencoding_and_differ_between_shots(junk_raw):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (54, 96, 3), dtype=np.uint8)
    noisy = np.clip(a.astype(int) + rng.integers(-6, 7, a.shape), 0, 255).astype(np.uint8)
    b = rng.integers(0, 255, (54, 96, 3), dtype=np.uint8)
    assert bin(dct_hash(a) ^ dct_hash(noisy)).count("1") <= 6
    assert bin(dct_hash(a) ^ dct_hash(b)).count("1") >= 16
    assert len(clip_hashes(np.stack([a] * 9), 2)) == 5


def test_a_repeat_matches_in_order_and_a_single_coincidence_does_not():
    rng = np.random.default_rng(1)
    seq = rng.integers(0, 2**63, 12, dtype=np.uint64)
    assert match_distance(seq[3:9], seq, 8, 0.5) == 0.0  # a sub-span at offset 3
    shuffled = seq[[5, 0, 9, 2, 11, 7]]
    assert match_distance(shuffled, seq, 8, 0.5) is None  # same frames, no common offset
    assert match_distance(seq[:0], seq, 8, 0.5) is None


def test_windows_of_one_scene_never_share_a_cluster():
    uf = SceneUnionFind([("v", 0), ("v", 0), ("w", 3), ("w", 4)])
    uf.union(0, 2)
    uf.union(1, 2)  # would join two windows of scene ("v", 0)
    uf.union(1, 3)
    assert uf.find(0) == uf.find(2) != uf.find(1) == uf.find(3)


def _clip(i: int, video: str, dur: float, hashes: list[int], **extra) -> dict:
    return empty_clip(
        clip_id=f"{video * 16}_{i:07d}_{i + 1:07d}",
        video_id=video * 16,
        scene_index=i,
        duration_s=dur,
        phash=[f"{h:016x}" for h in hashes],
        **extra,
    )


def test_kept_clip_is_the_longest_then_the_best_scored():
    seq, other = np.random.default_rng(2).integers(0, 2**63, (2, 4), dtype=np.uint64).tolist()
    clips = [
        _clip(0, "a", 3.0, seq, aesthetic=6.0),
        _clip(1, "b", 4.0, seq, aesthetic=5.0),
        _clip(2, "c", 4.0, seq, aesthetic=5.5),
        _clip(3, "d", 4.0, other),
    ]
    dup_of = find_duplicates(clips, CurateConfig(), {})
    assert dup_of == {
        clips[0]["clip_id"]: clips[2]["clip_id"],
        clips[1]["clip_id"]: clips[2]["clip_id"],
    }
    assert keep_key(clips[2], 2) < keep_key(clips[1], 1) < keep_key(clips[0], 0)


def test_semantic_duplicates_from_embeddings():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 16))
    emb = np.concatenate([base, base[:1] + 0.01 * rng.normal(size=(1, 16))])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    clips = [_clip(i, "abcd"[i], 3.0 + i, []) for i in range(4)]
    embeddings = {c["clip_id"]: e for c, e in zip(clips, emb, strict=True)}
    cfg = build_config(
        {"dedup": {"semantic": "on", "perceptual": False}, "clip": {"enabled": True}}
    )
    assert find_duplicates(clips, cfg, embeddings) == {clips[0]["clip_id"]: clips[3]["clip_id"]}
    off = dataclasses.replace(cfg, dedup=dataclasses.replace(cfg.dedup, semantic="auto"))
    assert find_duplicates(clips, off, embeddings) == {}  # random CLIP weights: not trusted
