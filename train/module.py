"""The LightningModule: text-to-video rectified-flow training around the DiT.

Batches are dicts from `train.data.module.VideoDataModule`: `video` `[B, C, T, H, W]`
in [-1, 1], `caption` list[str], micro-conditions as `[B]` tensors (NaN when
unknown), optional `weight` `[B]`; optionally `text_states`/`text_mask` with
`text_encoder_id`, precomputed embeddings that are used when the id matches.

All training randomness (t, noise, caption and micro-condition dropout) comes
from a generator seeded by (seed, step, micro-batch, rank), so a resumed run
draws exactly what the uninterrupted run would have drawn.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Literal

import lightning as L
import torch
from torch import Tensor

from train.flow import FlowConfig, RectifiedFlow, guided, initial_noise, sample
from train.models.dit import DiT, DiTConfig
from train.models.ema import EMA
from train.models.text import TextEncoder, TextEncoderSpec, build_text_encoder
from train.optim import OptimizerKind, build_optimizer, check_optimizer, check_resume
from train.schedule import warmup_cosine

# The EMA copy is in eval mode on purpose; Lightning warns about any such module.
warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")

DEFAULT_PROMPTS = ("a red circle moving left", "a blue square moving right")


def _as(cls: type, value: Any) -> Any:
    """A dataclass from itself or from the plain dict a checkpoint stores."""
    return value if isinstance(value, cls) else cls(**(value or {}))


def to_uint8(video: Tensor) -> Tensor:
    """`[..., C, T, H, W]` in [-1, 1] → uint8 `[..., T, H, W, C]`."""
    v = ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return v.movedim(-4, -1)


def frame_grid(video: Tensor) -> Tensor:
    """`[B, C, T, H, W]` → one uint8 `[H * B, W * T, C]` image: a row per video."""
    v = to_uint8(video)  # B, T, H, W, C
    b, t, h, w, c = v.shape
    return v.permute(0, 2, 1, 3, 4).reshape(b * h, t * w, c)


def _load_vae(spec: str | None, in_channels: int) -> Any:
    """The frozen autoencoder `spec` names (None: pixel space), checked against the DiT."""
    if not spec:
        return None
    from train.autoencoder.io import load_autoencoder

    try:
        vae = load_autoencoder(spec)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"--model.autoencoder: {err}") from err
    if vae.latent_channels != in_channels:
        raise ValueError(
            f"--model.dit.in_channels {in_channels} != the autoencoder's latent_channels "
            f"{vae.latent_channels} (--model.autoencoder {spec})"
        )
    return vae


class VideoDiffusion(L.LightningModule):
    """Text-to-video DiT trained with rectified flow, CFG dropout and EMA."""

    def __init__(
        self,
        dit: DiTConfig = DiTConfig(),
        text: TextEncoderSpec = TextEncoderSpec(),
        flow: FlowConfig = FlowConfig(),
        lr: float = 5e-4,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.99),
        optimizer: OptimizerKind = "adamw",
        warmup_steps: int = 100,
        max_steps: int | None = None,
        min_lr_ratio: float = 0.1,
        caption_dropout: float = 0.1,
        ema_decay: float = 0.999,
        ema_every: int = 1,
        use_ema_for_val: bool = True,
        val_timesteps: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9),
        sample_every_n_steps: int = 0,
        sample_prompts: list[str] | None = None,
        sample_steps: int = 30,
        sample_method: Literal["euler", "heun"] = "euler",
        cfg_scale: float = 4.0,
        sample_num_frames: int | None = None,
        sample_size: int | tuple[int, int] | None = None,
        sample_fps: float | None = None,
        compile: bool = False,
        seed: int = 0,
        autoencoder: str | None = None,
    ) -> None:
        """
        Args:
            dit: the denoiser's shape (text_dim None = the text encoder's width).
            text: the frozen text encoder; stored in the checkpoint, so sampling needs
                only the checkpoint (and the encoder's weights where it names them).
            flow: the timestep distribution and its token-count shift.
            optimizer: `adamw`, or `muon` (Muon on the transformer blocks' matrices, AdamW
                for the rest, one lr; see train.optim).
            max_steps: length of the cosine decay; None = the Trainer's max_steps.
            min_lr_ratio: the cosine ends at lr * min_lr_ratio.
            caption_dropout: probability a caption is dropped (for classifier-free guidance).
            ema_every: update the EMA every this many optimizer steps.
            use_ema_for_val: validate (and sample) with the EMA weights.
            val_timesteps: t values of the held-out loss, with the same noise every time.
            sample_every_n_steps: log sample videos every N steps (0 = never).
            sample_num_frames: frames of logged samples; None = the datamodule's num_frames.
            sample_size: size of logged samples; None = the datamodule's size.
            compile: torch.compile the denoiser.
            seed: seed of the training noise, timesteps and dropout.
            autoencoder: train in its latent space (`--data.kind latents`): a VAE .ckpt
                or `diffusers:<folder>` (see train.autoencoder.model.load_autoencoder). Frozen,
                kept out of the checkpoint like the text encoder; sampling decodes with it,
                and a latent cache made by another VAE is refused. None = pixel space.
        """
        super().__init__()
        dit, text, flow = _as(DiTConfig, dit), _as(TextEncoderSpec, text), _as(FlowConfig, flow)
        if not 0 <= caption_dropout < 1:
            raise ValueError(f"--model.caption_dropout must be in [0, 1), got {caption_dropout}")
        check_optimizer(optimizer)
        if ema_every < 1:
            raise ValueError(f"--model.ema_every must be >= 1, got {ema_every}")
        encoder = build_text_encoder(text)
        if dit.text_dim is None:
            dit = dataclasses.replace(dit, text_dim=encoder.dim)
        elif dit.text_dim != encoder.dim:
            raise ValueError(
                f"--model.dit.text_dim {dit.text_dim} != the text encoder's width {encoder.dim}"
            )
        vae = _load_vae(autoencoder, dit.in_channels)
        # Plain dicts in hparams: checkpoints then load with torch's weights_only=True.
        dit, text, flow = (dataclasses.asdict(c) for c in (dit, text, flow))
        self.save_hyperparameters()
        self.dit = DiT(DiTConfig(**dit))
        self.ema = EMA(self.dit, ema_decay)
        self.flow = RectifiedFlow(FlowConfig(**flow))
        # Frozen and rebuilt from its spec: kept out of the state_dict and of DDP
        # (hence not a registered submodule); moved to the device on first use.
        self.__dict__["text_encoder"] = encoder
        self.__dict__["vae"] = vae
        self._last_sampled_step = -1

    # ---------------------------------------------------------------- inputs

    @property
    def encoder(self) -> TextEncoder:
        enc = self.__dict__["text_encoder"]
        if enc.device != self.device:
            enc.to(self.device)
        return enc

    @property
    def vae(self) -> Any:
        """The frozen autoencoder (None in pixel space), moved to the device on first use."""
        vae = self.__dict__["vae"]
        if vae is not None and next(vae.buffers()).device != self.device:
            vae.to(self.device)
        return vae

    def vae_fingerprint(self) -> str | None:
        """The frozen VAE's fingerprint, hashed once (it reads every weight)."""
        if self.vae is None:
            return None
        if "_vae_fingerprint" not in self.__dict__:
            self.__dict__["_vae_fingerprint"] = self.vae.fingerprint()
        return self.__dict__["_vae_fingerprint"]

    def decode_latents(self, latents: Tensor) -> Tensor:
        """Denoiser latents → pixels in [-1, 1] (undoing the cache's scale and shift)."""
        vae = self.vae
        z = latents / vae.scaling_factor + vae.shift_factor
        return vae.decode(z.to(next(vae.parameters()).dtype)).float().clamp(-1, 1)

    def encode_text(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """Token states and mask: precomputed ones if they match the encoder, else encoded."""
        ids = batch.get("text_encoder_id")
        ids = [ids] if isinstance(ids, str) else ids
        if "text_states" in batch and ids and set(ids) == {self.encoder.encoder_id}:
            return batch["text_states"].float(), batch["text_mask"].bool()
        return self.encoder(batch["caption"])

    def micro_from(self, batch: dict[str, Any], n: int) -> dict[str, Tensor]:
        """The configured micro-conditions; absent keys are unknown (NaN)."""
        out = {}
        for name in self.dit.cfg.micro_conditions:
            v = batch.get(name)
            v = torch.full((n,), math.nan) if v is None else torch.as_tensor(v)
            out[name] = v.to(self.device, torch.float32)
        return out

    def _generator(self, *keys: int) -> torch.Generator:
        seed = self.hparams.seed
        for k in keys:
            seed = (seed * 1_000_003 + k) % (2**63)
        return torch.Generator(device=self.device).manual_seed(seed)

    # -------------------------------------------------------------- training

    def flow_loss(
        self,
        batch: dict[str, Any],
        generator: torch.Generator,
        t: Tensor | None = None,
        noise: Tensor | None = None,
        train: bool = True,
        model: torch.nn.Module | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(loss, per-sample loss) of one batch; `train` applies the CFG/micro dropout."""
        x0 = batch["video"]
        b = x0.shape[0]
        states, mask = self.encode_text(batch)
        micro = self.micro_from(batch, b)
        if train:
            keep = (
                torch.rand(b, generator=generator, device=self.device)
                >= self.hparams.caption_dropout
            )
            mask = mask & keep[:, None]
            micro = self.dit.drop_micro(micro, generator)
        if t is None:
            t = self.flow.sample_t(b, self.dit.num_tokens(x0.shape), generator, self.device)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=self.device, dtype=x0.dtype)
        x_t = self.flow.interpolate(x0, noise, t)
        pred = self.flow.as_velocity(model or self.dit)(x_t, t, states, mask, micro)
        return self.flow.loss(pred, x0, noise, batch.get("weight"))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        # Keyed by the optimizer step and the micro-batch within it, not by batch_idx,
        # which Lightning does not restore when it resumes mid-epoch.
        micro_batch = batch_idx % self.trainer.accumulate_grad_batches
        gen = self._generator(self.global_step, micro_batch, self.global_rank)
        loss, _ = self.flow_loss(batch, gen)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["caption"]))
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        # Once per real optimizer step (not per accumulated micro-batch).
        super().optimizer_step(*args, **kwargs)
        if (self.global_step + 1) % self.hparams.ema_every == 0:
            self.ema.update(self.dit)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=1)
        n, step = self.hparams.sample_every_n_steps, self.global_step
        if n and step % n == 0 and step != self._last_sampled_step:
            self._last_sampled_step = step
            if self.trainer.is_global_zero:
                self._log_samples()

    def setup(self, stage: str) -> None:
        """Samples default to the data's frame count, size and fps (kept in the checkpoint)."""
        dm = getattr(self.trainer, "datamodule", None) if self._trainer else None
        hp = getattr(dm, "hparams", {}) or {}
        if getattr(dm, "latent_header", None) is not None:
            hp = self._check_cache(dm.latent_header)
        for ours, theirs in (
            ("sample_num_frames", "num_frames"),
            ("sample_size", "size"),
            ("sample_fps", "fps"),
        ):
            value = hp.get(theirs, getattr(dm, theirs, None))
            if self.hparams.get(ours) is None and value is not None:
                self.hparams[ours] = value

    def _check_cache(self, header: dict[str, Any]) -> dict[str, Any]:
        """Refuse a cache made by another VAE/text encoder; its sampling as the data's."""
        from train.cache.format import check_header

        if self.vae is None:
            raise ValueError("--data.kind latents needs --model.autoencoder (the cache's VAE)")
        check_header(
            header,
            fingerprint=self.vae_fingerprint(),
            text_encoder_id=self.encoder.encoder_id,
        )
        sample = header["sample"]
        return {"num_frames": sample["num_frames"], "size": sample["size"], "fps": sample["fps"]}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.vae is not None:  # so that sampling can refuse another VAE's decoder
            checkpoint["autoencoder_fingerprint"] = self.vae_fingerprint()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._trainer is not None and "optimizer_states" in checkpoint:  # a resumed fit
            # A checkpoint from before --model.optimizer existed was trained with AdamW.
            saved = checkpoint.get("hyper_parameters", {}).get("optimizer", "adamw")
            check_resume(saved, self.hparams.optimizer)
        trained = checkpoint.get("autoencoder_fingerprint")
        if trained and self.vae is not None and self.vae_fingerprint() != trained:
            raise ValueError(
                f"--model.autoencoder {self.hparams.autoencoder} (fingerprint "
                f"{self.vae_fingerprint()}) is not the VAE this model was trained with ({trained})"
            )

    def configure_model(self) -> None:
        if self.hparams.compile and not getattr(self, "_compiled", False):
            self.dit.compile()
            self._compiled = True

    # ------------------------------------------------------------ validation

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Loss at fixed t with noise fixed per (batch, rank): comparable across runs."""
        model = self.ema.shadow if self.hparams.use_ema_for_val else self.dit
        x0 = batch["video"]
        b = x0.shape[0]
        noise = initial_noise(
            tuple(x0.shape),
            self.hparams.seed + 7919 * (batch_idx * self.trainer.world_size + self.global_rank) * b,
            self.device,
            x0.dtype,
        )
        losses = []
        for t in self.hparams.val_timesteps:
            t_vec = torch.full((b,), float(t), device=self.device)
            loss, _ = self.flow_loss(batch, None, t_vec, noise, train=False, model=model)
            self.log(f"val/loss_t{t:g}", loss, sync_dist=True, batch_size=b)
            losses.append(loss)
        self.log(
            "val/loss", torch.stack(losses).mean(), prog_bar=True, sync_dist=True, batch_size=b
        )

    # -------------------------------------------------------------- sampling

    @torch.no_grad()
    def generate(
        self,
        prompts: list[str],
        num_frames: int | None = None,
        size: int | tuple[int, int] | None = None,
        steps: int | None = None,
        cfg_scale: float | None = None,
        seed: int = 0,
        method: Literal["euler", "heun"] | None = None,
        micro: dict[str, float] | None = None,
        use_ema: bool = True,
    ) -> Tensor:
        """Videos `[B, C, T, H, W]` in [-1, 1]; prompt i always gets the noise of seed + i.

        Unset arguments default to the checkpoint's sample_* settings. A
        micro-condition left out of `micro` is sampled as unknown (its null).
        """
        hp = self.hparams
        num_frames = num_frames or hp.sample_num_frames or 8
        size = size or hp.sample_size or 32
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        steps, method = steps or hp.sample_steps, method or hp.sample_method
        cfg_scale = hp.cfg_scale if cfg_scale is None else cfg_scale
        model = self.ema.shadow if use_ema else self.dit
        states, mask = self.encoder(list(prompts))
        b = len(prompts)
        values = {
            k: torch.full((b,), float(v), device=self.device) for k, v in (micro or {}).items()
        }
        shape = (b, self.dit.cfg.in_channels, num_frames, h, w)
        if self.vae is not None:  # the denoiser works on the latent of that video
            shape = (b, *self.vae.latent_shape(num_frames, h, w))
        cond = {"text_states": states, "text_mask": mask, "micro": values}
        uncond = {**cond, "text_mask": torch.zeros_like(mask)}
        velocity = guided(self.flow.as_velocity(model), cond, uncond, cfg_scale)
        ts = self.flow.timesteps(steps, self.dit.num_tokens(shape), self.device)
        noise = initial_noise(shape, seed, self.device)
        out = sample(velocity, noise, ts, method)
        return self.decode_latents(out) if self.vae is not None else out.clamp(-1, 1)

    def _log_samples(self) -> None:
        """Sample the fixed prompts; log a frame grid to TensorBoard and write mp4s."""
        prompts = list(self.hparams.sample_prompts or DEFAULT_PROMPTS)
        was_training = self.training
        self.eval()
        video = self.generate(prompts, use_ema=self.hparams.use_ema_for_val)
        self.train(was_training)
        step = self.global_step
        experiment = getattr(self.logger, "experiment", None)
        if hasattr(experiment, "add_image"):
            experiment.add_image("samples", frame_grid(video.cpu()), step, dataformats="HWC")
        log_dir = getattr(self.logger, "log_dir", None) or self.trainer.default_root_dir
        try:
            from train.data.video_io import write_mp4
        except ImportError:  # the data half is not installed: TensorBoard only
            return
        import os

        out = os.path.join(log_dir, "samples", f"step{step:07d}")
        os.makedirs(out, exist_ok=True)
        fps = self.hparams.sample_fps or 8
        for i, clip in enumerate(to_uint8(video.cpu())):
            write_mp4(os.path.join(out, f"{i:02d}.mp4"), clip.numpy(), fps)

    # ------------------------------------------------------------- optimizer

    def configure_optimizers(self) -> dict[str, Any]:
        """`--model.optimizer` (no decay on biases/norms/tables); linear warmup then cosine."""
        hp = self.hparams
        fsdp = self._trainer is not None and "fsdp" in type(self.trainer.strategy).__name__.lower()
        named = self.dit.named_parameters()
        opt = build_optimizer(hp.optimizer, named, hp.lr, hp.weight_decay, tuple(hp.betas), fsdp)
        total = hp.max_steps or (self.trainer.max_steps if self._trainer else -1)
        warmup = max(hp.warmup_steps, 0)

        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: warmup_cosine(step, warmup, total, hp.min_lr_ratio)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
