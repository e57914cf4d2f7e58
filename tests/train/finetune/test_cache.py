"""The latent cache of a pretrained family: `clipmill cache --model.pretrained` and training on it.

Each family's tiny pipeline caches conftest's MIXED clips in the buckets of a training YAML
(configs/train/<family>_lora.yaml with the tiny grid). The cache must hold what the
family's own VAE and text encoder give for each clip's bucket, and `clipmill train fit
--data.cache` must train on it without ever loading either, and refuse a cache made for
another model in one line.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from schemas.cache import validate_cache_header, validate_cache_sample
from train.autoencoder.io import save_autoencoder
from train.cache.cli import cache_main
from train.cache.format import read_header
from train.cli import train_main
from train.data.augment import resize_for_crop
from train.data.shards import expand_shards, iter_tar_samples
from train.data.video_io import Mp4Reader
from train.finetune.buckets import Bucket, BucketGrid, plan, read_records
from train.finetune.cache import family_identity
from train.finetune.data import FinetuneDataModule
from train.finetune.family import Family
from train.finetune.registry import load_family

REPO = Path(__file__).parents[3]
FAMILIES = ("wan", "ltx", "cogvideox")
FRAMES = [9, 17]
SIZES = {"wan": [[32, 32], [32, 48]], "ltx": [[32, 32], [32, 64]],
         "cogvideox": [[32, 32], [32, 48]]}  # fmt: skip
# (f_t, f_s, latent channels) of each tiny VAE: the real families' compression.
LATENT = {"wan": (4, 8, 16), "ltx": (8, 32, 8), "cogvideox": (4, 8, 4)}
PREFIX = "mystyle"


def train_config(family: str, folder: Path) -> Path:
    """configs/train/<family>_lora.yaml with the tiny grid (the cache takes its buckets there)."""
    cfg = yaml.safe_load((REPO / f"configs/train/{family}_lora.yaml").read_text())
    cfg["data"]["init_args"].update(frame_buckets=FRAMES, size_buckets=SIZES[family], fps=12)
    path = folder / f"{family}_tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def family_cache(tmp_path_factory, tiny_pipeline, mixed_shards) -> Callable[..., Path]:
    """`family_cache(family, *flags) -> cache folder`, built once per argument set."""
    made: dict[tuple, Path] = {}

    def get(family: str, *flags: str) -> Path:
        if (family, *flags) not in made:
            root = tmp_path_factory.mktemp(f"cache_{family}")
            argv = ["--train-config", str(train_config(family, root)), "--model.pretrained",
                    str(tiny_pipeline(family)), "--shards", mixed_shards, "--output",
                    str(root / "cache"), "--views", "2", "--device", "cpu", *flags]  # fmt: skip
            assert cache_main(argv) == 0
            made[(family, *flags)] = root / "cache"
        return made[(family, *flags)]

    return get


def cached(folder: Path) -> dict[str, dict[str, Any]]:
    """key -> {"json": record, "mean", "logvar", "text": arrays} of every cached clip."""
    out = {}
    for url in expand_shards(str(folder / "shards" / "*.tar")):
        for raw in iter_tar_samples(url):
            item = {"json": json.loads(raw["json"])}
            for name in ("mean", "logvar", "text"):
                item[name] = np.load(io.BytesIO(raw[f"{name}.npy"]), allow_pickle=False)
            out[raw["__key__"]] = item
    return out


def fit_argv(family: str, pretrained: Path, cache: Path, root: Path) -> list[str]:
    return ["fit", "--config", str(REPO / f"configs/train/{family}_lora.yaml"),
            "--model.pretrained", str(pretrained), "--data.cache", str(cache),
            "--data.batch_size", "2", "--data.num_workers", "0", "--data.epoch_size", "4",
            "--trainer.max_steps", "2", "--trainer.logger", "false",
            "--trainer.default_root_dir", str(root), "--model.lora.rank", "4",
            "--model.gradient_checkpointing", "false"]  # fmt: skip


def one_error_line(err: str) -> str:
    """The error line of `clipmill train` (there must be exactly one, and no traceback)."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_header_names_the_family_and_counts_the_drops(family, family_cache, tiny_pipeline):
    header = read_header(family_cache(family))
    validate_cache_header(header)
    made = load_family(tiny_pipeline(family))
    identity = family_identity(made)
    assert header["family"]["family"] == family
    for key in ("vae_digest", "text_digest", "transformer", "pipeline"):
        assert header["family"][key] == identity[key]
    assert header["family"]["buckets"] == {
        "frames": FRAMES, "sizes": SIZES[family], "fps": 12.0, "max_upscale": 2.0,
    }  # fmt: skip
    assert header["text_encoder"]["id"] == identity["text_digest"]
    ae = header["autoencoder"]
    f_t, f_s, channels = LATENT[family]
    assert (ae["temporal_compression"], ae["spatial_compression"]) == (f_t, f_s)
    assert ae["latent_channels"] == channels
    assert ae["scaling_factor"] == pytest.approx(made.vae_config.get("scaling_factor") or 1.0)
    # the plan's drops, named as the plan names them; nothing corrupt
    assert header["counts"] == {
        "clips": 7, "views": 14, "dropped/too_short": 1, "dropped/no_caption": 1,
        "dropped/too_small": 1,
    }  # fmt: skip


