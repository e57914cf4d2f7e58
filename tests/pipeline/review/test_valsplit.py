"""`clipmill pack OUT --val.fraction F`: whole groups to one side, near the target, seeded.

(Tests of pipeline/pack/valsplit.py; they live beside the review tests because they share
the copy of the curated junk run.)"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.config.curate import ConfigError, build_config
from pipeline.pack.valsplit import choose_val, leakage_groups
from train.data.shards import expand_shards


def test_a_duplicate_pair_across_videos_joins_their_videos():
    def clip(i: int, video: str, sha: str) -> dict:
        return {"clip_id": f"c{i}", "video_id": video, "sha256": sha, "kept": True}

    kept = [clip(0, "a", "x"), clip(1, "a", "y"), clip(2, "b", "z"), clip(3, "c", "y")]
    cfg = build_config({"dedup": {"perceptual": False}})
    # c3 repeats c1 byte for byte: videos a and c are one group, b is alone.
    assert leakage_groups(kept, cfg, {}) == [[0, 1, 3], [2]]


@pytest.mark.parametrize("seed", range(20))
def test_val_is_within_one_group_of_the_target_and_deterministic(seed):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 30, size=int(rng.integers(2, 40))).tolist()
    fraction = float(rng.uniform(0.05, 0.5))
    val = choose_val(sizes, fraction, seed)
    assert abs(sum(sizes[g] for g in val) - fraction * sum(sizes)) <= max(sizes)
    assert choose_val(sizes, fraction, seed) == val


def test_seeds_choose_different_groups():
    sizes = [3] * 20
    assert len({frozenset(choose_val(sizes, 0.25, s)) for s in range(5)}) > 1


def test_a_bad_fraction_fails_naming_the_flag():
    with pytest.raises(ConfigError, match="--val.fraction"):
        build_config({"val": {"fraction": 1.5}})


def test_pack_writes_train_and_val_shards_the_trainer_reads(curated, capsys):
    assert main(["pack", str(curated), "--val.fraction", "0.34", "--val.seed", "3"]) == 0
    summary = json.loads((curated / "summary.json").read_text())
    rows = pq.read_table(curated / "clips.parquet").to_pylist()
    kept = [c for c in rows if c["kept"]]
    split = summary["split"]
    assert split["val"]["clips"] > 0 and split["train"]["clips"] > 0
    assert split["val"]["clips"] + split["train"]["clips"] == len(kept)
    assert abs(split["val"]["clips"] - 0.34 * len(kept)) <= split["largest_group"]
    assert split["val"]["seconds"] == round(
        sum(c["duration_s"] for c in kept if c["split"] == "val"), 3
    )
    assert {c["split"] for c in kept} == {"train", "val"}
    assert all(c["split"] is None for c in rows if not c["kept"])
    sides = {side: {c["video_id"] for c in kept if c["split"] == side} for side in ("train", "val")}
    assert not sides["train"] & sides["val"]  # a video never straddles the split
    assert not list((curated / "shards").glob("*.tar"))
    val = expand_shards(str(curated / "shards" / "val" / "*.tar"), flag="--data.val_shards")
    assert val == sorted(str(curated / "shards" / s) for s in summary["shards"] if "val/" in s)
    assert expand_shards(str(curated / "shards" / "val"), flag="--data.val_shards") == val
    # The same seed, the same split; no fraction, the one-folder layout again.
    assert main(["pack", str(curated), "--val.fraction", "0.34", "--val.seed", "3"]) == 0
    again = pq.read_table(curated / "clips.parquet").to_pylist()
    assert [c["split"] for c in again] == [c["split"] for c in rows]
    assert main(["pack", str(curated), "--val.fraction", "0"]) == 0
    assert not (curated / "shards" / "val").exists() and list((curated / "shards").glob("*.tar"))
    assert "split" not in json.loads((curated / "summary.json").read_text())


def test_near_duplicates_kept_in_two_videos_land_on_one_side(curated):
    # keep all: the junk run's repeats across videos stay, and tie their videos together.
    assert main(["pack", str(curated), "--dedup.keep", "all", "--val.fraction", "0.3"]) == 0
    rows = {c["clip_id"]: c for c in pq.read_table(curated / "clips.parquet").to_pylist()}
    pairs = [(c, rows[c["duplicate_of"]]) for c in rows.values() if c["kept"] and c["duplicate_of"]]
    assert any(a["video_id"] != b["video_id"] for a, b in pairs)
    assert all(a["split"] == b["split"] is not None for a, b in pairs)
