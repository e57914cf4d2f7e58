"""The LightningModule that trains `train.autoencoder.model.VideoAutoencoder` on the shards.

`clipmill train fit --config configs/train/vae_tiny.yaml --data.shards 'out/shards/*.tar'`
reads batches from the same `VideoDataModule` as the denoiser (`video`
`[B, 3, T, H, W]` in [-1, 1]; captions are ignored). The loss is

    l1 * |x̂ - x| + mse * (x̂ - x)² + ssim * (1 - SSIM) + gdl * gradient difference
    + frame_diff * frame-difference L1 + kl * KL(q(z|x) || N(0, 1))
    + adv * hinge GAN loss (from adv_start_step; off while adv_weight = 0)

with x̂ decoded from a posterior sample. Validation decodes the posterior mean
and logs `val/psnr` and `val/ssim` per held-out clip.

Latent scale: every training step folds the sampled latents' mean and mean
square into running averages, and writes shift = mean, scale = 1/std into the
autoencoder's buffers, so each checkpoint holds the factors of (nearly) its own
weights and `load_autoencoder` needs nothing else.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.func import functional_call

from train.autoencoder.losses import (
    PatchDiscriminator3d,
    frame_difference,
    gradient_difference,
    hinge_d_loss,
    hinge_g_loss,
    psnr,
    ssim,
)
from train.autoencoder.model import (
    AutoencoderConfig,
    VideoAutoencoder,
    kl_divergence,
    sample_posterior,
)
from train.schedule import warmup_cosine


class VideoAutoencoderModule(L.LightningModule):
    """Trains the causal VAE: reconstruction + weight-free extras + small KL (+ optional GAN)."""

    def __init__(
        self,
        autoencoder: AutoencoderConfig = AutoencoderConfig(),
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.99),
        warmup_steps: int = 100,
        max_steps: int | None = None,
        min_lr_ratio: float = 0.1,
        l1_weight: float = 1.0,
        mse_weight: float = 0.0,
        ssim_weight: float = 0.0,
        gdl_weight: float = 0.0,
        frame_diff_weight: float = 0.0,
        kl_weight: float = 1e-6,
        adv_weight: float = 0.0,
        adv_start_step: int = 0,
        disc_width: int = 32,
        disc_lr: float | None = None,
        stats_decay: float = 0.99,
        seed: int = 0,
    ) -> None:
        """
        Args:
            autoencoder: the VAE's shape (compression, latent channels, widths).
            max_steps: length of the cosine decay; None = the Trainer's max_steps.
            l1_weight, mse_weight: pixel reconstruction terms.
            ssim_weight: weight of 1 - SSIM (Gaussian window, per frame).
            gdl_weight: gradient-difference loss (sharp edges).
            frame_diff_weight: L1 of consecutive-frame differences (motion, no flicker).
            kl_weight: weight of the KL to N(0, 1); small, so latents stay informative.
            adv_weight: hinge GAN weight of a 3D patch discriminator; 0 = no discriminator.
            adv_start_step: the GAN terms start at this step (after reconstruction settles).
            disc_width: first-layer channels of the discriminator.
            disc_lr: the discriminator's learning rate; None = lr.
            stats_decay: running-average decay of the latent mean/std (scale and shift).
            seed: seed of the posterior noise.
        """
        super().__init__()
        cfg = autoencoder if isinstance(autoencoder, AutoencoderConfig) else None
        cfg = cfg or AutoencoderConfig(**(autoencoder or {}))
        weights = dict(l1=l1_weight, mse=mse_weight, ssim=ssim_weight, gdl=gdl_weight)
        weights |= dict(frame_diff=frame_diff_weight, kl=kl_weight, adv=adv_weight)
        for name, value in weights.items():
            if value < 0:
                raise ValueError(f"--model.{name}_weight must be >= 0, got {value}")
        if not 0 <= stats_decay < 1:
            raise ValueError(f"--model.stats_decay must be in [0, 1), got {stats_decay}")
        # A plain dict in hparams: the checkpoint then loads with weights_only=True.
        autoencoder = dataclasses.asdict(cfg)
        self.save_hyperparameters()
        self.autoencoder = VideoAutoencoder(cfg)
        self.discriminator = (
            PatchDiscriminator3d(cfg.in_channels, disc_width) if adv_weight else None
        )
        # Running mean and mean square of the sampled latents, and how many steps fed them.
        self.register_buffer("z_stats", torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))

    # -------------------------------------------------------------- training

    def _generator(self, *keys: int) -> torch.Generator:
        seed = self.hparams.seed
        for k in keys:
            seed = (seed * 1_000_003 + k) % (2**63)
        return torch.Generator(device=self.device).manual_seed(seed)

    def reconstruction_terms(self, recon: Tensor, video: Tensor) -> dict[str, Tensor]:
        """The weighted pixel terms that are switched on (weight > 0)."""
        hp, terms = self.hparams, {}
        if hp.l1_weight:
            terms["l1"] = (recon - video).abs().mean()
        if hp.mse_weight:
            terms["mse"] = (recon - video).pow(2).mean()
        if hp.ssim_weight:
            terms["ssim"] = 1 - ssim(recon, video).mean()
        if hp.gdl_weight:
            terms["gdl"] = gradient_difference(recon, video)
        if hp.frame_diff_weight:
            terms["frame_diff"] = frame_difference(recon, video)
        return terms

    def adversarial_active(self) -> bool:
        return self.discriminator is not None and self.global_step >= self.hparams.adv_start_step

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        video = batch["video"]
        micro_batch = batch_idx % self.trainer.accumulate_grad_batches
        gen = self._generator(self.global_step, micro_batch, self.global_rank)
        mean, logvar = self.autoencoder.encode(video)
        z = sample_posterior(mean, logvar, gen)
        recon = self.autoencoder.decode(z)
        terms = self.reconstruction_terms(recon, video)
        terms["kl"] = kl_divergence(mean, logvar)
        hp = self.hparams
        loss = sum(hp[f"{name}_weight"] * value for name, value in terms.items())
        if self.adversarial_active():
            # One optimizer, one backward: the generator's term sees the discriminator
            # through detached weights, the discriminator's sees a detached recon, so
            # each gradient reaches only its own network (Lightning's automatic
            # optimization and gradient clipping keep working).
            frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()}
            terms["adv_g"] = hinge_g_loss(functional_call(self.discriminator, frozen, (recon,)))
            terms["adv_d"] = hinge_d_loss(
                self.discriminator(video), self.discriminator(recon.detach())
            )
            loss = loss + hp.adv_weight * terms["adv_g"] + terms["adv_d"]
        self.update_latent_stats(z.detach())
        b = video.shape[0]
        for name, value in terms.items():
            self.log(f"train/{name}", value, batch_size=b)
        self.log("train/loss", loss, prog_bar=True, batch_size=b)
        self.log("train/psnr", psnr(recon.detach(), video).mean(), prog_bar=True, batch_size=b)
        return loss

    @torch.no_grad()
    def update_latent_stats(self, z: Tensor) -> None:
        """Fold this batch into the running latent mean/std; set shift and scale from them."""
        mean_sq = torch.stack([z.double().mean(), z.double().pow(2).mean()])
        n = self.z_stats[2]
        # Early on, the plain average of the steps so far (a cold start at 0 and 1
        # would bias the first hundred steps); later an exponential average.
        decay = torch.clamp(n / (n + 1), max=self.hparams.stats_decay)
        self.z_stats[:2] = decay * self.z_stats[:2] + (1 - decay) * mean_sq
        self.z_stats[2] = n + 1
        mu, sq = self.z_stats[0], self.z_stats[1]
        std = torch.sqrt(torch.clamp(sq - mu * mu, min=1e-12))
        self.autoencoder.shift_factor = float(mu)
        self.autoencoder.scaling_factor = float(1 / std)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=1)
        self.log("train/latent_scale", self.autoencoder.scaling_factor, batch_size=1)

    def setup(self, stage: str) -> None:
        """Fail at start when the data's frames or size cannot pass through this VAE."""
        dm = getattr(self.trainer, "datamodule", None) if self._trainer else None
        hp = getattr(dm, "hparams", None) or {}
        frames, size = hp.get("num_frames"), hp.get("size")
        ft, fs = self.autoencoder.temporal_compression, self.autoencoder.spatial_compression
        if frames is not None and (frames < 1 or (frames - 1) % ft):
            raise ValueError(
                f"--data.num_frames {frames} does not fit the autoencoder: use 1 + k*{ft} "
                f"(e.g. {1 + ft}, {1 + 2 * ft}, {1 + 4 * ft})"
            )
        if size is not None:
            h, w = (size, size) if isinstance(size, int) else tuple(size)
            if h % fs or w % fs:
                raise ValueError(
                    f"--data.size {size} does not fit the autoencoder: use multiples of {fs}"
                )

    # ------------------------------------------------------------ validation

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """PSNR/SSIM of the posterior-mean reconstruction of each held-out clip."""
        video = batch["video"]
        mean, logvar = self.autoencoder.encode(video)
        recon = self.autoencoder.decode(mean).clamp(-1, 1)
        b = video.shape[0]
        self.log("val/psnr", psnr(recon, video).mean(), prog_bar=True, sync_dist=True, batch_size=b)
        self.log("val/ssim", ssim(recon, video).mean(), sync_dist=True, batch_size=b)
        self.log("val/l1", (recon - video).abs().mean(), sync_dist=True, batch_size=b)
        self.log("val/kl", kl_divergence(mean, logvar), sync_dist=True, batch_size=b)
        if batch_idx == 0 and self.trainer.is_global_zero:
            self._log_grid(video[:4], recon[:4])

    def _log_grid(self, video: Tensor, recon: Tensor) -> None:
        """Originals over reconstructions, one row per clip, frames left to right."""
        experiment = getattr(self.logger, "experiment", None)
        if not hasattr(experiment, "add_image"):
            return
        pairs = torch.stack([video, recon], dim=1).flatten(0, 1).float().cpu()
        v = ((pairs.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # B, C, T, H, W
        b, c, t, h, w = v.shape
        grid = v.permute(0, 3, 2, 4, 1).reshape(b * h, t * w, c)
        experiment.add_image("reconstructions", grid, self.global_step, dataformats="HWC")

    # ------------------------------------------------------------- optimizer

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW (no decay on biases and norms), warmup then cosine; the discriminator
        is a second parameter group of the same optimizer with its own lr."""
        hp = self.hparams
        decay = [p for p in self.autoencoder.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.autoencoder.parameters() if p.dim() < 2]
        groups = [
            {"params": decay, "weight_decay": hp.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        if self.discriminator is not None:
            groups.append(
                {"params": list(self.discriminator.parameters()), "lr": hp.disc_lr or hp.lr}
            )
        opt = torch.optim.AdamW(groups, lr=hp.lr, betas=tuple(hp.betas))
        total = hp.max_steps or (self.trainer.max_steps if self._trainer else None)
        total = total if total and total > 0 else None
        warmup = max(hp.warmup_steps, 0)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: warmup_cosine(step, warmup, total, hp.min_lr_ratio)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
