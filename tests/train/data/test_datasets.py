"""train/data/ (datasets, loaders, augment) on tiny shards made with the curation's ShardWriter.

Clips are 12 frames of 48x64 at 24 fps: a grey band at the top whose level
encodes the frame index, and a red square moving left (or right) below it, so
frame choice, mirroring and cropping can all be read back from the pixels.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from schemas import empty_clip
from train.data.augment import (
    CorruptSample,
    SampleConfig,
    caption_choices,
    flip_caption,
    pick_caption,
    prepare_sample,
    temporal_indices,
)
from train.data.datasets import make_dataset
from train.data.loaders import VideoLoader
from train.data.module import VideoDataModule
from train.data.shards import count_samples, expand_shards, iter_tar_samples
from train.data.video_io import Mp4Reader, encode_mp4

FRAMES, H, W, FPS = 12, 48, 64, 24.0


def render(direction: int, frames: int = FRAMES) -> np.ndarray:
    """Band rows 0-7: grey 10 + 20 * i. Square 12x12, red, moving 4 px/frame."""
    video = np.zeros((frames, H, W, 3), np.uint8)
    for i in range(frames):
        video[i, :8] = 10 + 20 * (i % 12)
        x = 48 - 4 * i if direction < 0 else 4 + 4 * i
        video[i, 24:36, x : x + 12, 0] = 255
    return video


def frame_index(frame: np.ndarray) -> int:
    """From a uint8 [H, W, 3] frame of any size made by `render`."""
    band = frame[: max(1, frame.shape[0] // 12), :, 1]
    return round((float(np.median(band)) - 10) / 20)


def square_x(frame: np.ndarray) -> float:
    red = (frame[..., 0].astype(int) - frame[..., 1]) > 100
    return float(np.nonzero(red)[1].mean())


def record(key: str, caption: str, **extra) -> dict:
    captions = [
        {"text": caption, "source": "vlm", "score": 0.9},
        {"text": caption.replace("square", "box"), "source": "filename", "score": None},
    ]
    return empty_clip(
        clip_id=key, caption=caption, captions=captions, fps=FPS, n_frames=FRAMES, width=W,
        height=H, motion_score=extra.get("motion_score"),
        sample_weight=extra.get("sample_weight"), kept=True,
    )  # fmt: skip


def clip_key(i: int) -> str:
    return f"{i:016x}_{0:07d}_{FRAMES:07d}"


LEFT, RIGHT = encode_mp4(render(-1), FPS), encode_mp4(render(+1), FPS)


def raw_sample(i: int, direction: int = -1, **extra) -> dict:
    side = "left" if direction < 0 else "right"
    caption = f"a red square moving {side}"
    return {
        "__key__": clip_key(i),
        "mp4": LEFT if direction < 0 else RIGHT,
        "txt": caption.encode(),
        "json": json.dumps(record(clip_key(i), caption, **extra)).encode(),
    }


def clip_samples(n_good: int, corrupt_at: int | None):
    """(key, mp4, record): clips left and right in turn (weight 2 at key 1, motion 0.5 at
    key 2), and a truncated mp4 at `corrupt_at`."""
    for i in range(n_good + (corrupt_at is not None)):
        if i == corrupt_at:
            yield clip_key(i), b"\x00\x00\x00\x18ftypmp42 truncated", record(clip_key(i), "broken")
            continue
        side = "left" if i % 2 == 0 else "right"
        extra = dict(sample_weight=2.0 if i == 1 else None, motion_score=0.5 if i == 2 else None)
        record_i = record(clip_key(i), f"a red square moving {side}", **extra)
        yield clip_key(i), LEFT if side == "left" else RIGHT, record_i


@pytest.fixture(scope="module")
def write_shards(shard_writer):
    """`write_shards(out, n_good, corrupt_at, per_shard)`: the shard paths, sorted."""

    def write(out: Path, n_good: int, corrupt_at: int | None, per_shard: int) -> list[str]:
        shard_writer(out, clip_samples(n_good, corrupt_at), FPS, max_samples=per_shard)
        return sorted(str(p) for p in out.glob("*.tar"))

    return write


@pytest.fixture(scope="module")
def shards(tmp_path_factory, write_shards) -> list[str]:
    """6 good clips and a corrupt mp4 (key 3) in two shards of 4 and 3 samples."""
    return write_shards(tmp_path_factory.mktemp("shards"), 6, corrupt_at=3, per_shard=4)


@pytest.fixture(scope="module")
def one_shard(tmp_path_factory, write_shards) -> list[str]:
    """8 good clips in a single shard."""
    return write_shards(tmp_path_factory.mktemp("one"), 8, corrupt_at=None, per_shard=100)


GOOD = {clip_key(i) for i in range(7)} - {clip_key(3)}


def test_batches_have_the_promised_shapes_ranges_and_fields(shards: list[str]) -> None:
    dataset = make_dataset(shards, mode="epoch", rank=0, world_size=1)
    batches = list(VideoLoader(dataset, batch_size=4, num_workers=0))
    batch = batches[0]
    assert batch["video"].shape == (4, 3, 8, 32, 32) and batch["video"].dtype == torch.float32
    assert -1.0 <= batch["video"].min() < batch["video"].max() <= 1.0
    for name in ("fps", "motion_score", "clip_score", "aesthetic", "weight"):
        assert batch[name].shape == (4,) and batch[name].dtype == torch.float32
    assert torch.isnan(batch["clip_score"]).all() and torch.isnan(batch["aesthetic"]).all()
    assert all(isinstance(c, str) and c for c in batch["caption"])
    keys = [k for b in batches for k in b["key"]]
    by_key = {
        k: (b["weight"][j].item(), b["motion_score"][j].item())
        for b in batches
        for j, k in enumerate(b["key"])
    }
    assert by_key[clip_key(1)][0] == 2.0 and by_key[clip_key(0)][0] == 1.0
    assert by_key[clip_key(2)][1] == 0.5 and math.isnan(by_key[clip_key(0)][1])
    assert sorted(keys) == sorted(GOOD)


@pytest.mark.timeout(120)
def test_corrupt_sample_is_skipped_and_counted_across_workers(shards: list[str]) -> None:
    # Decoding here first, then forking workers, once hung: a worker inherited
    # the parent's cached swscale context and waited on threads that stayed behind.
    prepare_sample(raw_sample(0), SampleConfig(), None)
    dataset = make_dataset(shards, mode="epoch", rank=0, world_size=1)
    loader = VideoLoader(dataset, batch_size=2, num_workers=2)
    keys = [k for batch in loader for k in batch["key"]]
    assert sorted(keys) == sorted(GOOD)
    assert loader.stats["corrupt"] == 1 and loader.stats["corrupt/decode_error"] == 1
    assert loader.stats["samples"] == 6 and loader.stats["padded"] == 0


def test_bad_json_and_missing_mp4_are_corrupt() -> None:
    cfg = SampleConfig()
    with pytest.raises(CorruptSample, match="bad_json"):
        prepare_sample({**raw_sample(0), "json": b"{not json"}, cfg, None)
    with pytest.raises(CorruptSample, match="missing_mp4"):
        prepare_sample({k: v for k, v in raw_sample(0).items() if k != "mp4"}, cfg, None)


def test_flip_mirrors_frames_and_swaps_left_right_in_the_caption() -> None:
    rng = np.random.default_rng(0)
    cfg = SampleConfig(num_frames=8, size=(32, 32), caption_rotation=False)
    plain = prepare_sample(
        raw_sample(0, -1), SampleConfig(**{**cfg.__dict__, "flip_prob": 0.0}), rng
    )
    flipped = prepare_sample(
        raw_sample(0, -1), SampleConfig(**{**cfg.__dict__, "flip_prob": 1.0}), rng
    )
    xs = [square_x(f) for f in plain["video"]]
    assert plain["caption"] == "a red square moving left" and xs[-1] < xs[0]
    xs = [square_x(f) for f in flipped["video"]]
    assert flipped["caption"] == "a red square moving right" and xs[-1] > xs[0]


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("Left hand, then right", "Right hand, then left"),
        ("LEFT", "RIGHT"),
        ("drifting leftward to the rightmost edge", "drifting rightward to the leftmost edge"),
        ("leftover bright lights", "leftover bright lights"),
        ("", ""),
    ],
)
def test_flip_caption(caption: str, expected: str) -> None:
    assert flip_caption(caption) == expected


def test_flip_caption_takes_configured_pairs() -> None:
    pairs = [("left", "right"), ("clockwise", "counterclockwise")]
    assert (
        flip_caption("turns clockwise to the left", pairs) == "turns counterclockwise to the right"
    )
    assert flip_caption("spins counterclockwise", pairs) == "spins clockwise"


def sampled(raw: dict, **cfg) -> tuple[list[int], dict]:
    sample = prepare_sample(raw, SampleConfig(flip_prob=0.0, **cfg), np.random.default_rng(1))
    return [frame_index(f) for f in sample["video"]], sample


@pytest.mark.parametrize(
    ("cfg", "step", "fps"),
    [
        ({"num_frames": 4, "fps": 8.0}, 3, 8.0),  # 24 fps clip -> every 3rd frame
        ({"num_frames": 4, "frame_stride": 2}, 2, 12.0),
        ({"num_frames": 4}, 1, 24.0),
        ({"num_frames": 6, "frame_stride": 3}, 2, 12.0),  # 16 frames needed: stride lowered to 2
        ({"num_frames": 4, "fps": 48.0}, 1, 24.0),  # never faster than the clip
    ],
)
def test_temporal_sampling_picks_the_right_frames(cfg: dict, step: int, fps: float) -> None:
    indices, sample = sampled(raw_sample(0), **cfg)
    assert np.diff(indices).tolist() == [step] * (cfg["num_frames"] - 1)
    assert indices[0] >= 0 and indices[-1] < FRAMES
    assert sample["fps"] == pytest.approx(fps)


def test_clip_shorter_than_num_frames_repeats_its_last_frame() -> None:
    indices, sample = sampled(raw_sample(0), num_frames=16)
    assert indices == list(range(12)) + [11] * 4 and sample["fps"] == FPS


def test_temporal_indices_fractional_stride_and_centre() -> None:
    indices, stride = temporal_indices(100, 5, 3.75, rng=None)
    assert stride == 3.75 and np.diff(indices).tolist() in ([4, 4, 3, 4], [4, 3, 4, 4])
    assert indices[0] == (100 - 16) // 2
    indices, stride = temporal_indices(10, 5, 3.75, rng=None)  # too short: largest that fits
    assert stride == pytest.approx(9 / 4) and indices[0] == 0 and indices[-1] == 9


def test_caption_rotation_draws_from_the_stored_captions() -> None:
    rec = record("k", "a red square", sample_weight=None)
    choices = caption_choices(rec, "a red square")
    assert choices == ["a red square", "a red box"]
    rng = np.random.default_rng(0)
    assert {pick_caption(choices, rng) for _ in range(50)} == set(choices)
    assert pick_caption(choices, None) == "a red square" and pick_caption([], rng) == ""
    _, sample = sampled(raw_sample(0), caption_rotation=False)
    assert sample["caption"] == "a red square moving left"


def keys_of(dataset, worker: int, workers: int) -> list[str]:
    return [r["key"] for r in dataset.iter_records(worker, workers) if not r.get("_end")]


@pytest.mark.parametrize("epoch", [0, 1])
def test_exact_epoch_covers_one_shard_once_over_2_ranks_x_2_workers(
    one_shard: list[str], epoch: int
) -> None:
    per_rank = []
    for rank in range(2):
        dataset = make_dataset(one_shard, mode="epoch", rank=rank, world_size=2)
        dataset.set_epoch(epoch)
        per_rank.append([k for w in range(2) for k in keys_of(dataset, w, 2)])
    everything = per_rank[0] + per_rank[1]
    assert sorted(everything) == sorted(clip_key(i) for i in range(8))  # disjoint and complete
    assert len(per_rank[0]) == len(per_rank[1]) == 4


def test_epoch_mode_gives_every_rank_the_same_batches_despite_corruption(shards) -> None:
    # 7 samples over 2 ranks: 4 positions each, one wraps; one rank also loses
    # the corrupt sample and repeats one of its own, so neither waits in DDP.
    loaders = [
        VideoLoader(
            make_dataset(shards, mode="epoch", rank=r, world_size=2), batch_size=3, num_workers=0
        )
        for r in range(2)
    ]
    runs = [[b["key"] for b in loader] for loader in loaders]
    assert [len(run) for run in runs] == [len(loader) for loader in loaders] == [2, 2]
    assert [sum(map(len, run)) for run in runs] == [4, 4]
    assert sum(loader.stats["corrupt"] for loader in loaders) == 1
    assert sum(loader.stats["padded"] for loader in loaders) == 1
    assert {k for run in runs for batch in run for k in batch} == GOOD


def test_resampled_mode_is_infinite_and_seeded(one_shard: list[str]) -> None:
    def first(n: int, seed: int, rank: int = 0) -> list:
        dataset = make_dataset(one_shard, mode="resampled", seed=seed, rank=rank, world_size=2)
        return list(itertools.islice(dataset, n))

    a, b = first(20, seed=0), first(20, seed=0)
    assert len(a) == 20  # 2.5 passes over 8 samples
    assert [s["key"] for s in a] == [s["key"] for s in b]
    assert all(
        np.array_equal(x["video"], y["video"]) and x["caption"] == y["caption"]
        for x, y in zip(a, b, strict=True)
    )
    assert [s["key"] for s in a] != [s["key"] for s in first(20, seed=1)]
    assert [s["key"] for s in a] != [s["key"] for s in first(20, seed=0, rank=1)]


def test_resampled_mode_sees_every_clip_equally_whatever_the_shard_sizes(
    tmp_path, write_shards
) -> None:
    # A full shard of 6 clips and a last one of 1: the lone clip must not be
    # over- or under-drawn.
    shards = write_shards(tmp_path, 7, corrupt_at=None, per_shard=6)
    cfg = SampleConfig(num_frames=1, size=8)
    dataset = make_dataset(shards, cfg, rank=0, world_size=1, shuffle_buffer=0)
    keys = [s["key"] for s in itertools.islice(dataset, 280)]
    assert 20 <= keys.count(clip_key(6)) <= 60  # 40 expected


def test_resampled_loader_epochs_have_epoch_size_and_differ(shards: list[str]) -> None:
    dataset = make_dataset(shards, mode="resampled", rank=0, world_size=1, shuffle_buffer=8)
    loader = VideoLoader(dataset, batch_size=4, num_workers=0, epoch_size=10)
    epochs = [[k for batch in loader for k in batch["key"]] for _ in range(2)]
    assert len(loader) == 3 and [len(e) for e in epochs] == [12, 12]
    assert set(epochs[0]) <= GOOD and epochs[0] != epochs[1]


def test_workers_outlive_epochs_so_the_decode_cache_stays_warm(
    one_shard: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Decodes are counted in a file: the workers are forked processes.
    log = tmp_path / "decodes"
    read_all = Mp4Reader.read_all

    def counted(self, *args, **kwargs):
        with log.open("a") as f:
            f.write("decode\n")
        return read_all(self, *args, **kwargs)

    monkeypatch.setattr(Mp4Reader, "read_all", counted)
    cfg = SampleConfig(num_frames=4, size=16, decode_cache_mb=64)

    def loader(epoch_fn=None) -> VideoLoader:
        dataset = make_dataset(one_shard, cfg, rank=0, world_size=1, shuffle_buffer=8)
        return VideoLoader(dataset, batch_size=4, num_workers=2, epoch_size=16, epoch_fn=epoch_fn)

    def decodes() -> int:
        n = len(log.read_text().splitlines()) if log.exists() else 0
        log.unlink(missing_ok=True)
        return n

    kept = loader()
    epochs = [[(k, v) for b in kept for k, v in zip(b["key"], b["video"], strict=True)]
              for _ in range(3)]  # fmt: skip
    warm = decodes()
    # The same epochs, each from a loader (and workers) of its own, as before the change.
    fresh = []
    for e in range(3):
        fresh.append([(k, v) for b in loader(lambda e=e: e)
                      for k, v in zip(b["key"], b["video"], strict=True)])  # fmt: skip
    cold = decodes()
    assert [[k for k, _ in e] for e in epochs] == [[k for k, _ in e] for e in fresh]
    assert all(torch.equal(a, b) for e, f in zip(epochs, fresh, strict=True)
               for (_, a), (_, b) in zip(e, f, strict=True))  # fmt: skip
    assert epochs[0] != epochs[1]
    assert warm <= 2 * 8 < cold  # each of 2 workers decodes each of the 8 clips at most once


def test_expand_shards_globs_braces_dirs_and_lists(shards: list[str]) -> None:
    folder = str(Path(shards[0]).parent)
    assert expand_shards(folder + "/shard-{000000..000001}.tar") == shards
    assert expand_shards(folder + "/*.tar") == shards
    assert expand_shards(folder) == shards
    assert expand_shards([shards[1], shards[0], shards[1]]) == [shards[1], shards[0]]
    with pytest.raises(FileNotFoundError, match="--data.shards"):
        expand_shards(folder + "/nothing-*.tar")
    with pytest.raises(FileNotFoundError, match="--data.val_shards"):
        expand_shards(folder + "/shard-{000000..000005}.tar", flag="--data.val_shards")


def test_tar_reading_counts_and_slices(shards: list[str]) -> None:
    assert [count_samples(s) for s in shards] == [4, 3]
    keys = [s["__key__"] for s in iter_tar_samples(shards[0], 1, 3)]
    assert keys == [clip_key(1), clip_key(2)]
    piped = f"pipe:cat {shards[0]}"  # streamed, as remote shards are
    assert expand_shards(piped) == [piped] and count_samples(piped) == 4
    assert [s["__key__"] for s in iter_tar_samples(piped, 1, 3)] == keys


def test_datamodule_yields_batches_and_validates_flags(shards: list[str]) -> None:
    folder = str(Path(shards[0]).parent)
    dm = VideoDataModule(
        shards=folder + "/*.tar",
        val_shards=shards[:1],
        batch_size=2,
        num_workers=0,
        size=(16, 24),
        num_frames=4,
        epoch_size=6,
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (2, 3, 4, 16, 24) and len(dm.train_dataloader()) == 3
    val = [k for b in dm.val_dataloader() for k in b["key"]]
    assert val == [clip_key(i) for i in range(4) if i != 3]  # in order, corrupt one skipped
    assert dm.stats["val"]["corrupt"] == 1
    with pytest.raises(ValueError, match="give one of --data.fps, --data.frame_stride"):
        VideoDataModule(shards=folder, fps=8.0, frame_stride=2)
    with pytest.raises(ValueError, match="--data.flip_prob"):
        VideoDataModule(shards=folder, flip_prob=2.0)
    with pytest.raises(FileNotFoundError, match="--data.shards"):
        VideoDataModule(shards=folder + "/none-*.tar", num_workers=0).setup("fit")


def test_datamodule_arguments_parse_as_cli_flags(shards: list[str]) -> None:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(VideoDataModule, "data")
    args = parser.parse_args(
        [
            "--data.shards",
            shards[0],
            "--data.size",
            "[16, 24]",
            "--data.flip_pairs",
            '[["up", "down"]]',
            "--data.mode",
            "epoch",
        ]
    )
    dm = parser.instantiate(args).data
    assert dm.sample_cfg.size == (16, 24) and dm.sample_cfg.flip_pairs == (("up", "down"),)
    assert dm.hparams.mode == "epoch"


def test_lightning_fit_runs_epochs_over_the_datamodule(shards: list[str]) -> None:
    import lightning as L

    class Probe(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(1, 1)
            self.keys: list[tuple[int, str]] = []

        def training_step(self, batch: dict, _: int) -> torch.Tensor:
            self.keys += [(self.current_epoch, k) for k in batch["key"]]
            return self.layer(batch["video"].mean(dim=(1, 2, 3, 4))[:, None]).mean()

        def validation_step(self, batch: dict, _: int) -> None:
            self.log("val", batch["video"].mean(), batch_size=len(batch["key"]))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    for val_shards in (None, shards[1:]):
        dm = VideoDataModule(
            shards=shards,
            val_shards=val_shards,
            batch_size=2,
            num_workers=0,
            mode="epoch",
            num_frames=2,
            size=16,
        )
        probe = Probe()
        trainer = L.Trainer(
            max_epochs=2,
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            enable_checkpointing=False,
            enable_model_summary=False,
        )
        trainer.fit(probe, dm)
        for epoch in (0, 1):
            assert sorted(k for e, k in probe.keys if e == epoch) == sorted(GOOD)
        assert [k for e, k in probe.keys if e == 0] != [k for e, k in probe.keys if e == 1]
