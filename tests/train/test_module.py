"""The LightningModule on an in-memory 'moving square' dataset in the data module's format."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from train.models.dit import DiTConfig
from train.models.text import TextEncoderSpec, build_text_encoder
from train.module import VideoDiffusion
from train.optim import build_optimizer

TEXT = TextEncoderSpec(kind="random", dim=16)
COLOURS = {"red": (1.0, -1.0, -1.0), "blue": (-1.0, -1.0, 1.0)}


def moving_square(colour: str, direction: int, frames: int = 4, size: int = 16) -> torch.Tensor:
    """A square crossing the frame, `[3, T, H, W]` in [-1, 1]."""
    video = torch.full((3, frames, size, size), -1.0)
    for t in range(frames):
        x = 4 + direction * 2 * t if direction > 0 else size - 8 - 2 * t
        video[:, t, 6:10, x : x + 4] = torch.tensor(COLOURS[colour]).view(3, 1, 1)
    return video


class Squares(Dataset):
    """Samples exactly as `train.data.module.VideoDataModule` yields them (before collation)."""

    def __init__(self, n: int = 4) -> None:
        self.items = [(c, d) for c in COLOURS for d in (1, -1)][:n]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        colour, direction = self.items[i]
        word = "right" if direction > 0 else "left"
        return {
            "video": moving_square(colour, direction),
            "caption": f"a {colour} square moving {word}",
            "fps": torch.tensor(8.0),
            "motion_score": torch.tensor(2.0 + i),
            "clip_score": torch.tensor(math.nan),
            "aesthetic": torch.tensor(math.nan),
            "weight": torch.tensor(1.0),
            "key": f"clip{i}",
        }


def batch_of(n: int = 4) -> dict:
    return next(iter(DataLoader(Squares(n), batch_size=n)))


def tiny_module(**kw) -> VideoDiffusion:
    torch.manual_seed(0)
    dit = DiTConfig(width=32, depth=2, heads=2, patch_t=2, patch_s=4)
    args = dict(dit=dit, text=TEXT, lr=2e-3, warmup_steps=2)
    return VideoDiffusion(**{**args, **kw})


def test_flow_loss_on_a_batch_trains_the_dit_only():
    module = tiny_module()
    loss, per_sample = module.flow_loss(batch_of(), module._generator(0))
    assert loss.ndim == 0 and per_sample.shape == (4,) and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in module.dit.parameters())
    assert all(p.grad is None for p in module.ema.parameters())
    assert "text_encoder" not in str(list(module.state_dict()))  # rebuilt from its spec


class Recorder(torch.nn.Module):
    """Wraps a denoiser and keeps the text states and mask it was called with."""

    def __init__(self, dit: torch.nn.Module) -> None:
        super().__init__()
        self.dit, self.calls = dit, []

    def forward(self, x, t, states, mask, micro):
        self.calls.append((states, mask))
        return self.dit(x, t, states, mask, micro)


def text_used(module: VideoDiffusion, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The (states, mask) that reach the denoiser in a loss on `batch`."""
    recorder = Recorder(module.dit)
    t = torch.full((len(batch["caption"]),), 0.5)
    module.flow_loss(batch, None, t, torch.zeros_like(batch["video"]), train=False, model=recorder)
    assert len(recorder.calls) == 1
    return recorder.calls[0]


def test_precomputed_text_states_are_used_only_when_the_encoder_matches():
    module = tiny_module()
    batch = batch_of()
    stored = torch.randn(4, 3, 16, generator=torch.Generator().manual_seed(1))
    stored_mask = torch.tensor([[True, True, True], [True, False, False]] * 2)
    batch.update(text_states=stored, text_mask=stored_mask)
    batch["text_encoder_id"] = [module.encoder.encoder_id] * 4
    states, mask = text_used(module, batch)
    assert torch.equal(states, stored) and torch.equal(mask, stored_mask)

    # Another encoder's states, a mix of encoders or states of no named encoder are not
    # used: the captions are encoded.
    own_states, own_mask = build_text_encoder(TEXT)(batch["caption"])
    assert own_states.shape[-1] == 16 and own_mask.sum() > 4  # real tokens, not the stored ones
    unnamed = {k: v for k, v in batch.items() if k != "text_encoder_id"}
    for ids in (["hf:something-else"] * 4, [module.encoder.encoder_id] * 3 + ["hf:other"], None):
        states, mask = text_used(
            module, unnamed if ids is None else {**batch, "text_encoder_id": ids}
        )
        torch.testing.assert_close(states, own_states)
        assert torch.equal(mask, own_mask)


@pytest.mark.parametrize(
    ("prediction", "optimizer"), [("v", "adamw"), ("x", "adamw"), ("v", "muon")]
)
def test_overfits_four_clips_in_thirty_steps(prediction, optimizer):
    # Fixed noise and t per clip, so the loss can go to zero. The t values are in
    # the noisier half: at small t the target is the input's faint noise blown up
    # by 1/t, which no network memorises in 30 steps. Width 64 > the 48 values of
    # a 1x4x4 patch, so the output layer is not a bottleneck.
    # With x-prediction the network outputs the clean clip; the loss is still on velocity.
    dit = DiTConfig(width=64, depth=2, heads=2, patch_t=1, patch_s=4)
    module = tiny_module(dit=dit, flow={"prediction": prediction})
    batch = batch_of(4)
    t = torch.tensor([0.7, 0.8, 0.9, 0.95])
    noise = torch.randn(batch["video"].shape, generator=torch.Generator().manual_seed(0))
    opt = build_optimizer(optimizer, module.dit.named_parameters(), 1e-2, 0.01, (0.9, 0.99))
    losses = []
    for _ in range(30):
        loss, _ = module.flow_loss(batch, None, t, noise, train=False)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, losses


