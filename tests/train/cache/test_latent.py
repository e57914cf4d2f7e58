"""`--data.kind latents` (train/cache/latent.py) and latent-space VideoDiffusion on a tiny cache.

The cache is built here with the real CacheBuilder from tiny shards written
by the curation's ShardWriter, a tiny random VideoAutoencoder and the random
text encoder; a few stills go to its images/ shards.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections import defaultdict
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from schemas.shards import ShardWriter
from train.autoencoder.io import save_autoencoder
from train.autoencoder.model import AutoencoderConfig, VideoAutoencoder
from train.cache.builder import CacheBuilder, CacheConfig
from train.cache.format import StaleCache
from train.cache.sources import add_images, add_shards
from train.cli import sample_main, train_main
from train.data.module import VideoDataModule
from train.data.video_io import encode_mp4
from train.models.dit import DiTConfig
from train.models.text import TextEncoderSpec, build_text_encoder
from train.module import VideoDiffusion

FRAMES, SIZE, FPS, VIEWS = 9, 16, 12.0, 2
VAE_CFG = AutoencoderConfig(
    latent_channels=4, temporal_compression=2, spatial_compression=4, base_width=8
)
TEXT = TextEncoderSpec(kind="random", dim=16, max_length=16)
CFG = CacheConfig(views=VIEWS, num_frames=5, size=(SIZE, SIZE), seed=0)
TEST_YAML = str(Path(__file__).parents[3] / "configs" / "train" / "test.yaml")


def clip(direction: int) -> np.ndarray:
    video = np.full((FRAMES, SIZE, SIZE, 3), 30, np.uint8)
    for i in range(FRAMES):
        x = 1 + i if direction > 0 else SIZE - 6 - i
        video[i, 5:10, x : x + 5] = (230, 20, 20)
    return video


def write_shards(out: Path, n: int) -> str:
    with ShardWriter(out, max_samples=3) as writer:
        for i in range(n):
            key = f"{i:016x}_{0:07d}_{FRAMES:07d}"
            side = "right" if i % 2 else "left"
            caption = f"a red square moving {side}"
            record = {
                "clip_id": key,
                "caption": caption,
                "captions": [
                    {"text": caption, "source": "vlm", "score": 0.9},
                    {"text": f"red box heading {side}", "source": "filename", "score": None},
                    {"text": f"square going {side}", "source": "sidecar", "score": None},
                ],
                "fps": FPS,
                "motion_score": 1.0,
                "sample_weight": None,
            }
            mp4 = encode_mp4(clip(1 if i % 2 else -1), FPS)
            writer.write(key, {"mp4": mp4, "txt": caption, "json": json.dumps(record)})
    return str(out / "*.tar")


def tiny_vae(seed: int = 0) -> VideoAutoencoder:
    torch.manual_seed(seed)
    return VideoAutoencoder(VAE_CFG).eval()


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("latent")
    images = root / "images"
    images.mkdir()
    for i in range(3):
        Image.fromarray(clip(1)[3 * i]).save(images / f"red_square_{i}.png")
    vae = tiny_vae()
    builder = CacheBuilder(root / "cache", vae, build_text_encoder(TEXT), CFG, "tiny")
    shards = write_shards(root / "shards", 4)
    add_shards(builder, shards)
    add_images(builder, str(images))
    builder.finish()
    return {
        "shards": shards,
        "images": str(images),
        "cache": str(root / "cache"),
        "vae": save_autoencoder(vae, root / "vae.ckpt"),
        "other_vae": save_autoencoder(tiny_vae(seed=1), root / "other.ckpt"),
    }


def datamodule(cache: dict, **kw) -> VideoDataModule:
    args = dict(kind="latents", cache=cache["cache"], batch_size=2, num_workers=0, seed=0)
    return VideoDataModule(**{**args, **kw})


def module(cache: dict, vae: str = "vae", text: TextEncoderSpec = TEXT) -> VideoDiffusion:
    torch.manual_seed(0)
    dit = DiTConfig(in_channels=4, width=32, depth=2, heads=2, patch_t=1, patch_s=2)
    return VideoDiffusion(
        dit=dit, text=text, autoencoder=cache[vae], lr=2e-3, warmup_steps=1, sample_steps=2
    )


def trainer(**kw) -> L.Trainer:
    args = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    return L.Trainer(**{**args, **kw})


def epoch_samples(dm: VideoDataModule, epoch: int) -> list[dict]:
    loader = dm.train_dataloader()
    loader.epoch_fn = lambda: epoch
    out = []
    for batch in loader:
        for i, key in enumerate(batch["key"]):
            out.append({"key": key, "view": batch["view"][i], "caption": batch["caption"][i],
                        "z": batch["video"][i], "states": batch["text_states"][i]})  # fmt: skip
    return out


def test_a_latent_training_step_never_runs_the_text_encoder(cache):
    model = module(cache)

    def refuse(captions):
        raise AssertionError(f"text encoder ran on {captions}")

    encode, model.encoder.encode = model.encoder.encode, refuse  # stored states must be used
    before = [p.detach().clone() for p in model.dit.parameters()]
    trainer(max_steps=2).fit(model, datamodule(cache, epoch_size=4))
    changed = [not torch.equal(a, p) for a, p in zip(before, model.dit.parameters(), strict=True)]
    assert any(changed) and model.hparams.sample_num_frames == CFG.num_frames
    model.encoder.encode = encode  # sampling encodes its prompts
    video = model.generate(["a red square moving left"], steps=2)
    assert video.shape == (1, 3, CFG.num_frames, SIZE, SIZE)
    assert video.min() >= -1 and video.max() <= 1


def test_a_stale_cache_is_refused_before_training(cache):
    with pytest.raises(StaleCache, match="--model.autoencoder"):
        trainer(max_steps=1).fit(module(cache, "other_vae"), datamodule(cache, epoch_size=2))
    other_text = dataclasses.replace(TEXT, seed=1)
    with pytest.raises(StaleCache, match="--model.text"):
        trainer(max_steps=1).fit(module(cache, text=other_text), datamodule(cache, epoch_size=2))


def test_views_and_captions_rotate_across_epochs(cache):
    dm = datamodule(cache, mode="epoch", shuffle_buffer=0)
    dm.setup("fit")
    seen = defaultdict(set)
    views = defaultdict(list)
    for epoch in range(VIEWS * 3):  # 3 captions per view
        for s in epoch_samples(dm, epoch):
            seen[s["key"]].add((s["view"], s["caption"]))
            views[s["key"]].append(s["view"])
    assert len(seen) == 4
    for key, pairs in seen.items():
        assert len(pairs) == VIEWS * 3, key  # every view with every one of its captions
        assert all(a != b for a, b in itertools.pairwise(views[key]))


def test_latents_are_fresh_draws_and_validation_uses_the_mean(cache):
    dm = datamodule(cache, mode="epoch", shuffle_buffer=0, val_cache=cache["cache"])
    dm.setup("fit")
    first, again = epoch_samples(dm, 0), epoch_samples(dm, VIEWS)  # same views, new epoch
    for a, b in zip(first, again, strict=True):
        assert a["view"] == b["view"] and not torch.equal(a["z"], b["z"])
    val = [b for b in dm.val_dataloader()]
    assert all(v == 0 for b in val for v in b["view"])
    twice = [b for b in dm.val_dataloader()]
    assert all(torch.equal(a["video"], b["video"]) for a, b in zip(val, twice, strict=True))
    assert all(c.startswith("a red square") for b in val for c in b["caption"])


def test_mixed_image_video_batches_hold_one_shape(cache):
    dm = datamodule(cache, image_ratio=0.5, epoch_size=40, batch_size=2)
    dm.setup("fit")
    shapes = [tuple(b["video"].shape) for b in dm.train_dataloader()]
    assert len(shapes) == len(dm.train_dataloader()) == 20
    assert {s[2] for s in shapes} == {1, 3}  # stills are 1 latent frame, clips 3
    stills = sum(s[2] == 1 for s in shapes) / len(shapes)
    assert 0.2 < stills < 0.8
    for batch in dm.train_dataloader():
        if batch["video"].shape[2] == 1:
            assert all(k.startswith("img-") for k in batch["key"])
            assert torch.isnan(batch["fps"]).all()


def test_bad_latent_options_fail_at_start_naming_the_flag(cache):
    with pytest.raises(ValueError, match="--data.cache"):
        VideoDataModule(kind="latents")
    with pytest.raises(ValueError, match="--data.shards"):
        VideoDataModule()
    with pytest.raises(ValueError, match="--data.image_ratio"):
        VideoDataModule(kind="latents", cache=cache["cache"], mode="epoch", image_ratio=0.3)
    with pytest.raises(ValueError, match="--model.dit.in_channels"):
        VideoDiffusion(dit=DiTConfig(in_channels=3), text=TEXT, autoencoder=cache["vae"])


def test_fit_from_the_cache_and_sample_pixels_from_the_cli(cache, tmp_path, capsys):
    root = tmp_path / "run"
    args = ["fit", "--config", TEST_YAML, "--trainer.default_root_dir", str(root),
            "--data.kind", "latents", "--data.cache", cache["cache"],
            "--model.autoencoder", cache["vae"], "--model.dit.in_channels", "4",
            "--model.dit.patch_t", "1", "--model.dit.patch_s", "2",
            "--model.text.max_length", "16"]  # fmt: skip
    assert train_main(args) == 0
    ckpt = root / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=True)["autoencoder_fingerprint"]
    out = tmp_path / "samples"
    argv = ["--ckpt", str(ckpt), "--prompt", "a red square moving left", "--steps", "2",
            "--output", str(out), "--device", "cpu"]  # fmt: skip
    assert sample_main(argv) == 0
    assert len(list(out.glob("*.mp4"))) == 1
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape == (SIZE, SIZE * CFG.num_frames, 3)  # decoded pixels, not latents
    with pytest.raises(ValueError, match="not the VAE"):
        sample_main([*argv, "--ckpt-vae", cache["other_vae"]])
    capsys.readouterr()
    assert train_main([*args, "--model.text.max_length", "32"]) == 2  # stale: one line, no trace
    err = capsys.readouterr().err.strip()
    assert err.startswith("clipmill train: error: --data.cache is stale") and "\n" not in err
    assert train_main([*args, "--data.cache", str(tmp_path / "none")]) == 2
    assert "--data.cache" in capsys.readouterr().err


def test_mp4_clips_mix_with_stills_from_an_image_folder(cache):
    dm = VideoDataModule(cache["shards"], images=cache["images"], image_ratio=0.5, num_frames=5,
                         size=SIZE, batch_size=2, num_workers=0, epoch_size=24)  # fmt: skip
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    frames = [b["video"].shape[2] for b in batches]
    assert len(batches) == 12 and set(frames) == {1, 5}
    for batch in batches:
        if batch["video"].shape[2] == 1:
            assert all(k.startswith("img-red_square") for k in batch["key"])
            assert all(c.startswith("red square") for c in batch["caption"])
    with pytest.raises(ValueError, match="--data.images"):
        VideoDataModule(cache["shards"], image_ratio=0.5)