@pytest.mark.parametrize("family", FAMILIES)
def test_latents_follow_each_clips_bucket(family, family_cache, mixed_shards):
    """Every view of a clip is cut to the bucket the plan gives it; latents [V, C, T', H', W']
    with T' = 1 + (T - 1) / f_t and H' = H / f_s."""
    grid = BucketGrid(tuple(FRAMES), tuple(map(tuple, SIZES[family])), 12.0)
    assignments = plan(read_records(mixed_shards), grid)["assignments"]
    clips = cached(family_cache(family))
    assert set(clips) == set(assignments) and len(clips) == 7
    f_t, f_s, channels = LATENT[family]
    for key, item in clips.items():
        validate_cache_sample(item["json"])
        bucket = Bucket.parse(assignments[key])
        for view in item["json"]["views"]:
            # at exactly the YAML's 12 fps, unmirrored (its flip_prob: the default 0)
            assert view["fps"] == 12.0 and not view["flip"]
            assert len(view["frames"]) == bucket.frames
            assert view["crop"][2:] == [bucket.height, bucket.width]
        latent = (1 + (bucket.frames - 1) // f_t, bucket.height // f_s, bucket.width // f_s)
        assert item["mean"].shape == item["logvar"].shape == (2, channels, *latent)
        assert item["mean"].dtype == item["logvar"].dtype == np.float16
        assert item["json"]["latent_shape"] == [channels, *latent]
    if family == "ltx":  # LTX's 32 px grid puts the wide clips in 32x64
        assert {assignments[k] for k in ("wide_a", "wide_b")} == {"17x32x64"}


@pytest.mark.parametrize("family", FAMILIES)
def test_text_states_are_the_familys_own(family, family_cache, tiny_pipeline):
    """Wan/LTX keep the real tokens' states only; CogVideoX all 226 (its pipeline feeds them)."""
    made = load_family(tiny_pipeline(family))
    tokenizer, encoder = made.load_text()
    for item in cached(family_cache(family)).values():
        record, stored = item["json"], item["text"]
        assert record["texts"][0] == ""  # row 0: the unconditional caption
        states, mask = made.encode_text(tokenizer, encoder, record["texts"])
        for row, text in enumerate(record["texts"]):
            n = int(mask[row].sum())
            tokens = len(tokenizer(text).input_ids)  # the words and </s>
            assert n == record["text_lengths"][row] == (226 if family == "cogvideox" else tokens)
            np.testing.assert_allclose(stored[row, :n], states[row, :n].numpy(), atol=4e-3)
        assert stored.shape[1] == max(record["text_lengths"])


@pytest.mark.parametrize("family", FAMILIES)
def test_mean_latents_are_the_vae_encode_of_view_0(
    family, family_cache, tiny_pipeline, mixed, mixed_shards
):
    """View 0 (centred, unflipped) re-read from the mp4 as its record says, encoded here."""
    vae = load_family(tiny_pipeline(family)).load_vae()
    raws = {r["__key__"]: r for u in expand_shards(mixed_shards) for r in iter_tar_samples(u)}
    for key, item in cached(family_cache(family)).items():
        view = item["json"]["views"][0]
        assert not view["flip"]
        top, left, height, width = view["crop"]
        scaled = resize_for_crop(mixed[key][0], mixed[key][1], (height, width))
        with Mp4Reader(raws[key]["mp4"]) as reader:
            frames = reader.read(view["frames"], scaled)
        video = frames[:, top : top + height, left : left + width]
        x = torch.from_numpy(np.ascontiguousarray(video)).permute(3, 0, 1, 2)[None]
        with torch.no_grad():
            mean, _ = vae.encode(x.float() / 127.5 - 1)
        np.testing.assert_allclose(item["mean"][0], mean[0].numpy(), atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("family", FAMILIES)
def test_cache_batches_one_bucket_with_caption_dropout(family, family_cache):
    folder = family_cache(family)
    clips = cached(folder)
    data = FinetuneDataModule(
        cache=str(folder), batch_size=2, num_workers=0, epoch_size=24, caption_dropout=0.5
    )
    data.setup("fit")
    captions = []
    for batch in data.train_dataloader():
        shapes = {tuple(clips[key]["mean"].shape[1:]) for key in batch["key"]}
        assert len(shapes) == 1 and tuple(batch["video"].shape[1:]) == shapes.pop()
        for i, (key, caption) in enumerate(zip(batch["key"], batch["caption"], strict=True)):
            record = clips[key]["json"]
            assert caption in record["texts"]
            assert (
                int(batch["text_mask"][i].sum())
                == record["text_lengths"][record["texts"].index(caption)]
            )
        captions += batch["caption"]
    assert 0 < captions.count("") < len(captions)  # seeded: about half are dropped
    assert data.latent_header["family"]["family"] == family


def _refuse(name: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"Family.{name} was called while training from a latent cache")

    return refuse


@pytest.mark.parametrize("family", FAMILIES)
def test_fit_from_the_cache_never_loads_the_vae_or_text_encoder(
    family, family_cache, tiny_pipeline, tmp_path, monkeypatch
):
    cache = family_cache(family)
    for name in ("load_vae", "load_text"):
        monkeypatch.setattr(Family, name, _refuse(name))
    argv = fit_argv(family, tiny_pipeline(family), cache, tmp_path / "run")
    assert train_main(argv) == 0
    lora = load_file(tmp_path / "run" / "lora" / "pytorch_lora_weights.safetensors")
    up = [v for k, v in lora.items() if "lora_B" in k]
    assert up and any(v.abs().max() > 0 for v in up)  # B starts at zero: the steps ran


@pytest.mark.parametrize("family", FAMILIES)
def test_a_cache_of_another_family_is_refused(
    family, family_cache, tiny_pipeline, tmp_path, capsys
):
    other = FAMILIES[(FAMILIES.index(family) + 1) % len(FAMILIES)]
    argv = fit_argv(family, tiny_pipeline(family), family_cache(other), tmp_path / "run")
    capsys.readouterr()
    assert train_main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("clipmill train: error: --data.cache is stale")
    assert repr(other) in line and repr(family) in line and "--model.pretrained" in line
    assert not (tmp_path / "run" / "lora").exists()  # refused before any step


def test_a_cache_of_another_folder_is_refused(family_cache, tiny_pipeline, tmp_path, capsys):
    """Another Wan folder whose VAE normalises latents differently: the latents would not be
    what its transformer was trained on."""
    folder = tmp_path / "other_wan"
    shutil.copytree(tiny_pipeline("wan"), folder)
    config = json.loads((folder / "vae" / "config.json").read_text())
    config["latents_std"] = [2 * s for s in config["latents_std"]]
    (folder / "vae" / "config.json").write_text(json.dumps(config))
    argv = fit_argv("wan", folder, family_cache("wan"), tmp_path / "run")
    capsys.readouterr()
    assert train_main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("clipmill train: error: --data.cache is stale") and "vae_digest" in line


def test_a_from_scratch_cache_is_refused(tiny_vae, tiny_pipeline, mixed_shards, tmp_path, capsys):
    cache = tmp_path / "scratch"
    argv = ["--ckpt-vae", save_autoencoder(tiny_vae(), tmp_path / "vae.ckpt"), "--shards",
            mixed_shards, "--output", str(cache), "--views", "1", "--frames", "5", "--size",
            "16", "--text.kind", "random", "--text.dim", "16", "--limit", "2",
            "--device", "cpu"]  # fmt: skip
    assert cache_main(argv) == 0 and read_header(cache)["family"] is None
    capsys.readouterr()
    assert train_main(fit_argv("wan", tiny_pipeline("wan"), cache, tmp_path / "run")) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("clipmill train: error: --data.cache was made for the from-scratch")


def test_caption_prefix_is_put_before_every_cached_caption(family_cache, tiny_pipeline, mixed):
    folder = family_cache("ltx", "--caption-prefix", PREFIX, "--views", "1")
    assert read_header(folder)["sample"]["caption_prefix"] == PREFIX
    tokenizer, _ = load_family(tiny_pipeline("ltx")).load_text()
    clips = cached(folder)
    assert len(clips) == 7
    for key, item in clips.items():
        record = item["json"]
        assert record["texts"] == ["", f"{PREFIX} {mixed[key][3]}"]
        assert record["text_lengths"][1] == len(tokenizer(record["texts"][1]).input_ids)


def cogvideox_15(folder: Path, into: Path) -> Path:
    """A copy of the tiny CogVideoX whose transformer patches pairs of latent frames (1.5)."""
    shutil.copytree(folder, into)
    config = json.loads((into / "transformer" / "config.json").read_text())
    (into / "transformer" / "config.json").write_text(json.dumps({**config, "patch_size_t": 2}))
    return into


def test_buckets_off_the_family_grid_are_refused(tiny_pipeline, mixed_shards, tmp_path, capsys):
    """Before any encoding, in one line naming where the buckets came from and the flag."""
    cases = [  # (family folder, --train-config or None, what the line must name)
        (tiny_pipeline("ltx"), None, "--train-config (not given: the default buckets): "
         "--data.size_buckets: ltx"),  # the defaults are Wan's 16 px sizes
        (tiny_pipeline("ltx"), train_config("wan", tmp_path), "--data.size_buckets: ltx"),
        (cogvideox_15(tiny_pipeline("cogvideox"), tmp_path / "cog15"),
         train_config("cogvideox", tmp_path), "--data.frame_buckets: 9 frames: CogVideoX 1.5"),
    ]  # fmt: skip
    for i, (folder, config, named) in enumerate(cases):
        given = ["--train-config", str(config)] if config else []
        argv = [*given, "--model.pretrained", str(folder), "--shards", mixed_shards,
                "--output", str(tmp_path / f"cache{i}"), "--device", "cpu"]  # fmt: skip
        capsys.readouterr()
        assert cache_main(argv) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("clipmill cache: error: --train-config") and named in line, line
        assert not (tmp_path / f"cache{i}" / "cache.json").exists()


def test_a_fine_tuning_yaml_without_a_folder_names_the_flag(mixed_shards, tmp_path, capsys):
    """configs/train/*_lora.yaml leave model.pretrained to the command line."""
    argv = ["--train-config", str(REPO / "configs/train/wan_lora.yaml"), "--shards", mixed_shards,
            "--output", str(tmp_path / "cache")]  # fmt: skip
    assert cache_main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("clipmill cache: error: --ckpt-vae") and "--model.pretrained" in line
    assert not (tmp_path / "cache").exists()


def test_flags_a_family_cache_would_ignore_are_refused(
    tiny_pipeline, mixed_shards, tmp_path, capsys
):
    """--frames/--size/--ckpt-vae do not apply with --model.pretrained: said, not ignored."""
    for flag, value in (("--frames", "9"), ("--size", "32"), ("--ckpt-vae", "x.ckpt")):
        argv = ["--train-config", str(train_config("wan", tmp_path)), "--model.pretrained",
                str(tiny_pipeline("wan")), "--shards", mixed_shards,
                "--output", str(tmp_path / "cache"), flag, value]  # fmt: skip
        capsys.readouterr()
        assert cache_main(argv) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"clipmill cache: error: {flag}:"), line
        assert not (tmp_path / "cache" / "cache.json").exists()
