"""`FinetuneModule` on the tiny Wan / LTX-Video / CogVideoX folders: LoRA and full training,
the exported weights in the families' own diffusers pipelines, resuming, EMA, config errors.

Everything runs offline on CPU in seconds: 9 frames of 32x32 px, a handful of steps.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor

from train.cli import sample_main, train_main
from train.finetune.lora import LORA_FILE
from train.finetune.module import FinetuneModule

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).parents[3] / "configs" / "train"
FAMILIES = ("wan", "ltx", "cogvideox")
PIPELINES = {"wan": "WanPipeline", "ltx": "LTXPipeline", "cogvideox": "CogVideoXPipeline"}
CAPTIONS = ["a red square moving right", "a blue circle moving left"]
PROMPT, SEED, STEPS, CFG = "a red square moving right", 5, 2, 1.0


def pixel_batch(seed: int = 1) -> dict[str, Any]:
    """Two random 9-frame 32x32 clips in [-1, 1] with captions, as FinetuneDataModule yields."""
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(2, 3, 9, 32, 32, generator=g) * 2 - 1
    return {"video": video, "caption": list(CAPTIONS), "weight": torch.ones(2)}


def to_uint8(video: np.ndarray) -> np.ndarray:
    """The pipeline's float frames as `clipmill sample` quantises them."""
    return (np.clip(video, 0.0, 1.0) * 255).round().astype(np.uint8)


def pipeline_video(pipe: Any) -> np.ndarray:
    """float [1, 9, 32, 32, 3] for PROMPT, as train.finetune.sample.generate calls the pipeline."""
    return pipe(
        prompt=[PROMPT],
        num_frames=9,
        height=32,
        width=32,
        num_inference_steps=STEPS,
        generator=[torch.Generator().manual_seed(SEED)],
        output_type="np",
        guidance_scale=CFG,
    ).frames


@pytest.fixture
def fit(tiny_pipeline, clip_shards) -> Callable[..., Path]:
    """`fit(family, root, *flags, config=None) -> root`: `clipmill train fit` in-process
    with the family's shipped config, shrunk to 9-frame 32x32 buckets, batches of 2, lr 1e-2
    (LoRA B starts at zero: a few steps must move the samples visibly)."""

    def run(family: str, root: Path, *flags: str, config: str | None = None) -> Path:
        argv = [
            "fit", "--config", str(CONFIGS / f"{config or family + '_lora'}.yaml"),
            "--model.pretrained", str(tiny_pipeline(family)), "--data.shards", clip_shards(),
            "--data.frame_buckets", "[9]", "--data.size_buckets", "[[32, 32]]",
            "--data.fps", "12", "--data.batch_size", "2", "--data.num_workers", "0",
            "--data.epoch_size", "8", "--trainer.max_steps", "4",
            "--trainer.default_root_dir", str(root), "--trainer.logger", "false",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--model.lora.rank", "4", "--model.lora.alpha", "4", "--model.lr", "1e-2",
            "--model.warmup_steps", "0", *flags,
        ]  # fmt: skip
        assert train_main(argv) == 0
        return root

    return run


def latent_batch(module: FinetuneModule, pixels: dict[str, Any]) -> dict[str, Any]:
    """The clips as a latent cache stores them (the family's normalised latents, caption
    states and mask), so the overfit loop runs the transformer only."""
    parts = module.frozen()
    with torch.no_grad():
        x0, _, _ = module.inputs(pixels, torch.Generator().manual_seed(0))
        states, mask = module.family.encode_text(parts["tokenizer"], parts["text"], CAPTIONS)
    return {"video": x0, "text_states": states, "text_mask": mask, "weight": pixels["weight"]}


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_overfits_two_clips(family, tiny_pipeline):
    """A LoRA memorises 2 clips at a fixed (noise, timestep) draw: the loss at that draw falls
    below 0.3x (measured 0.10-0.15 Wan, ~0.001 LTX, 0.03-0.05 CogVideoX over seeds) in 40
    Adam steps, and only the adapter moves. proj_out is adapted too: the tiny Wan's
    24-wide stream cannot reach its 64 outputs per token through a frozen proj_out (plateau
    ~0.6x); a real Wan's 1536-wide stream can."""
    torch.manual_seed(0)
    targets = ["to_q", "to_k", "to_v", "to_out.0", "proj_out"]
    module = FinetuneModule(
        str(tiny_pipeline(family)), lora={"rank": 32, "alpha": 32, "target_modules": targets}
    )
    module.transformer.train()
    batch = latent_batch(module, pixel_batch())
    frozen = {k: v.clone() for k, v in module.transformer.state_dict().items() if "lora_" not in k}
    trained = [p for p in module.transformer.parameters() if p.requires_grad]
    names = [n for n, p in module.transformer.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)

    def fixed_loss() -> Tensor:
        return module.loss(batch, torch.Generator().manual_seed(7)).mean()

    with torch.no_grad():
        before = fixed_loss().item()
    opt = torch.optim.Adam(trained, lr=1e-2)
    for _ in range(40):
        opt.zero_grad()
        fixed_loss().backward()
        opt.step()
    with torch.no_grad():
        after = fixed_loss().item()
    assert after < 0.3 * before, (family, before, after)
    now = module.transformer.state_dict()
    assert all(torch.equal(now[k], v) for k, v in frozen.items())


