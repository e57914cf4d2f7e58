"""`clipmill sample --ckpt` for a fine-tuning checkpoint: the family's own diffusers pipeline.

The checkpoint's trained weights are exported exactly as training exports them (into
`--output`/lora, the diffusers LoRA format) and loaded with `pipe.load_lora_weights`, or
a fully fine-tuned transformer replaces the pipeline's, so the samples are what a user of
the exported weights gets from diffusers for the same seed, steps and guidance.
"""

from __future__ import annotations

import gc
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch


def is_finetune_checkpoint(path: str) -> bool:
    """True for a checkpoint written by `FinetuneModule` (it names its family)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return "family" in ckpt


def generate(
    ckpt: str,
    prompts: list[str],
    out: Path,
    *,
    num_frames: int | None,
    size: tuple[int, int] | None,
    steps: int,
    cfg: float | None,
    seed: int,
    batch_size: int,
    use_ema: bool,
    device: str,
) -> tuple[np.ndarray, float]:
    """uint8 videos [N, T, H, W, 3] (prompt i with seed + i) and the training fps."""
    from train.finetune.module import FinetuneModule

    with warnings.catch_warnings():
        # the frozen base is not in the checkpoint by design (on_load_checkpoint checks that
        # every trained weight is); Lightning would list every base key it did not find
        warnings.filterwarnings("ignore", message=".*not in the checkpoint")
        module = FinetuneModule.load_from_checkpoint(ckpt, map_location="cpu", strict=False)
    data = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True).get(
        "datamodule_hyper_parameters", {}
    )
    frames = num_frames or min(data.get("frame_buckets") or [17])
    height, width = size or tuple((data.get("size_buckets") or [(480, 832)])[0])
    family, full = module.family, module.hparams.training == "full"
    exported = module.export(out, use_ema=use_ema)
    transformer = module.transformer if full else None
    del module
    gc.collect()
    pipe = family.pipeline(**({"transformer": transformer} if full else {}))
    if not full:
        pipe.load_lora_weights(str(exported.parent))
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    videos = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        gens = [torch.Generator(device).manual_seed(seed + start + i) for i in range(len(chunk))]
        kwargs: dict[str, Any] = dict(
            prompt=chunk, num_frames=frames, height=height, width=width,
            num_inference_steps=steps, generator=gens, output_type="np",
        )  # fmt: skip
        if cfg is not None:
            kwargs["guidance_scale"] = cfg
        videos.append(np.asarray(pipe(**kwargs).frames))
    video = np.concatenate(videos)
    uint8 = (np.clip(video, 0.0, 1.0) * 255).round().astype(np.uint8)
    return uint8, float(data.get("fps") or 16.0)
