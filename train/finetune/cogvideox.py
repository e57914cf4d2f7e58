"""CogVideoX 1.0 / 1.5 (`CogVideoXPipeline`): v-prediction on the DDPM schedule.

Constants, from diffusers' `pipelines/cogvideo/pipeline_cogvideox.py` and its training
example `examples/cogvideo/train_cogvideox_lora.py`:
- captions: T5, 226 tokens, encoded padded and unmasked, and all 226 states (the pad
  tokens' included) go to the transformer without a mask;
- latents: `z * scaling_factor` (vae config: 1.15258426 for 2B, 0.7 for 5B), laid out
  [B, F, C, H, W] for the transformer;
- objective: timesteps uniform over the scheduler's `num_train_timesteps`, x_t from
  `add_noise`, the model's v turned into x0 by `get_velocity(v, x_t, t)`, loss weighted
  by 1 / (1 - alphas_cumprod[t]) against x0 (the example's loss, as is);
- RoPE: `_prepare_rotary_positional_embeddings` of the pipeline when the transformer
  uses rotary embeddings (5B, 1.5).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import ClassVar

from torch import Tensor

from train.finetune.family import Family


class CogVideoX(Family):
    name: ClassVar[str] = "cogvideox"
    pipeline_class: ClassVar[str] = "CogVideoXPipeline"
    transformer_class: ClassVar[str] = "CogVideoXTransformer3DModel"
    vae_class: ClassVar[str] = "AutoencoderKLCogVideoX"
    objective = "v_ddpm"
    text_length: ClassVar[int] = 226
    text_layout = "full"

    def training_scheduler(self):
        from diffusers import CogVideoXDDIMScheduler

        # The folder's DDIM or DPM scheduler share the DDPM betas and SNR shift training uses.
        config = {k: v for k, v in self.scheduler_config.items() if not k.startswith("_")}
        return CogVideoXDDIMScheduler.from_config(config)

    def grid(self) -> tuple[int, int]:
        ft, fs = self.vae_compression()
        return ft, fs * int(self.transformer_config.get("patch_size", 2))

    def check_latent_frames(self, latent_frames: int) -> str | None:
        pt = self.transformer_config.get("patch_size_t")
        if pt and latent_frames % pt:
            # CogVideoX 1.5 patches pairs of latent frames
            ft = self.vae_compression()[0]
            return f"CogVideoX 1.5 needs (frames - 1) / {ft} + 1 divisible by {pt}"
        return None

    def rotary(self, transformer, latents: Tensor):
        if not self.transformer_config.get("use_rotary_positional_embeddings"):
            return None
        from diffusers import CogVideoXPipeline

        _, _, t, h, w = latents.shape
        fs = self.vae_compression()[1]
        # The pipeline's own method reads only these two attributes of `self`.
        owner = SimpleNamespace(vae_scale_factor_spatial=fs, transformer=transformer)
        return CogVideoXPipeline._prepare_rotary_positional_embeddings(
            owner, h * fs, w * fs, t, latents.device
        )

    def predict(self, transformer, latents: Tensor, timestep: Tensor, text: Tensor, text_mask):
        out = transformer(
            hidden_states=latents.transpose(1, 2).to(transformer.dtype),  # [B, F, C, H, W]
            encoder_hidden_states=text.to(transformer.dtype),
            timestep=timestep,
            image_rotary_emb=self.rotary(transformer, latents),
            return_dict=False,
        )[0].float()
        return out.transpose(1, 2)
