"""LoRA through peft, and the two export formats users load elsewhere.

- LoRA: `transformer.add_adapter(LoraConfig(...))` (diffusers' PEFT integration, as its
  training examples do); only the adapter's weights train, kept in float32 even when the
  frozen base is bfloat16 (`cast_training_params` in diffusers' examples).
- Export: `<Pipeline>.save_lora_weights(dir, transformer_lora_layers=...)` writes
  `dir/pytorch_lora_weights.safetensors` in the diffusers LoRA format, which
  `pipe.load_lora_weights(dir)` loads and ComfyUI-style tools convert from; a full
  fine-tune writes `dir/transformer/` with `save_pretrained`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

LORA_FILE = "pytorch_lora_weights.safetensors"


@dataclass(frozen=True)
class LoraSpec:
    """The adapter. Every field is a `--model.lora.<field>` flag."""

    rank: int = 32
    alpha: float = 32.0
    """scale = alpha / rank (alpha = rank: scale 1)"""
    dropout: float = 0.0
    target_modules: tuple[str, ...] | None = None
    """module names to adapt; None: the family's attention projections"""
    ffn: bool = False
    """also adapt the feed-forward projections"""

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"--model.lora.rank must be >= 1, got {self.rank}")
        if self.alpha <= 0:
            raise ValueError(f"--model.lora.alpha must be > 0, got {self.alpha}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"--model.lora.dropout must be in [0, 1), got {self.dropout}")
        if self.target_modules is not None:
            object.__setattr__(self, "target_modules", tuple(self.target_modules))
            if not self.target_modules:
                raise ValueError("--model.lora.target_modules must name at least one module")


def add_lora(transformer: torch.nn.Module, spec: LoraSpec, family: Any) -> list[str]:
    """Freeze `transformer`, add the adapter, make its weights float32; returns the targets."""
    from peft import LoraConfig

    targets = list(spec.target_modules or family.attention_targets)
    if spec.ffn:
        targets += [t for t in family.ffn_targets if t not in targets]
    transformer.requires_grad_(False)
    config = LoraConfig(
        r=spec.rank,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=targets,
        init_lora_weights=True,
    )
    try:
        transformer.add_adapter(config)
    except ValueError as err:  # peft: "Target modules {...} not found in the base model"
        raise ValueError(f"--model.lora.target_modules: {err}") from err
    for p in transformer.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    return targets


def lora_state_dict(transformer: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The adapter's weights, peft-named (what `save_lora_weights` takes)."""
    from peft.utils import get_peft_model_state_dict

    return {
        k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(transformer).items()
    }


def export_lora(family: Any, weights: dict[str, torch.Tensor], folder: str | Path) -> Path:
    """Write `folder/pytorch_lora_weights.safetensors` for `pipe.load_lora_weights(folder)`."""
    import diffusers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pipeline = getattr(diffusers, family.pipeline_class)
    pipeline.save_lora_weights(
        str(folder), transformer_lora_layers=weights, safe_serialization=True
    )
    return folder / LORA_FILE


def export_full(transformer: torch.nn.Module, folder: str | Path) -> Path:
    """Write `folder/transformer/` (config + safetensors) for `from_pretrained`."""
    out = Path(folder) / "transformer"
    transformer.save_pretrained(str(out), safe_serialization=True)
    return out
