"""Source `vlm`: a Hugging Face vision-language model captions each clip from a few frames.

Any model that `AutoModelForImageTextToText` loads works (Qwen2-VL / Qwen2.5-VL,
LLaVA, LLaVA-OneVision, Idefics3 / SmolVLM, …), from a local folder or the hub.
The prompt goes through the processor's chat template when it has one, so each
model sees the image/video placeholders it was trained with. Generation is
greedy (the same clip always gets the same caption) and batched, with left
padding, as decoder-only models need.

A caption's score is the model's own confidence: the geometric mean of the
probabilities of the tokens it generated (replaced by the CLIP score when
CLIP scores are on).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.captions.text import Candidate, clean_text, shorten
from pipeline.config.captions import VlmConfig

MODEL_CLASSES = ("AutoModelForImageTextToText", "AutoModelForVision2Seq", "AutoModelForCausalLM")


def _device(name: str) -> str:
    import torch

    if name != "auto":
        return name
    return "cuda" if torch.cuda.is_available() else "cpu"


def _dtype(name: str, device: str) -> Any:
    import torch

    if name != "auto":
        return getattr(torch, name)
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_model(model: str, dtype: Any) -> Any:
    """The model through the first Auto class that knows its config."""
    import transformers

    errors = []
    for name in MODEL_CLASSES:
        cls = getattr(transformers, name, None)
        if cls is None:
            continue
        try:
            return cls.from_pretrained(model, dtype=dtype)
        except ValueError as exc:  # "Unrecognized configuration class … for this kind of AutoModel"
            errors.append(f"{name}: {str(exc).splitlines()[0]}")
    raise RuntimeError(f"--caption.vlm.model {model}: no Auto class loads it ({errors})")


class VlmCaptioner:
    """Callable: clips (each a list of RGB frames) → one Candidate or None per clip."""

    def __init__(self, cfg: VlmConfig, max_chars: int = 400) -> None:
        from transformers import AutoProcessor

        self.cfg, self.max_chars = cfg, max_chars
        self.device = _device(cfg.device)
        self.processor = AutoProcessor.from_pretrained(cfg.model)
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer = tokenizer
        model = load_model(cfg.model, _dtype(cfg.dtype, self.device))
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.dtype = next(self.model.parameters()).dtype
        self._prompts: dict[int, str] = {}

    def _to_device(self, value: Any) -> Any:
        import torch

        if not isinstance(value, torch.Tensor):
            return value
        if value.is_floating_point():  # pixel values follow the model's dtype
            return value.to(self.device, dtype=self.dtype)
        return value.to(self.device)

    def prompt(self, n_frames: int) -> str:
        """The text input for a clip of `n_frames` frames (cached per count)."""
        if n_frames not in self._prompts:
            video = self.cfg.input == "video"
            visual = [{"type": "video"}] if video else [{"type": "image"}] * n_frames
            content = [*visual, {"type": "text", "text": self.cfg.prompt}]
            if getattr(self.processor, "chat_template", None):
                messages = [{"role": "user", "content": content}]
                text = self.processor.apply_chat_template(messages, add_generation_prompt=True)
            else:  # no template: the bare placeholder tokens, then the prompt
                token = getattr(self.processor, "video_token" if video else "image_token", "")
                text = (token or "") * (1 if video else n_frames) + self.cfg.prompt
            self._prompts[n_frames] = text
        return self._prompts[n_frames]

    def __call__(self, clips: Sequence[list[np.ndarray]]) -> list[Candidate | None]:
        out: list[Candidate | None] = []
        size = self.cfg.batch_size
        for i in range(0, len(clips), size):
            out += self._batch(list(clips[i : i + size]))
        return out

    def _batch(self, clips: list[list[np.ndarray]]) -> list[Candidate | None]:
        import torch

        results: list[Candidate | None] = [None] * len(clips)
        todo = [i for i, frames in enumerate(clips) if frames]
        if not todo:
            return results
        texts = [self.prompt(len(clips[i])) for i in todo]
        if self.cfg.input == "video":
            visual = {"videos": [np.stack(clips[i]) for i in todo], "do_sample_frames": False}
        else:
            visual = {"images": [clips[i] for i in todo]}
        inputs = self.processor(text=texts, return_tensors="pt", padding=True, **visual)
        inputs = {k: self._to_device(v) for k, v in inputs.items()}
        with torch.inference_mode():
            gen = self.model.generate(
                **inputs,
                max_new_tokens=self.cfg.max_new_tokens,
                do_sample=False,
                output_scores=True,
                return_dict_in_generate=True,
            )
            # The last len(scores) tokens are the new ones, for decoder-only and seq2seq alike.
            new = gen.sequences[:, -len(gen.scores) :]
            logp = self.model.compute_transition_scores(
                gen.sequences, gen.scores, normalize_logits=True
            )
        special = torch.tensor(self.tokenizer.all_special_ids, device=new.device)
        real = ~torch.isin(new, special)
        for row, i in enumerate(todo):
            text = clean_text(self.tokenizer.decode(new[row], skip_special_tokens=True))
            if not text:
                continue
            mean = float(logp[row][real[row]].float().mean()) if real[row].any() else -math.inf
            results[i] = Candidate(shorten(text, self.max_chars), "vlm", math.exp(mean))
        return results
