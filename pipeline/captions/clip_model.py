"""The CLIP model the caption stage scores with: the `--clip` section's model, text tower first.

It is loaded by `pipeline.stages.clip_embed.load_clip`, so caption scores live in the same
space as the image embeddings the CLIP stage stores (`{clip_id}.emb.npy`, float16),
and the caption stage reads those instead of decoding again. Only when a clip has no
stored embedding (CLIP stage off) are its frames embedded here, the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.stages.clip_embed import EMB_SUFFIX, load_clip, resolve_device, torch_threads
from pipeline.stages.frames import load_frames


def unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


def encode_text(model: Any, tokenizer: Any, texts: list[str], device: str = "cpu") -> np.ndarray:
    """Unit-norm text embeddings of an open_clip model: [len(texts), D] float32."""
    import torch

    with torch.inference_mode():
        emb = model.encode_text(tokenizer(texts).to(device)).float().cpu().numpy()
    return unit(emb)


class ClipModel:
    """An open_clip model, frozen, giving unit-norm numpy embeddings of texts and clips."""

    def __init__(self, clip_cfg: Any) -> None:
        """`clip_cfg`: a `pipeline.config.scores.ClipConfig` (model, pretrained, device, …)."""
        self.cfg = clip_cfg
        self.device = resolve_device(clip_cfg)
        with torch_threads(clip_cfg.threads):
            self.model, self.preprocess, self.tokenizer = load_clip(clip_cfg, self.device)
        self.model.requires_grad_(False)

    def encode_text(self, texts: list[str]) -> np.ndarray:
        with torch_threads(self.cfg.threads):
            return encode_text(self.model, self.tokenizer, texts, self.device)

    def image_embedding(self, clip: dict, stage_dir: str | None) -> np.ndarray:
        """The CLIP stage's stored embedding, else the mean of `--clip.frames` frame
        embeddings (each normalised, as the CLIP stage does). Raises when neither exists."""
        if not stage_dir:
            raise FileNotFoundError("no staged clip to embed (caption stage before transcode?)")
        folder = Path(stage_dir)
        stored = folder / f"{clip['clip_id']}{EMB_SUFFIX}"
        if stored.is_file():
            emb = np.load(stored).astype(np.float32)
            return unit(emb.mean(axis=0) if emb.ndim > 1 else emb)
        frames = load_frames(folder, clip["clip_id"], (self.cfg.frames,)).pick(self.cfg.frames)
        return unit(self._encode_images(frames).mean(axis=0))

    def _encode_images(self, frames: np.ndarray) -> np.ndarray:
        import torch
        from PIL import Image

        batch = torch.stack([self.preprocess(Image.fromarray(f)) for f in frames])
        with torch_threads(self.cfg.threads), torch.inference_mode():
            emb = self.model.encode_image(batch.to(self.device)).float().cpu().numpy()
        return unit(emb)