def test_pixel_loss_is_reproducible_from_the_generator(tiny_pipeline):
    """The VAE posterior sample comes from the loss's generator too (not the global RNG), so
    `loss(pixels, generator)` is a fixed-noise evaluation, as it is for a cached batch."""
    torch.manual_seed(0)
    module = FinetuneModule(str(tiny_pipeline("wan")), lora={"rank": 4, "alpha": 4})
    batch = pixel_batch()
    with torch.no_grad():
        first = module.loss(batch, torch.Generator().manual_seed(3))
        torch.manual_seed(123)  # a different global RNG state must not matter
        again = module.loss(batch, torch.Generator().manual_seed(3))
        other = module.loss(batch, torch.Generator().manual_seed(4))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


@pytest.mark.parametrize("family", FAMILIES)
def test_exported_lora_loads_in_pipeline_and_matches_sample(
    family, fit, tiny_pipeline, tmp_path, monkeypatch
):
    """`<root>/lora` loads with the family's own `pipe.load_lora_weights` and changes its video;
    `clipmill sample --ckpt last.ckpt` gives that same video for the same seed, steps, cfg."""
    import diffusers

    import train.finetune.sample as sample_module
    from train.data.video_io import decode_mp4

    run = fit(family, tmp_path / "run")
    assert (run / "lora" / LORA_FILE).is_file()
    cls = getattr(diffusers, PIPELINES[family])
    pipe = cls.from_pretrained(str(tiny_pipeline(family)), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    before = to_uint8(pipeline_video(pipe))
    pipe.load_lora_weights(str(run / "lora"))
    after = to_uint8(pipeline_video(pipe))
    assert np.abs(after.astype(int) - before).max() >= 3  # visibly different

    made: list[np.ndarray] = []  # generate()'s frames, before the mp4 encoder rounds them
    generate = sample_module.generate

    def spy(*args: Any, **kwargs: Any) -> tuple[np.ndarray, float]:
        frames, fps = generate(*args, **kwargs)
        made.append(frames)
        return frames, fps

    monkeypatch.setattr(sample_module, "generate", spy)
    out = tmp_path / "samples"
    argv = ["--ckpt", str(run / "checkpoints" / "last.ckpt"), "--prompt", PROMPT, "--seed",
            str(SEED), "--steps", str(STEPS), "--cfg", str(CFG), "--num-frames", "9", "--size",
            "32", "--output", str(out), "--device", "cpu"]  # fmt: skip
    assert sample_main(argv) == 0
    assert len(made) == 1 and made[0].shape == after.shape
    assert np.abs(made[0].astype(int) - after).max() <= 1
    (mp4,) = out.glob("*.mp4")
    assert decode_mp4(mp4.read_bytes()).shape == (9, 32, 32, 3)


def _base_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(next((folder / "transformer").glob("*.safetensors"))))


def test_full_finetune_exports_a_transformer(fit, tiny_pipeline, tmp_path):
    """`training: full` (configs/train/wan_full.yaml) writes `<root>/transformer/`, which
    `from_pretrained` loads, with weights moved from the base; the checkpoint holds them all."""
    from diffusers import WanTransformer3DModel

    run = fit("wan", tmp_path / "run", "--model.lr", "1e-3", config="wan_full")
    model = WanTransformer3DModel.from_pretrained(str(run / "transformer"), local_files_only=True)
    base = _base_weights(tiny_pipeline("wan"))
    tuned = model.state_dict()
    assert set(tuned) == set(base)
    moved = [k for k in base if not torch.equal(tuned[k], base[k])]
    assert len(moved) > len(base) // 2, moved
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert {k.removeprefix("transformer.") for k in ckpt["state_dict"]} == set(base)
    for k, v in ckpt["state_dict"].items():
        torch.testing.assert_close(v, tuned[k.removeprefix("transformer.")])


def _adam_steps(ckpt: dict[str, Any]) -> set[int]:
    return {int(s["step"]) for s in ckpt["optimizer_states"][0]["state"].values()}


