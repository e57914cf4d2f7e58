"""`clipmill train fit|validate` and `clipmill sample`, end to end on tiny shards."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from schemas import empty_clip
from train.cli import sample_main, train_main

CONFIGS_DIR = Path(__file__).parents[2] / "configs" / "train"
CONFIGS = sorted(CONFIGS_DIR.glob("*.yaml"))
TEST_YAML = str(Path(__file__).parents[2] / "configs" / "train" / "test.yaml")


def square_clip(direction: int, frames: int = 6, size: int = 24) -> np.ndarray:
    video = np.full((frames, size, size, 3), 40, np.uint8)
    for i in range(frames):
        x = 2 + 2 * i if direction > 0 else size - 8 - 2 * i
        video[i, 8:14, x : x + 6] = (220, 30, 30)
    return video


def clip_samples(n: int = 6):
    """(key, video, record) of `n` 6-frame clips, a red square going left or right in turn."""
    for i in range(n):
        key = f"{i:016x}_{0:07d}_{6:07d}"
        caption = f"a red square moving {'right' if i % 2 else 'left'}"
        record = empty_clip(
            clip_id=key, caption=caption, fps=12.0, n_frames=6, width=24, height=24,
            motion_score=1.5, captions=[{"text": caption, "source": "vlm", "score": 0.9}],
            kept=True,
        )  # fmt: skip
        yield key, square_clip(1 if i % 2 else -1), record


@pytest.fixture(scope="module")
def shards(tmp_path_factory, shard_writer) -> str:
    return shard_writer(tmp_path_factory.mktemp("shards"), clip_samples(), 12.0, max_samples=4)


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_every_shipped_config_parses(config, capsys):
    finetune = "FinetuneModule" in config.read_text(encoding="utf-8")
    extra = ["--model.pretrained", "DIR"] if finetune else []  # required; not loaded to print
    args = ["fit", "--config", str(config), "--data.shards", "x", *extra, "--print_config"]
    assert train_main(args) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    model = printed["model"].get("init_args", printed["model"])  # class_path configs nest it
    if finetune:  # a pretrained family: what to train, on which buckets
        data = printed["data"]["init_args"]
        assert model["pretrained"] == "DIR" and model["training"] in ("lora", "full")
        assert data["frame_buckets"] and all(len(s) == 2 for s in data["size_buckets"])
    else:
        shape = model.get("dit") or model.get("autoencoder")
        sizes = [v for k, v in shape.items() if type(v) is int and k != "coarse_blocks"]
        assert sizes and min(sizes) > 0  # coarse_blocks counts optional blocks: 0 is off
    assert printed["trainer"]["precision"]


def test_only_fit_and_validate_are_subcommands():
    assert train_main(["test", "--config", TEST_YAML]) != 0


def test_bad_flag_fails_at_start_naming_it(tmp_path, capsys):
    args = ["fit", "--config", TEST_YAML, "--data.shards", "x", "--model.dit.attention", "sparse"]
    assert train_main(args) != 0
    assert "attention" in capsys.readouterr().err


def test_fit_resume_validate_and_sample(shards, tmp_path, logged_tags):
    root = tmp_path / "run"
    common = [
        "--config",
        TEST_YAML,
        "--data.shards",
        shards,
        "--data.val_shards",
        shards,
        "--trainer.default_root_dir",
        str(root),
    ]
    fit = ["fit", *common, "--trainer.max_steps", "3", "--model.sample_every_n_steps", "2"]
    assert train_main(fit) == 0
    assert len(list(root.glob("**/samples/step0000002/*.mp4"))) == 2  # the default prompts
    scalars, images = logged_tags(root)  # TensorBoard: losses and sample grids
    assert {"train/loss", "train/lr", "val/loss", "val/loss_t0.1", "val/loss_t0.9"} <= scalars
    assert images == {"samples"}
    last = root / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 3 and int(ckpt["state_dict"]["ema.num_updates"]) == 3
    assert ckpt["hyper_parameters"]["sample_num_frames"] == 4  # from --data.num_frames

    # --ckpt_path last: continues from step 3 (weights, optimizer, EMA, step).
    assert train_main(["fit", *common, "--trainer.max_steps", "5", "--ckpt_path", "last"]) == 0
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 5 and int(ckpt["state_dict"]["ema.num_updates"]) == 5
    assert ckpt["optimizer_states"][0]["state"]  # Adam moments travel with it

    assert train_main(["validate", *common, "--ckpt_path", str(last)]) == 0

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red square moving left\n\na red square moving right\n")
    out = tmp_path / "samples"
    argv = [
        "--ckpt",
        str(last),
        "--prompts-file",
        str(prompts),
        "--prompt",
        "a blue square",
        "--steps",
        "2",
        "--cfg",
        "2",
        "--seed",
        "0",
        "--output",
        str(out),
    ]
    assert sample_main(argv) == 0
    mp4s = sorted(out.glob("*.mp4"))
    assert [p.name[:4] for p in mp4s] == ["000_", "001_", "002_"]
    assert (out / "grid.png").stat().st_size > 0
    from train.data.video_io import Mp4Reader

    reader = Mp4Reader(mp4s[0].read_bytes())
    assert reader.info.n_frames == 4 and (reader.info.height, reader.info.width) == (16, 16)
    first = mp4s[0].read_bytes()
    assert sample_main(argv) == 0 and mp4s[0].read_bytes() == first  # same seed, same video


def test_sample_needs_a_prompt(tmp_path):
    assert sample_main(["--ckpt", str(tmp_path / "none.ckpt")]) == 2


@pytest.mark.parametrize(
    ("class_path", "code"),
    [
        ("train.autoencoder.module.VideoAutoencoderModule", 0),
        # Run folders saved before the layout move name the old module (train/vae_module.py).
        ("train.vae_module.VideoAutoencoderModule", 0),
        ("train.no_such_module.VideoAutoencoderModule", 2),
    ],
)
def test_a_saved_autoencoder_config_still_names_a_loadable_class(class_path, code, tmp_path):
    cfg = yaml.safe_load((CONFIGS_DIR / "vae_tiny.yaml").read_text(encoding="utf-8"))
    cfg["model"]["class_path"] = class_path
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    argv = ["fit", "--config", str(saved), "--data.shards", "x.tar", "--print_config"]
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert train_main(argv) == code
    if code == 0:
        printed = yaml.safe_load(out.getvalue())
        assert printed["model"]["class_path"].endswith("VideoAutoencoderModule")
        assert printed["model"]["init_args"]["autoencoder"]["latent_channels"] == 8
