"""`--data.kind latents` (train/cache/latent.py) and latent-space VideoDiffusion on a tiny cache.

The cache is built here with the real CacheBuilder from tiny shards written
by the curation's ShardWriter, a tiny random VideoAutoencoder and the random
text encoder; a few stills go to its images/ shards.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from schemas import empty_clip
from train.autoencoder.io import load_autoencoder, save_autoencoder
from train.cache.builder import CacheBuilder, CacheConfig
from train.cache.format import StaleCache
from train.cache.sources import add_images, add_shards
from train.cli import sample_main, train_main
from train.data.module import VideoDataModule
from train.data.shards import iter_tar_samples
from train.filmstrip import filmstrip
from train.models.dit import DiTConfig
from train.models.text import TextEncoderSpec, build_text_encoder
from train.module import VideoDiffusion

FRAMES, SIZE, FPS, VIEWS = 9, 16, 12.0, 2
TEXT = TextEncoderSpec(kind="random", dim=16, max_length=16)
CFG = CacheConfig(views=VIEWS, num_frames=5, size=(SIZE, SIZE), seed=0)
TEST_YAML = str(Path(__file__).parents[3] / "configs" / "train" / "test.yaml")


def clip(direction: int) -> np.ndarray:
    video = np.full((FRAMES, SIZE, SIZE, 3), 30, np.uint8)
    for i in range(FRAMES):
        x = 1 + i if direction > 0 else SIZE - 6 - i
        video[i, 5:10, x : x + 5] = (230, 20, 20)
    return video


def clip_samples(n: int):
    """(key, video, record) of `n` clips, left and right in turn, with three captions each."""
    for i in range(n):
        key = f"{i:016x}_{0:07d}_{FRAMES:07d}"
        side = "right" if i % 2 else "left"
        caption = f"a red square moving {side}"
        captions = [
            {"text": caption, "source": "vlm", "score": 0.9},
            {"text": f"red box heading {side}", "source": "filename", "score": None},
            {"text": f"square going {side}", "source": "sidecar", "score": None},
        ]
        record = empty_clip(
            clip_id=key, caption=caption, captions=captions, fps=FPS, motion_score=1.0, kept=True
        )
        yield key, clip(1 if i % 2 else -1), record


@pytest.fixture(scope="module")
def cache(tmp_path_factory, shard_writer, tiny_vae) -> dict[str, str]:
    root = tmp_path_factory.mktemp("latent")
    images = root / "images"
    images.mkdir()
    for i in range(3):
        Image.fromarray(clip(1)[3 * i]).save(images / f"red_square_{i}.png")
    vae = tiny_vae()
    vae.shift_factor, vae.scaling_factor = 0.25, 1.5  # not the identity: their use shows
    builder = CacheBuilder(root / "cache", vae, build_text_encoder(TEXT), CFG, "tiny")
    shards = shard_writer(root / "shards", clip_samples(4), FPS, max_samples=3)
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


def epoch_samples(dm: VideoDataModule, epoch: int) -> list[dict]:
    loader = dm.train_dataloader()
    loader.epoch_fn = lambda: epoch
    out = []
    for batch in loader:
        for i, key in enumerate(batch["key"]):
            out.append({"key": key, "view": batch["view"][i], "caption": batch["caption"][i],
                        "z": batch["video"][i], "states": batch["text_states"][i]})  # fmt: skip
    return out


def test_a_latent_training_step_never_runs_the_text_encoder(cache, trainer):
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


def test_a_stale_cache_is_refused_before_training(cache, trainer):
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


def stored_posteriors(cache: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{clip key: (mean, logvar)} as the cache holds them, float32 `[views, C, T', H', W']`."""
    out = {}
    for tar in sorted((Path(cache["cache"]) / "shards").glob("*.tar")):
        for s in iter_tar_samples(str(tar)):
            mean, logvar = (np.load(io.BytesIO(s[f"{n}.npy"])) for n in ("mean", "logvar"))
            out[s["__key__"]] = (mean.astype(np.float32), logvar.astype(np.float32))
    return out


def test_latents_are_fresh_draws_and_validation_uses_the_mean(cache):
    vae = load_autoencoder(cache["vae"])
    shift, scale = vae.shift_factor, vae.scaling_factor
    assert (shift, scale) != (0.0, 1.0)  # the fixture moved them, so they show below
    posteriors = stored_posteriors(cache)
    dm = datamodule(cache, mode="epoch", shuffle_buffer=0, val_cache=cache["cache"])
    dm.setup("fit")
    first, again = epoch_samples(dm, 0), epoch_samples(dm, VIEWS)  # same views, new epoch
    for a, b in zip(first, again, strict=True):
        assert a["view"] == b["view"] and not torch.equal(a["z"], b["z"])
    # Each draw is (mean + std * eps - shift) * scale of its own view: recovered, the eps
    # of all draws together are standard normal (1536 numbers: mean within 4 standard errors).
    eps = []
    for s in first + again:
        mean, logvar = (p[s["view"]] for p in posteriors[s["key"]])
        z = s["z"].numpy() / scale + shift
        eps.append(((z - mean) / np.exp(0.5 * logvar)).ravel())
    eps = np.concatenate(eps)
    assert eps.size == 2 * len(posteriors) * 4 * 3 * 4 * 4
    assert abs(eps.mean()) < 0.1 and 0.9 < eps.std() < 1.1
    val = [b for b in dm.val_dataloader()]
    assert all(v == 0 for b in val for v in b["view"])
    assert sorted(k for b in val for k in b["key"]) == sorted(posteriors)
    for batch in val:  # the centred view's mean, no draw, scaled as the denoiser expects
        for z, key in zip(batch["video"], batch["key"], strict=True):
            want = (posteriors[key][0][0] - shift) * scale
            torch.testing.assert_close(z, torch.from_numpy(want))
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
    # Decoded pixels, not latents: the strip of one SIZE x SIZE video of num_frames frames.
    strip = filmstrip(np.zeros((1, CFG.num_frames, SIZE, SIZE, 3), np.uint8), ["prompt"])
    assert grid.shape == strip.shape
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