def test_resume_from_last_continues_the_run(fit, tiny_pipeline, tmp_path, monkeypatch):
    """`--ckpt_path last` restores the adapter, optimizer and step: the second run's first step
    is step 3 with the first run's weights, and runs only the 2 missing steps. Checkpoints
    hold only the adapter (no frozen base key), a small fraction of the base's numbers."""
    run = fit("wan", tmp_path / "run", "--trainer.max_steps", "3")
    first = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert first["global_step"] == 3 and _adam_steps(first) == {3}

    seen: list[tuple[int, dict[str, torch.Tensor]]] = []
    step = FinetuneModule.training_step

    def spy(self: FinetuneModule, batch: Any, batch_idx: int) -> Any:
        weights = {f"transformer.{k}": v.clone() for k, v in self.trained_weights(False).items()}
        seen.append((self.global_step, weights))
        return step(self, batch, batch_idx)

    monkeypatch.setattr(FinetuneModule, "training_step", spy)
    fit("wan", run, "--trainer.max_steps", "5", "--ckpt_path", "last")
    assert [s for s, _ in seen] == [3, 4]
    assert seen[0][1].keys() == first["state_dict"].keys()
    for k, v in first["state_dict"].items():
        assert torch.equal(seen[0][1][k], v), k

    second = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert second["global_step"] == 5 and _adam_steps(second) == {5}
    assert second["lr_schedulers"][0]["last_epoch"] == 5
    state = second["state_dict"]
    assert state and all(".lora_A." in k or ".lora_B." in k for k in state)
    base = _base_weights(tiny_pipeline("wan"))
    assert sum(v.numel() for v in state.values()) < 0.2 * sum(v.numel() for v in base.values())


def test_ema_is_checkpointed_and_exported(fit, tmp_path):
    """With --model.ema_decay the checkpoint holds one EMA buffer per adapter weight, the EMA
    differs from the raw weights, and <root>/lora is the EMA, also when the last checkpoint is
    an every_n_train_steps one (saved before the module's own on_train_batch_end)."""
    run = fit(
        "wan",
        tmp_path / "run",
        "--model.ema_decay",
        "0.9",
        "--trainer.callbacks.every_n_train_steps",
        "4",
    )
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    raw = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("transformer.")}
    ema = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("ema_")}
    assert raw and len(ema) == len(raw) and len(ckpt["state_dict"]) == 2 * len(raw)
    exported = load_file(str(run / "lora" / LORA_FILE))
    # ema_i follows the i-th trained parameter; the export drops peft's adapter name
    for i, (key, value) in enumerate(raw.items()):
        shadow = ema[f"ema_{i}"]
        assert shadow.shape == value.shape
        assert not torch.allclose(shadow, value), key
        torch.testing.assert_close(exported[key.replace(".default", "")], shadow)


CONFIG_ERRORS = {
    "not_a_pipeline": ("wan", ["--model.pretrained", "{empty}"], "--model.pretrained"),
    "unsupported_pipeline": ("wan", ["--model.pretrained", "{sd}"], "--model.pretrained"),
    "frames_off_grid": ("wan", ["--data.frame_buckets", "[10]"], "--data.frame_buckets"),
    "ltx_size_off_grid": ("ltx", ["--data.size_buckets", "[[48, 48]]"], "--data.size_buckets"),
    "no_such_target": ("wan", ["--model.lora.target_modules", "[nope]"], "--model.lora.target"),
    "rank_zero": ("wan", ["--model.lora.rank", "0"], "--model.lora.rank"),
}


@pytest.mark.parametrize("case", CONFIG_ERRORS)
def test_config_errors_fail_at_start_naming_the_flag(
    case, tiny_pipeline, clip_shards, tmp_path, capsys
):
    """Exit code 2, one `clipmill train: error:` line naming the flag, no traceback, no step."""
    family, flags, flag = CONFIG_ERRORS[case]
    (tmp_path / "empty").mkdir()
    (tmp_path / "sd").mkdir()
    index = {
        "_class_name": "StableDiffusionPipeline",
        "unet": ["diffusers", "UNet2DConditionModel"],
    }
    (tmp_path / "sd" / "model_index.json").write_text(json.dumps(index), encoding="utf-8")
    flags = [f.format(empty=tmp_path / "empty", sd=tmp_path / "sd") for f in flags]
    root = tmp_path / "run"
    argv = [
        "fit", "--config", str(CONFIGS / f"{family}_lora.yaml"),
        "--model.pretrained", str(tiny_pipeline(family)), "--data.shards", clip_shards(),
        "--data.frame_buckets", "[9]", "--data.size_buckets", "[[32, 32]]", "--data.fps", "12",
        "--data.num_workers", "0", "--trainer.max_steps", "1", "--trainer.logger", "false",
        "--trainer.default_root_dir", str(root), *flags,
    ]  # fmt: skip
    capsys.readouterr()  # drop what building the fixtures printed
    assert train_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"clipmill train: error: {flag}") and err.count("\n") == 1, err
    assert not (root / "checkpoints").exists() and not (root / "lora").exists()
