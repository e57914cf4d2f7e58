"""`Family`: what the trainer needs to know of one pretrained diffusers video family.

One subclass per family (`wan.py`, `ltx.py`, `cogvideox.py`), as finetrainers keeps one
module per model: the family's pipeline and component classes, its objective, how its
pipeline hands caption states to the transformer, and how the transformer is called.
The trainer (`train.finetune.module`) only talks to this interface.

Components are loaded from a local `save_pretrained` folder only (`local_files_only`):
nothing is fetched. Class names are read from `model_index.json` but only the names the
family expects are ever imported, so a folder cannot make us load arbitrary code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

FLAG = "--model.pretrained"

# How a family's pipeline hands caption token states to its transformer:
#   zero_pad  states of the real tokens, then zeros up to text_length (Wan);
#   mask      all text_length states and an attention mask over the real tokens (LTX);
#   full      all text_length states, pad tokens' included, no mask (CogVideoX).
TextLayout = Literal["zero_pad", "mask", "full"]


def read_index(folder: str | Path) -> dict[str, Any]:
    """`model_index.json` of a diffusers pipeline folder; errors name --model.pretrained."""
    path = Path(folder).expanduser() / "model_index.json"
    if not path.is_file():
        raise ValueError(
            f"{FLAG}: {folder} is not a diffusers pipeline folder (no model_index.json); "
            "download one first, e.g. `huggingface-cli download Wan-AI/Wan2.1-T2V-1.3B-Diffusers "
            "--local-dir DIR`"
        )
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{FLAG}: {path} is not valid JSON ({err})") from err
    if not isinstance(index, dict):
        raise ValueError(f"{FLAG}: {path} is not a JSON object")
    return index


def cast_keeping_fp32(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """`model.to(dtype)`, except the modules the model asks to keep in float32
    (`_keep_in_fp32_modules`: Wan's norms, time embedder, RoPE), as diffusers' loader does."""
    if all(p.dtype == dtype for p in model.parameters()):
        # Nothing to cast (float32 loads as float32); diffusers' `to(dtype)` would log "modules
        # ... should be kept in float32" to stderr on every run, even before a config error.
        return model
    model = model.to(dtype)
    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    if dtype != torch.float32 and keep:
        for name, module in model.named_modules():
            if any(part in keep for part in name.split(".")):
                module.float()
    return model


class Family:
    """One pretrained family; instances hold the folder and its scheduler config."""

    name: ClassVar[str]
    pipeline_class: ClassVar[str]
    transformer_class: ClassVar[str]
    vae_class: ClassVar[str]
    text_classes: ClassVar[tuple[str, ...]] = ("T5EncoderModel", "UMT5EncoderModel")
    objective: ClassVar[Literal["flow", "v_ddpm"]] = "flow"
    text_length: ClassVar[int]
    text_layout: ClassVar[TextLayout]
    # peft target modules: attention projections (and the FFN's with --model.lora.ffn true)
    attention_targets: ClassVar[tuple[str, ...]] = ("to_q", "to_k", "to_v", "to_out.0")
    ffn_targets: ClassVar[tuple[str, ...]] = ("ff.net.0.proj", "ff.net.2")

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser()
        self.index = read_index(self.folder)
        for part, expected in (("transformer", self.transformer_class), ("vae", self.vae_class)):
            got = (self.index.get(part) or [None, None])[1]
            if got != expected:
                raise ValueError(
                    f"{FLAG}: {self.folder}'s {part} is {got!r}; a {self.name} pipeline has "
                    f"{expected}"
                )
        self.scheduler_config = self._json("scheduler/scheduler_config.json")
        self.vae_config = self._json("vae/config.json")
        self.transformer_config = self._json("transformer/config.json")

    def _json(self, name: str) -> dict[str, Any]:
        path = self.folder / name
        if not path.is_file():
            raise ValueError(f"{FLAG}: {self.folder} has no {name}")
        return json.loads(path.read_text(encoding="utf-8"))

    # ------------------------------------------------------------------ components

    def load_transformer(self, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
        import diffusers

        cls = getattr(diffusers, self.transformer_class)
        model = cls.from_pretrained(
            str(self.folder), subfolder="transformer", local_files_only=True
        )
        return cast_keeping_fp32(model, dtype)

    def load_vae(self, dtype: torch.dtype = torch.float32) -> Any:
        """The VAE behind `LatentCodec` (frozen, eval), normalising as the family's pipeline."""
        from train.autoencoder.io import load_autoencoder

        return load_autoencoder(f"diffusers:{self.folder / 'vae'}").to(dtype)

    def load_text(self, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
        """(tokenizer, text encoder) frozen in eval mode, its weights in `dtype`."""
        import transformers

        name = (self.index.get("text_encoder") or [None, None])[1]
        if name not in self.text_classes:
            raise ValueError(
                f"{FLAG}: {self.folder}'s text_encoder is {name!r}; expected one of "
                f"{self.text_classes}"
            )
        encoder = getattr(transformers, name).from_pretrained(
            str(self.folder / "text_encoder"), local_files_only=True
        )
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(self.folder / "tokenizer"), local_files_only=True
        )
        return tokenizer, encoder.to(dtype).eval().requires_grad_(False)

    def pipeline(self, dtype: torch.dtype = torch.float32, **components: Any) -> Any:
        """The family's diffusers pipeline from the folder (for sampling)."""
        import diffusers

        cls = getattr(diffusers, self.pipeline_class)
        pipe = cls.from_pretrained(str(self.folder), local_files_only=True, **components)
        return pipe if dtype == torch.float32 else pipe.to(dtype)

    def training_scheduler(self) -> Any:
        """The noise schedule training needs (DDPM families); flow families need none."""
        return None

    # ------------------------------------------------------------------ geometry

    def vae_compression(self) -> tuple[int, int]:
        """(f_t, f_s) of the folder's VAE, read from its config (the VAE is not loaded)."""
        from train.autoencoder.diffusers_vae import compression

        return compression(self.vae_class, self.vae_config)

    def grid(self) -> tuple[int, int]:
        """(frames step f_t, size step): frames must be 1 + k*f_t, sizes multiples of the step."""
        raise NotImplementedError

    def check_latent_frames(self, latent_frames: int) -> str | None:
        """Why a latent frame count is unusable (None when fine); CogVideoX 1.5 needs it."""
        return None

    # ------------------------------------------------------------------ text

    def encode_text(
        self, tokenizer: Any, encoder: Any, captions: list[str]
    ) -> tuple[Tensor, Tensor]:
        """Token states [B, text_length, D] as the pipeline makes them, and the mask of the
        states the transformer attends to (a prefix: the real tokens, or all for `full`)."""
        tokens = tokenizer(
            list(captions),
            padding="max_length",
            max_length=self.text_length,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        ids, mask = tokens.input_ids.to(encoder.device), tokens.attention_mask.to(encoder.device)
        # Wan passes the mask to UMT5; LTX and CogVideoX encode the padded ids unmasked
        # (pipeline_wan.py / pipeline_ltx.py / pipeline_cogvideox.py `_get_t5_prompt_embeds`).
        states = encoder(ids, mask if self.text_layout == "zero_pad" else None)[0]
        if self.text_layout == "full":
            mask = torch.ones_like(mask)
        return states.float(), mask.bool()

    def text_inputs(self, states: Tensor, mask: Tensor) -> tuple[Tensor, Tensor | None]:
        """Batch of prefix states (zero padded, any length) -> (encoder_hidden_states, mask)."""
        b, length, dim = states.shape
        full = states.new_zeros(b, self.text_length, dim)
        n = min(length, self.text_length)
        full[:, :n] = states[:, :n] * mask[:, :n, None]
        if self.text_layout == "mask":
            attn = torch.zeros(b, self.text_length, dtype=torch.bool, device=states.device)
            attn[:, :n] = mask[:, :n]
            return full, attn
        return full, None

    # ------------------------------------------------------------------ denoiser

    def predict(
        self,
        transformer: torch.nn.Module,
        latents: Tensor,
        timestep: Tensor,
        text: Tensor,
        text_mask: Tensor | None,
    ) -> Tensor:
        """The transformer's output for latents [B, C, T, H, W], in the same layout."""
        raise NotImplementedError

    def flow_shift(self, latents_shape: tuple[int, ...]) -> float:
        """The time shift s of sigma' = s*sigma / (1 + (s-1)*sigma) (flow families)."""
        return 1.0

    def describe(self) -> dict[str, Any]:
        return {
            "family": self.name,
            "pipeline": self.pipeline_class,
            "transformer": self.transformer_class,
            "vae": self.vae_class,
            "text_encoder": (self.index.get("text_encoder") or [None, None])[1],
            "objective": self.objective,
            "text_length": self.text_length,
        }
