"""Wan 2.1 / 2.2 text-to-video (`WanPipeline`): flow matching with a fixed time shift.

Constants, from diffusers' `pipelines/wan/pipeline_wan.py` and the Wan-AI diffusers folders:
- captions: UMT5, 512 tokens (`WanPipeline.__call__(max_sequence_length=512)`), the real
  tokens' states then zeros (`_get_t5_prompt_embeds`);
- latents: `(z - latents_mean) / latents_std` per channel from the VAE config (the
  pipeline's decode undoes exactly that), folded into `DiffusersAutoencoder`;
- objective: rectified flow, velocity target noise - x0, timestep = 1000 * sigma;
  sigma shifted by the folder's `flow_shift` (scheduler_config.json of Wan2.1-T2V: 3.0
  for 480p, 5.0 for 720p; musubi-tuner's `--discrete_flow_shift 3.0` for Wan T2V).
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from train.finetune.family import FLAG, Family

DEFAULT_SHIFT = 3.0  # Wan2.1-T2V-1.3B-Diffusers scheduler_config.json `flow_shift`


class Wan(Family):
    name: ClassVar[str] = "wan"
    pipeline_class: ClassVar[str] = "WanPipeline"
    transformer_class: ClassVar[str] = "WanTransformer3DModel"
    vae_class: ClassVar[str] = "AutoencoderKLWan"
    text_length: ClassVar[int] = 512
    text_layout = "zero_pad"

    def __init__(self, folder) -> None:
        super().__init__(folder)
        if self.index.get("transformer_2") and self.index["transformer_2"][0]:
            # Wan 2.2 A14B: two experts split by timestep; each needs its own run.
            raise ValueError(
                f"{FLAG}: {self.folder} is a two-expert Wan 2.2 (transformer_2); clipmill "
                "fine-tunes single-transformer Wan (2.1, 2.2 TI2V-5B)"
            )

    def encode_text(self, tokenizer, encoder, captions: list[str]) -> tuple[Tensor, Tensor]:
        # WanPipeline cleans prompts first (ftfy when installed, HTML entities, whitespace):
        # train on what sampling will feed.
        from diffusers.pipelines.wan.pipeline_wan import prompt_clean

        return super().encode_text(tokenizer, encoder, [prompt_clean(c) for c in captions])

    def grid(self) -> tuple[int, int]:
        temporal, spatial = self.vae_compression()
        patch = self.transformer_config.get("patch_size", [1, 2, 2])
        return temporal * patch[0], spatial * patch[1]

    def flow_shift(self, latents_shape: tuple[int, ...]) -> float:
        cfg = self.scheduler_config
        return float(cfg.get("flow_shift") or cfg.get("shift") or DEFAULT_SHIFT)

    def predict(self, transformer, latents: Tensor, timestep: Tensor, text: Tensor, text_mask):
        return transformer(
            hidden_states=latents.to(transformer.dtype),
            timestep=timestep,
            encoder_hidden_states=text.to(transformer.dtype),
            return_dict=False,
        )[0].float()
