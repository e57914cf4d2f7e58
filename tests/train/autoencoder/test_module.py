"""Training the video autoencoder: losses, metrics, overfitting, checkpoints and the CLI."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from pipeline.synthetic.world import ShotRenderer, draw_spec
from schemas import empty_clip
from train.autoencoder.io import load_autoencoder
from train.autoencoder.losses import frame_difference, gradient_difference, psnr, ssim
from train.autoencoder.model import kl_divergence, sample_posterior
from train.autoencoder.module import VideoAutoencoderModule
from train.cli import train_main

VAE_YAML = str(Path(__file__).parents[3] / "configs" / "train" / "vae_tiny.yaml")
TINY = dict(
    base_width=8,
    latent_channels=8,
    temporal_compression=2,
    spatial_compression=2,
    channel_mult=[1, 2],
)


pytestmark = pytest.mark.usefixtures("one_thread")


def world_clips(n: int, frames: int, size: int, seed: int = 0) -> torch.Tensor:
    """`n` shots of the synthetic shapes world, `[n, 3, frames, size, size]` in [-1, 1]."""
    rng, spec, out = np.random.default_rng(seed), None, []
    for _ in range(n):
        spec = draw_spec(rng, spec)
        shot = ShotRenderer(spec, size, size, frames)
        out.append(np.stack([shot.frame(t) for t in range(frames)]))
    return torch.from_numpy(np.stack(out)).permute(0, 4, 1, 2, 3).float() / 127.5 - 1


class Batches(torch.utils.data.IterableDataset):
    def __init__(self, video: torch.Tensor) -> None:
        self.video = video

    def __iter__(self):
        while True:
            yield {"video": self.video}


def fit(module: VideoAutoencoderModule, video: torch.Tensor, steps: int, **trainer) -> L.Trainer:
    loader = torch.utils.data.DataLoader(Batches(video), batch_size=None)
    kwargs = dict(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    t = L.Trainer(**{**kwargs, **trainer})
    t.fit(module, train_dataloaders=loader)
    return t


# ------------------------------------------------------------------ metrics


def test_psnr_and_ssim():
    x = world_clips(2, 3, 16)
    noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(
        -1, 1
    )
    assert torch.allclose(ssim(x, x), torch.ones(2))
    assert psnr(x, x).min() > 90
    mse01 = ((noisy - x) / 2).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(psnr(noisy, x), -10 * torch.log10(mse01))
    assert (ssim(noisy, x) < 0.95).all() and (ssim(noisy, x) > ssim(-x, x)).all()
    # SSIM sees structure, not just error: a uniform brightness shift keeps more of it
    # than noise of the same mean squared error does.
    shifted = (x + (noisy - x).pow(2).mean().sqrt()).clamp(-1, 1)
    assert (ssim(shifted, x) > ssim(noisy, x)).all()


def test_gradient_and_frame_difference_terms():
    x = world_clips(1, 3, 16)
    blurred = torch.nn.functional.avg_pool3d(x, (1, 3, 3), 1, (0, 1, 1), count_include_pad=False)
    assert gradient_difference(x, x) == 0 and gradient_difference(blurred, x) > 0.01
    frozen = x[:, :, :1].expand_as(x)  # motion lost
    assert frame_difference(x, x) == 0 and frame_difference(frozen, x) > 0
    assert frame_difference(x[:, :, :1], frozen[:, :, :1]) == 0  # an image has no motion


def test_loss_is_the_weighted_sum_of_its_terms(trainer):
    torch.manual_seed(0)
    weights = dict(l1=1.0, mse=2.0, ssim=0.5, gdl=0.3, frame_diff=0.2, kl=0.1)
    module = VideoAutoencoderModule(TINY, **{f"{k}_weight": w for k, w in weights.items()})
    x, recon = world_clips(2, 3, 8), world_clips(2, 3, 8, seed=1)
    terms = module.reconstruction_terms(recon, x)
    assert set(terms) == {"l1", "mse", "ssim", "gdl", "frame_diff"}
    torch.testing.assert_close(terms["l1"], (recon - x).abs().mean())
    torch.testing.assert_close(terms["ssim"], 1 - ssim(recon, x).mean())
    assert set(VideoAutoencoderModule(TINY).reconstruction_terms(recon, x)) == {"l1"}
    with pytest.raises(ValueError, match="--model.kl_weight"):
        VideoAutoencoderModule(TINY, kl_weight=-1)

    # A training step: the loss it returns (and logs) is the sum of the terms it logs, each
    # times its weight above, and every term is that of the step's own posterior sample.
    module.trainer = trainer(max_steps=1)
    logged: dict[str, torch.Tensor] = {}
    module.log = lambda name, value, **_: logged.__setitem__(name, torch.as_tensor(value))
    loss = module.training_step({"video": x}, 0)
    assert {f"train/{k}" for k in weights} | {"train/loss", "train/psnr"} == set(logged)
    torch.testing.assert_close(logged["train/loss"], loss.detach())
    total = sum(w * logged[f"train/{k}"] for k, w in weights.items())
    torch.testing.assert_close(loss.detach(), total)
    with torch.no_grad():
        mean, logvar = module.autoencoder.encode(x)
        sampled = sample_posterior(mean, logvar, module._generator(0, 0, 0))
        recon = module.autoencoder.decode(sampled)
    want = dict(
        l1=(recon - x).abs().mean(),
        mse=(recon - x).pow(2).mean(),
        ssim=1 - ssim(recon, x).mean(),
        gdl=gradient_difference(recon, x),
        frame_diff=frame_difference(recon, x),
        kl=kl_divergence(mean, logvar),
    )
    for name, value in want.items():
        torch.testing.assert_close(logged[f"train/{name}"].detach(), value, msg=name)


def test_latent_stats_give_shift_and_scale():
    module = VideoAutoencoderModule(TINY, stats_decay=0.9)
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        module.update_latent_stats(2.0 + 3.0 * torch.randn(4, 8, 2, 4, 4, generator=gen))
    assert module.autoencoder.shift_factor == pytest.approx(2.0, abs=0.15)
    assert module.autoencoder.scaling_factor == pytest.approx(1 / 3, rel=0.05)


# ----------------------------------------------------------------- training


def test_overfits_a_few_clips_to_a_psnr_floor():
    torch.manual_seed(0)
    video = world_clips(2, 5, 16)
    module = VideoAutoencoderModule(TINY, lr=5e-3, warmup_steps=10, mse_weight=1.0)
    fit(module, video, steps=500)  # 300 sufficed while the shapes were 0.2 of the frame
    module.eval()
    with torch.no_grad():
        recon = module.autoencoder.decode(module.autoencoder.encode(video)[0])
    assert psnr(recon, video).min() >= 25.0
    assert ssim(recon, video).min() >= 0.7  # from ~0.03; fine texture is what it loses
    assert module.autoencoder.scaling_factor != 1.0  # the latent stats were tracked


def test_adversarial_term_starts_at_its_step():
    torch.manual_seed(0)
    module = VideoAutoencoderModule(TINY, adv_weight=0.1, adv_start_step=2, disc_width=8)
    before = [p.detach().clone() for p in module.discriminator.parameters()]
    video = world_clips(2, 3, 8)
    fit(module, video, steps=2)
    assert all(
        torch.equal(a, b) for a, b in zip(before, module.discriminator.parameters(), strict=True)
    )
    fit(module, video, steps=3)
    assert not all(
        torch.equal(a, b) for a, b in zip(before, module.discriminator.parameters(), strict=True)
    )
    assert VideoAutoencoderModule(TINY).discriminator is None  # off by default


def test_generator_term_does_not_train_the_discriminator():
    torch.manual_seed(0)
    module = VideoAutoencoderModule(TINY, adv_weight=1.0, l1_weight=0.0, kl_weight=0.0)
    trainer = L.Trainer(logger=False, max_steps=1, accelerator="cpu")
    module.trainer = trainer
    module.log = lambda *a, **k: None  # outside a fit loop
    loss = module.training_step({"video": world_clips(2, 3, 8)}, 0)
    loss.backward()
    # Only the discriminator's own hinge loss reaches it; the generator's gradient
    # through the discriminator would have pushed these the other way.
    grads = [p.grad.clone() for p in module.discriminator.parameters()]
    module.zero_grad()
    video = world_clips(2, 3, 8)
    with torch.no_grad():
        mean, logvar = module.autoencoder.encode(video)
    from train.autoencoder.losses import hinge_d_loss

    gen = module._generator(0, 0, 0)
    recon = module.autoencoder.decode(sample_posterior(mean, logvar, gen))
    disc = module.discriminator
    hinge_d_loss(disc(video), disc(recon.detach())).backward()
    for a, p in zip(grads, disc.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad)


def test_checkpoint_round_trip_through_load_autoencoder(tmp_path):
    torch.manual_seed(0)
    module = VideoAutoencoderModule(TINY, lr=1e-3)
    video = world_clips(2, 3, 8)
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)
    fit(module, video, steps=3, enable_checkpointing=True, callbacks=[ckpt])
    model = load_autoencoder(str(tmp_path / "last.ckpt"))
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.fingerprint() == module.autoencoder.fingerprint()
    assert model.scaling_factor == module.autoencoder.scaling_factor != 1.0
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.encode(video)[0], module.autoencoder.encode(video)[0])


# ---------------------------------------------------------------------- CLI


def clip_samples(n: int = 4, frames: int = 6, size: int = 16):
    """(key, video, record) of `n` shots of the shapes world, `frames` of `size`² each."""
    clips = ((world_clips(n, frames, size) + 1) * 127.5).round().to(torch.uint8)
    for i, clip in enumerate(clips.permute(0, 2, 3, 4, 1).numpy()):
        key = f"{i:016x}_{0:07d}_{frames:07d}"
        record = empty_clip(
            clip_id=key, caption="a shape", fps=12.0, n_frames=frames, width=size, height=size,
            kept=True,
        )  # fmt: skip
        yield key, clip, record


def test_cli_fits_the_autoencoder_from_shards(tmp_path, capsys, shard_writer, logged_tags):
    shards = shard_writer(tmp_path / "shards", clip_samples(), 12.0, max_samples=4)
    root = tmp_path / "run"
    common = ["--config", VAE_YAML, "--data.shards", shards, "--data.val_shards", shards]
    common += ["--trainer.default_root_dir", str(root), "--data.num_workers", "0"]
    common += ["--data.size", "16", "--data.batch_size", "2"]
    common += ["--trainer.enable_progress_bar", "false", "--trainer.log_every_n_steps", "1"]
    small = ["--model.autoencoder.base_width", "8", "--trainer.val_check_interval", "2"]
    argv = ["fit", *common, *small, "--data.num_frames", "5", "--trainer.max_steps", "2"]
    assert train_main(argv) == 0
    last = root / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2 and ckpt["hyper_parameters"]["autoencoder"]["base_width"] == 8
    model = load_autoencoder(str(last))
    assert model.latent_shape(5, 16, 16) == (8, 2, 4, 4)
    scalars, images = logged_tags(root)
    assert {"val/psnr", "val/ssim", "val/l1", "val/kl"} <= scalars
    # The terms vae_tiny.yaml weighs (gdl_weight is 0 there), the total, and the bookkeeping.
    terms = {"l1", "mse", "ssim", "frame_diff", "kl", "loss", "psnr", "lr", "latent_scale"}
    assert {t for t in scalars if t.startswith("train/")} == {f"train/{t}" for t in terms}
    assert images == {"reconstructions"}  # originals over reconstructions

    bad = ["fit", *common, *small, "--data.num_frames", "6", "--trainer.max_steps", "1"]
    assert train_main(bad) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("clipmill train: error: --data.num_frames 6 does not fit")
