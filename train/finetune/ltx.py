"""LTX-Video (`LTXPipeline`): flow matching with a resolution-dependent shift, packed tokens.

Constants, from diffusers' `pipelines/ltx/pipeline_ltx.py` and Lightricks/LTX-Video:
- captions: T5, 128 tokens (`max_sequence_length=128`), encoded padded and unmasked,
  the transformer masking the pad tokens (`encoder_attention_mask`);
- latents: `(z - latents_mean) * scaling_factor / latents_std` (`_normalize_latents`;
  mean/std are VAE buffers), then packed to [B, T*H*W, C] (`_pack_latents`, patch 1x1x1);
- objective: rectified flow, velocity target noise - x0, timestep = 1000 * sigma, sigma
  shifted by exp(mu), mu = `calculate_shift(tokens, base_image_seq_len, max_image_seq_len,
  base_shift, max_shift)` from the scheduler config (0.95 at 1024 tokens .. 2.05 at 4096);
- RoPE scale (f_t / frame_rate, f_s, f_s) at the pipeline's default frame_rate 25.
"""

from __future__ import annotations

import math
from typing import ClassVar

from torch import Tensor

from train.finetune.family import Family

FRAME_RATE = 25  # LTXPipeline.__call__(frame_rate=25): the RoPE scale sampling uses too


class LTXVideo(Family):
    name: ClassVar[str] = "ltx"
    pipeline_class: ClassVar[str] = "LTXPipeline"
    transformer_class: ClassVar[str] = "LTXVideoTransformer3DModel"
    vae_class: ClassVar[str] = "AutoencoderKLLTXVideo"
    text_length: ClassVar[int] = 128
    text_layout = "mask"

    def _patch(self) -> tuple[int, int]:
        cfg = self.transformer_config
        return int(cfg.get("patch_size_t", 1) or 1), int(cfg.get("patch_size", 1) or 1)

    def grid(self) -> tuple[int, int]:
        (ft, fs), (pt, p) = self.vae_compression(), self._patch()
        return ft * pt, fs * p

    def flow_shift(self, latents_shape: tuple[int, ...]) -> float:
        cfg = self.scheduler_config
        if not cfg.get("use_dynamic_shifting", False):
            return float(cfg.get("shift", 1.0))
        _, _, t, h, w = latents_shape
        tokens = t * h * w  # LTXPipeline counts latent positions before patching
        base, top = cfg.get("base_image_seq_len", 256), cfg.get("max_image_seq_len", 4096)
        lo, hi = cfg.get("base_shift", 0.5), cfg.get("max_shift", 1.15)
        mu = tokens * (hi - lo) / (top - base) + lo - (hi - lo) / (top - base) * base
        return math.exp(mu)

    def predict(self, transformer, latents: Tensor, timestep: Tensor, text: Tensor, text_mask):
        b, c, t, h, w = latents.shape
        pt, p = self._patch()
        tokens = latents.reshape(b, c, t // pt, pt, h // p, p, w // p, p)
        tokens = tokens.permute(0, 2, 4, 6, 1, 3, 5, 7).flatten(4, 7).flatten(1, 3)
        ft, fs = self.vae_compression()
        out = transformer(
            hidden_states=tokens.to(transformer.dtype),
            encoder_hidden_states=text.to(transformer.dtype),
            timestep=timestep,
            encoder_attention_mask=text_mask,
            num_frames=t // pt,
            height=h // p,
            width=w // p,
            rope_interpolation_scale=(ft / FRAME_RATE, fs, fs),
            return_dict=False,
        )[0].float()
        # unpack (`LTXPipeline._unpack_latents`)
        out = out.reshape(b, t // pt, h // p, w // p, c, pt, p, p)
        return out.permute(0, 4, 1, 5, 2, 6, 3, 7).reshape(b, c, t, h, w)
