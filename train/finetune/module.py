"""`FinetuneModule`: LoRA or full fine-tuning of a pretrained diffusers video family.

`--model.pretrained DIR` names a local diffusers pipeline folder; the family (Wan,
LTX-Video, CogVideoX) comes from its `model_index.json` and brings its objective, text
layout and transformer call (`train.finetune.family`). The text encoder and the VAE stay
frozen and are loaded only when a batch holds pixels: training from a latent cache never
loads them, so they never take GPU memory there.

Checkpoints hold only what trains (the adapter, or the transformer when fully
fine-tuned) and the optimiser, not the frozen base; every checkpoint and the end of
training also export `<default_root_dir>/lora/` (diffusers LoRA format) or
`<default_root_dir>/transformer/` (save_pretrained), which other tools load directly.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from torch import Tensor

from train.finetune.lora import LoraSpec, add_lora, export_full, export_lora, lora_state_dict
from train.finetune.objective import ObjectiveConfig, flow_loss, vpred_loss
from train.finetune.registry import load_family
from train.models.ema import warmed_decay
from train.schedule import warmup_cosine

log = logging.getLogger(__name__)


def _spec(value: Any, cls: type) -> Any:
    # hparams hold plain dicts (a checkpoint must load with weights_only=True)
    return value if isinstance(value, cls) else cls(**(value or {}))


class FinetuneModule(L.LightningModule):
    """Fine-tune a pretrained text-to-video transformer (`--model.*`).

    Args:
        pretrained: local diffusers pipeline folder (model_index.json, transformer/, vae/,
            text_encoder/, tokenizer/, scheduler/). Nothing is downloaded.
        training: "lora" (an adapter on the frozen transformer) or "full".
        lora: the adapter (`--model.lora.rank/alpha/dropout/target_modules/ffn`).
        objective: timestep sampling and shift of the flow families.
        lr: peak learning rate (LoRA: ~1e-4; full: ~1e-5).
        weight_decay: AdamW weight decay.
        betas: AdamW betas.
        warmup_steps: linear warmup, then cosine to min_lr_ratio at max_steps.
        min_lr_ratio: the final learning rate as a fraction of lr.
        max_steps: cosine length (None: the trainer's max_steps).
        gradient_checkpointing: recompute activations in the backward pass (less memory).
        base_dtype: dtype of the frozen weights with LoRA; "auto": bfloat16 on a GPU that
            supports it, else float32. Full fine-tuning keeps float32 master weights.
        ema_decay: keep an EMA of the trained weights and export it (None: off).
    """

    def __init__(
        self,
        pretrained: str,
        training: Literal["lora", "full"] = "lora",
        lora: LoraSpec = LoraSpec(),
        objective: ObjectiveConfig = ObjectiveConfig(),
        lr: float = 1e-4,
        weight_decay: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        warmup_steps: int = 50,
        min_lr_ratio: float = 0.1,
        max_steps: int | None = None,
        gradient_checkpointing: bool = False,
        base_dtype: Literal["auto", "float32", "bfloat16"] = "auto",
        ema_decay: float | None = None,
    ) -> None:
        super().__init__()
        if training not in ("lora", "full"):
            raise ValueError(f"--model.training must be lora or full, got {training!r}")
        if ema_decay is not None and not 0 <= ema_decay < 1:
            raise ValueError(f"--model.ema_decay must be in [0, 1), got {ema_decay}")
        lora, objective = _spec(lora, LoraSpec), _spec(objective, ObjectiveConfig)
        self.save_hyperparameters(
            {
                **{k: v for k, v in locals().items() if k not in ("self", "__class__")},
                "lora": dataclasses.asdict(lora),
                "objective": dataclasses.asdict(objective),
            }
        )
        self.family = load_family(pretrained)
        self.lora_spec, self.objective_cfg = lora, objective
        self.transformer = self.family.load_transformer(self._base_dtype())
        if training == "lora":
            self.lora_targets = add_lora(self.transformer, lora, self.family)
        else:
            self.transformer.float().requires_grad_(True)
        if gradient_checkpointing:
            self.transformer.enable_gradient_checkpointing()
        self.train_scheduler = self.family.training_scheduler()
        self.strict_loading = False  # checkpoints hold only the trained weights
        self._frozen: dict[str, Any] = {}  # text encoder and VAE, loaded on first pixel batch
        self._ema_names = [n for n, p in self.transformer.named_parameters() if p.requires_grad]
        if ema_decay is not None:
            for i, name in enumerate(self._ema_names):
                param = self.transformer.get_parameter(name)
                self.register_buffer(f"ema_{i}", param.detach().float().clone())

    def _frozen_dtype(self) -> torch.dtype:
        """`--model.base_dtype` resolved: "auto" is bfloat16 on a GPU that supports it."""
        choice = self.hparams.base_dtype
        if choice == "auto":
            gpu_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
            return torch.bfloat16 if gpu_bf16 else torch.float32
        return torch.bfloat16 if choice == "bfloat16" else torch.float32

    def _base_dtype(self) -> torch.dtype:
        # full fine-tuning keeps float32 master weights
        return torch.float32 if self.hparams.training == "full" else self._frozen_dtype()

    # ------------------------------------------------------------------ setup

    def setup(self, stage: str) -> None:
        """Refuse, before any step, buckets off the family's grid or another family's cache."""
        dm = getattr(self.trainer, "datamodule", None) if self._trainer else None
        if dm is None:
            return
        if getattr(dm, "latent_header", None):
            from train.finetune.cache import check_family_cache

            check_family_cache(dm.latent_header, self.family, "--data.cache")
        elif hasattr(dm, "check_family"):
            dm.check_family(self.family)
        log.info("fine-tuning %s", self.family.describe())

    def on_fit_start(self) -> None:
        # from_pretrained leaves the transformer in eval mode; LoRA dropout needs train mode
        self.transformer.train()

    def frozen(self) -> dict[str, Any]:
        """The tokenizer, text encoder and VAE on this device (pixel batches only)."""
        if not self._frozen:
            # the text encoder in bf16 on a bf16 GPU (UMT5-XXL is 22 GB in fp32); the VAE fp32
            tokenizer, encoder = self.family.load_text(self._frozen_dtype())
            vae = self.family.load_vae()
            self._frozen = {"tokenizer": tokenizer, "text": encoder, "vae": vae}
        for name in ("text", "vae"):
            self._frozen[name].to(self.device)
        return self._frozen

    # ------------------------------------------------------------------ training

    def inputs(
        self, batch: dict[str, Any], generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """(normalised latents [B, C, T, H, W], text states, text mask) in the family's form.

        The VAE posterior is sampled with `generator` (the loss's), so that a pixel batch's
        loss is reproducible from the generator alone, as a cached batch's is."""
        if "text_states" in batch:  # from the latent cache: already the family's latents
            states, mask = batch["text_states"], batch["text_mask"]
            return batch["video"].float(), *self.family.text_inputs(states, mask)
        parts = self.frozen()
        with torch.no_grad():
            states, mask = self.family.encode_text(
                parts["tokenizer"], parts["text"], batch["caption"]
            )
            mean, logvar = parts["vae"].encode(batch["video"].float())
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            z = mean + torch.exp(0.5 * logvar) * eps
            vae = parts["vae"]
            z = (z - vae.shift_factor) * vae.scaling_factor
        return z, *self.family.text_inputs(states, mask)

    def loss(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> Tensor:
        """Per-sample loss `[B]` of the family's objective."""
        x0, text, mask = self.inputs(batch, generator)
        if self.family.objective == "flow":
            return flow_loss(
                self.family, self.transformer, x0, text, mask, self.objective_cfg, generator
            )
        return vpred_loss(
            self.family, self.transformer, x0, text, mask, self.train_scheduler, generator
        )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        per_sample = self.loss(batch)
        weight = batch.get("weight")
        if weight is None:
            loss = per_sample.mean()
        else:
            w = weight.to(per_sample)
            loss = (per_sample * w).sum() / w.sum().clamp_min(1e-8)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(per_sample))
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        # The EMA follows each optimizer step here, not in on_train_batch_end: Lightning runs
        # the callbacks' on_train_batch_end (ModelCheckpoint's every_n_train_steps save)
        # before the module's, so a checkpoint there held the step's weights with the
        # previous step's EMA (and last.ckpt's export disagreed with <root>/lora); and with
        # gradient accumulation the EMA moved once per micro-batch. As VideoDiffusion does.
        super().optimizer_step(*args, **kwargs)
        self._update_ema()

    def _update_ema(self) -> None:
        decay = self.hparams.ema_decay
        if decay is None:
            return
        decay = warmed_decay(decay, self.global_step)  # global_step: updates before this one
        with torch.no_grad():
            for i, name in enumerate(self._ema_names):
                shadow = getattr(self, f"ema_{i}")
                shadow.lerp_(self.transformer.get_parameter(name).float(), 1 - decay)

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        params = [p for p in self.transformer.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(
            params, lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay
        )
        total = hp.max_steps or (self.trainer.max_steps if self._trainer else -1)
        warmup = max(hp.warmup_steps, 0)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: warmup_cosine(step, warmup, total, hp.min_lr_ratio)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------ checkpoints, export

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Loading is not strict (the frozen base is not saved), so check what must be there.
        missing = {f"transformer.{n}" for n in self._ema_names} - set(checkpoint["state_dict"])
        if missing:
            raise ValueError(
                f"--ckpt_path: the checkpoint lacks {len(missing)} of the weights this run trains "
                f"(e.g. {min(missing)}); was it made with other --model.training/--model.lora?"
            )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        trained = {f"transformer.{n}" for n in self._ema_names}
        state = checkpoint["state_dict"]
        checkpoint["state_dict"] = {
            k: v for k, v in state.items() if k in trained or k.startswith("ema_")
        }
        checkpoint["family"] = self.family.describe()
        self.export()

    def on_train_end(self) -> None:
        self.export()

    def trained_weights(self, use_ema: bool = True) -> dict[str, Tensor]:
        """name -> tensor of what trains (EMA values when kept and asked for)."""
        out = {}
        for i, name in enumerate(self._ema_names):
            ema = getattr(self, f"ema_{i}", None) if use_ema else None
            out[name] = (ema if ema is not None else self.transformer.get_parameter(name)).detach()
        return out

    def export(self, folder: str | Path | None = None, use_ema: bool = True) -> Path | None:
        """Write the LoRA (or transformer) where other tools load it; rank 0 only."""
        if self._trainer is not None and self.trainer.global_rank != 0:
            return None
        if folder is None:
            if self._trainer is None:
                return None
            folder = Path(self.trainer.default_root_dir)
        with _swapped(self.transformer, self.trained_weights(use_ema)):
            if self.hparams.training == "full":
                return export_full(self.transformer, folder)
            return export_lora(
                self.family, lora_state_dict(self.transformer), Path(folder) / "lora"
            )


class _swapped:
    """Temporarily put `weights` (e.g. the EMA) into the transformer's parameters."""

    def __init__(self, module: torch.nn.Module, weights: dict[str, Tensor]) -> None:
        self.module, self.weights, self.saved = module, weights, {}

    def __enter__(self) -> None:
        for name, value in self.weights.items():
            param = self.module.get_parameter(name)
            if value is not param:
                self.saved[name] = param.detach().clone()
                param.data.copy_(value)

    def __exit__(self, *exc: Any) -> None:
        for name, value in self.saved.items():
            self.module.get_parameter(name).data.copy_(value)
