"""train/finetune/data.py: FinetuneDataModule over shards of mixed shapes, lengths and captions.

The clips (conftest MIXED) are square, portrait and wide, 9 to 24 frames long, with three
the grid must drop (too short, uncaptioned, too small). Batches are read without a
Trainer, as a rank of world size 1 would read them.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from train.finetune.buckets import Bucket
from train.finetune.data import FinetuneDataModule, edit_caption
from train.finetune.registry import load_family

FRAMES, SIZES = [9, 17], [[32, 32], [32, 48]]  # conftest GRIDS["wan"]
PREFIX = "mystyle"


def make_data(shards: str, **overrides: Any) -> FinetuneDataModule:
    """The data module on the Wan grid at 12 fps, one process, no workers."""
    args = dict(
        shards=shards, frame_buckets=FRAMES, size_buckets=SIZES, fps=12.0, batch_size=2,
        num_workers=0, epoch_size=24, shuffle_buffer=4, caption_dropout=0.0, seed=0,
    )  # fmt: skip
    return FinetuneDataModule(**{**args, **overrides})


def epoch(data: FinetuneDataModule) -> list[dict[str, Any]]:
    """One epoch of batches (resampled: epoch_size / batch_size of them)."""
    data.setup("fit")
    return list(data.train_dataloader())


@pytest.fixture(scope="module")
def batches(mixed_shards) -> tuple[FinetuneDataModule, list[dict[str, Any]]]:
    data = make_data(mixed_shards)
    return data, epoch(data)


def test_the_plan_assigns_every_clip_its_bucket(batches, mixed):
    data, _ = batches
    expected = {k: v[-1] for k, v in mixed.items() if "x" in v[-1]}
    assert data.plan["assignments"] == expected
    dropped = {r: d["clips"] for r, d in data.plan["dropped"].items() if d["clips"]}
    assert dropped == {"too_short": 1, "no_caption": 1, "too_small": 1}


def test_every_batch_is_one_bucket_the_clips_own(batches, mixed):
    _, loaded = batches
    assert len(loaded) == 12  # epoch_size 24 / batch 2, all full
    shapes = set()
    for batch in loaded:
        (name,) = {mixed[key][-1] for key in batch["key"]}  # one bucket per batch
        bucket = Bucket.parse(name)
        video = batch["video"]
        assert video.shape == (2, 3, bucket.frames, bucket.height, bucket.width)
        assert video.dtype == torch.float32 and -1 <= video.min() <= video.max() <= 1
        shapes.add(name)
    assert shapes == {"17x32x32", "17x32x48", "9x32x32", "9x32x48"}


def test_clips_the_plan_drops_never_appear(batches, mixed):
    data, loaded = batches
    seen = {key for batch in loaded for key in batch["key"]}
    used = {k for k, v in mixed.items() if "x" in v[-1]}
    assert seen <= used and len(seen) >= 5
    assert not seen & {"too_short", "no_caption", "too_small"}
    # skipped before decoding: not counted as corrupt (the plan counted them, with reasons)
    assert not any(k.startswith("corrupt") for k in data.train_dataloader().stats)
    assert data.plan["total"]["clips"] - data.plan["total"]["used_clips"] == 3


def test_sample_weight_reaches_the_batch(batches, mixed):
    _, loaded = batches
    for batch in loaded:
        expected = [mixed[key][4] for key in batch["key"]]
        assert batch["weight"].tolist() == expected


def test_no_dropout_keeps_every_caption(batches, mixed):
    _, loaded = batches
    for batch in loaded:
        assert batch["caption"] == [mixed[key][3] for key in batch["key"]]


def test_caption_prefix_goes_in_front(mixed_shards, mixed):
    loaded = epoch(make_data(mixed_shards, caption_prefix=PREFIX, epoch_size=8))
    for batch in loaded:
        assert batch["caption"] == [f"{PREFIX} {mixed[key][3]}" for key in batch["key"]]


def test_caption_dropout_is_seeded(mixed_shards, mixed):
    runs = [epoch(make_data(mixed_shards, caption_dropout=0.5, epoch_size=32)) for _ in (0, 1)]
    captions = [[c for b in run for c in b["caption"]] for run in runs]
    assert captions[0] == captions[1]  # the same seed drops the same samples
    dropped = captions[0].count("")
    assert 4 <= dropped <= 28, dropped  # about half of 32
    for batch in runs[0]:  # the rest keep their own caption
        for key, caption in zip(batch["key"], batch["caption"], strict=True):
            assert caption in ("", mixed[key][3])


def test_edit_caption_only_drops_in_training():
    class Always:
        def random(self) -> float:
            return 0.0

    assert edit_caption("a cat", PREFIX, 0.5, Always()) == ""
    assert edit_caption("a cat", PREFIX, 0.5, None) == f"{PREFIX} a cat"  # validation
    assert edit_caption("a cat", None, 0.0, Always()) == "a cat"


def test_a_dataset_where_nothing_fits_stops_at_setup(mixed_shards):
    data = make_data(mixed_shards, frame_buckets=[33])  # every clip is shorter
    with pytest.raises(ValueError, match=r"^--data\.shards: none of the 10 clips fits"):
        data.setup("fit")


@pytest.mark.parametrize("sources", [{}, {"cache": "some/cache"}], ids=["neither", "both"])
def test_shards_or_cache_exactly_one(mixed_shards, sources):
    shards = None if not sources else mixed_shards
    with pytest.raises(ValueError, match="--data.shards or --data.cache"):
        FinetuneDataModule(shards=shards, **sources)


def test_prefix_is_refused_with_a_cache():
    with pytest.raises(ValueError, match="--data.caption_prefix.*--caption-prefix"):
        FinetuneDataModule(cache="some/cache", caption_prefix=PREFIX)


@pytest.mark.parametrize(
    ("family", "buckets", "flag"),
    [
        ("wan", {"frame_buckets": [8, 16]}, "--data.frame_buckets"),
        ("wan", {"size_buckets": [[32, 40]]}, "--data.size_buckets"),
        ("ltx", {"frame_buckets": [13]}, "--data.frame_buckets"),  # LTX: 8k+1
        ("ltx", {"size_buckets": [[32, 48]]}, "--data.size_buckets"),  # LTX: 32 px
    ],
)
def test_check_family_names_the_flag(tiny_pipeline, mixed_shards, family, buckets, flag):
    family = load_family(tiny_pipeline(family))
    on_both = {"size_buckets": [[32, 32], [32, 64]]}  # 4k+1 and 8k+1 frames, 32 px
    make_data(mixed_shards, **on_both).check_family(family)
    with pytest.raises(ValueError, match=f"^{flag}: {family.name}"):
        make_data(mixed_shards, **{**on_both, **buckets}).check_family(family)