def test_training_updates_ema_and_logs(trainer):
    module = tiny_module(ema_decay=0.9)
    before = [p.clone() for p in module.ema.shadow.parameters()]
    tr = trainer(max_steps=3)
    tr.fit(module, DataLoader(Squares(4), batch_size=2))
    assert int(module.ema.num_updates) == 3
    assert any(
        not torch.equal(a, b) for a, b in zip(before, module.ema.shadow.parameters(), strict=True)
    )
    assert "train/loss" in tr.callback_metrics


class RecordLoss(L.Callback):
    def __init__(self) -> None:
        self.losses: dict[int, float] = {}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses[trainer.global_step] = float(outputs["loss"])


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_save_then_resume_gives_the_same_next_loss(tmp_path, trainer, optimizer):
    # One batch per epoch: the data position is the data module's job (Lightning
    # restarts a plain DataLoader's epoch on resume); this checks model, optimizer,
    # schedule, EMA and the step-keyed randomness.
    loader = DataLoader(Squares(4), batch_size=4)
    straight = RecordLoss()
    trainer(max_steps=4, callbacks=[straight]).fit(tiny_module(optimizer=optimizer), loader)

    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    first = tiny_module(optimizer=optimizer)
    trainer(max_steps=2, callbacks=[ckpt], enable_checkpointing=True).fit(first, loader)
    resumed = RecordLoss()
    fresh = tiny_module(seed=0, optimizer=optimizer)
    torch.nn.init.normal_(fresh.dit.final.weight)  # must be overwritten by the checkpoint
    trainer(max_steps=4, callbacks=[resumed]).fit(fresh, loader, ckpt_path=tmp_path / "last.ckpt")
    assert sorted(resumed.losses) == [3, 4]
    for step in (3, 4):
        assert resumed.losses[step] == pytest.approx(straight.losses[step], rel=1e-6, abs=1e-7)
    assert int(fresh.ema.num_updates) == 4


def test_resuming_with_another_optimizer_names_the_flag(tmp_path, trainer):
    loader = DataLoader(Squares(4), batch_size=4)
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    first = tiny_module(optimizer="muon")
    trainer(max_steps=1, callbacks=[ckpt], enable_checkpointing=True).fit(first, loader)
    with pytest.raises(ValueError, match="resume with --model.optimizer muon"):
        trainer(max_steps=2).fit(tiny_module(), loader, ckpt_path=tmp_path / "last.ckpt")
    # Sampling from it needs no optimizer: loading for inference is not a resume.
    VideoDiffusion.load_from_checkpoint(
        tmp_path / "last.ckpt", map_location="cpu", optimizer="adamw"
    )


def test_validation_loss_uses_the_same_noise_every_time(trainer):
    module = tiny_module()
    tr = trainer()
    loader = DataLoader(Squares(4), batch_size=2)
    first = tr.validate(module, loader, verbose=False)[0]
    second = tr.validate(module, loader, verbose=False)[0]
    assert first["val/loss"] == second["val/loss"]
    assert {"val/loss_t0.1", "val/loss_t0.9"} <= set(first)


def test_generate_is_deterministic_and_restores_from_the_checkpoint(tmp_path, trainer):
    module = tiny_module()
    tr = trainer(max_steps=2, default_root_dir=tmp_path)
    tr.fit(module, DataLoader(Squares(4), batch_size=2))
    tr.save_checkpoint(tmp_path / "m.ckpt")
    prompts = ["a red square moving left", "a blue square moving right"]
    a = module.generate(prompts, num_frames=4, size=16, steps=3, cfg_scale=3.0, seed=1)
    assert a.shape == (2, 3, 4, 16, 16) and a.abs().max() <= 1
    assert torch.equal(
        a, module.generate(prompts, num_frames=4, size=16, steps=3, cfg_scale=3.0, seed=1)
    )
    loaded = VideoDiffusion.load_from_checkpoint(tmp_path / "m.ckpt", map_location="cpu")
    b = loaded.generate(prompts, num_frames=4, size=16, steps=3, cfg_scale=3.0, seed=1)
    assert torch.allclose(a, b, atol=1e-6)
    # Defaults for sampling came from nowhere else: the checkpoint holds them.
    assert loaded.hparams.text["kind"] == "random" and loaded.hparams.dit["text_dim"] == 16


def test_bad_settings_name_the_flag():
    with pytest.raises(ValueError, match="--model.caption_dropout"):
        tiny_module(caption_dropout=1.0)
    with pytest.raises(ValueError, match="--model.optimizer"):
        tiny_module(optimizer="sgd")
    with pytest.raises(ValueError, match="--model.dit.text_dim"):
        tiny_module(dit=DiTConfig(width=32, depth=1, heads=2, text_dim=99))


def test_muon_under_fsdp_fails_naming_the_flag():
    from types import SimpleNamespace

    from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy

    module = tiny_module(optimizer="muon")
    module._trainer = SimpleNamespace(strategy=DDPStrategy(), max_steps=10)
    assert module.configure_optimizers()["optimizer"].muon.param_groups
    module._trainer = SimpleNamespace(strategy=FSDPStrategy(), max_steps=10)
    with pytest.raises(ValueError, match="--model.optimizer muon"):
        module.configure_optimizers()
