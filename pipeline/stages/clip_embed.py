"""CLIP stage (1:1 per video, GPU when present): embeddings, caption score, aesthetic score.

Row in:  a transcoded video record (`stage_dir` holds the clips' mp4s).
Row out: the same record; every scoreable clip gains `{clip_id}.emb.npy` in `stage_dir`
         (float16: the mean of K L2-normalised frame embeddings, normalised again),
         `clip_score` (cosine with its caption's text embedding, when it has a caption)
         and `aesthetic` (a LAION-style MLP head on the embedding, when one is given).

The model loads once per actor (`--clip.model`, `--clip.pretrained` tag or local
path). Frames of all of a video's clips go through the model in batches of
`--clip.batch_size`. The default, `clipmill-tiny`, is a 2-layer open_clip config
with seeded random weights: offline, fast, deterministic, and exercising the same
code path as a real model (create, save, load by path). Scores from random weights
mean nothing, so no threshold on them is on by default and semantic dedup waits for
pretrained weights. Reasons are decided at pack time.
"""

from __future__ import annotations

import json
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config.curate import ConfigError, CurateConfig
from pipeline.config.scores import TINY_CLIP, ClipConfig
from pipeline.stages.base import fail, scoreable
from pipeline.stages.frames import frame_counts, load_frames

TINY_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
EMB_SUFFIX = ".emb.npy"


def register_tiny() -> None:
    """Make `clipmill-tiny` known to open_clip.

    open_clip registers configs from JSON files; it parses the file at once and keeps
    the config, so the file is deleted right away (nothing is left outside --output).
    """
    import open_clip

    if TINY_CLIP in open_clip.list_models():
        return
    with tempfile.TemporaryDirectory(prefix="clipmill-openclip-") as folder:
        path = Path(folder) / f"{TINY_CLIP}.json"
        path.write_text(json.dumps(TINY_CONFIG))
        open_clip.add_model_config(path)


def check_clip_config(cfg: CurateConfig) -> None:
    """Fail before any work on an unknown model or a head of the wrong width (ConfigError)."""
    clip = cfg.clip
    if not clip.enabled:
        return
    import open_clip

    register_tiny()
    if clip.model not in open_clip.list_models():
        raise ConfigError(f"--clip.model {clip.model!r} is not an open_clip model")
    if clip.aesthetic_head:
        dim = open_clip.get_model_config(clip.model)["embed_dim"]
        load_aesthetic_head(clip.aesthetic_head, dim)


@contextmanager
def torch_threads(n: int):
    """Run with n intra-op threads, then restore: the in-process runner shares torch."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_clip(cfg: ClipConfig, device: str) -> tuple[Any, Any, Any]:
    """(model, image preprocess, tokenizer); random weights are seeded, so reproducible."""
    import open_clip
    import torch

    register_tiny()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, _, preprocess = open_clip.create_model_and_transforms(
            cfg.model, pretrained=cfg.pretrained, device=device
        )
    return model.eval(), preprocess, open_clip.get_tokenizer(cfg.model)


def load_aesthetic_head(path: str, dim: int) -> Any:
    """LAION improved-aesthetic-predictor layout: Linear layers applied in order, no activations.

    Any state dict of `*.N.weight`/`*.N.bias` Linear layers works; the first layer's
    input must be the embedding width.
    """
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    weights = sorted(
        (k for k, v in state.items() if k.endswith(".weight") and v.ndim == 2),
        key=lambda k: [int(p) if p.isdigit() else p for p in k.split(".")],
    )
    if not weights or state[weights[0]].shape[1] != dim:
        got = state[weights[0]].shape[1] if weights else "no Linear layers"
        raise ConfigError(f"--clip.aesthetic_head expects inputs of width {dim}, got {got}")
    layers = []
    for key in weights:
        w = state[key]
        layer = torch.nn.Linear(w.shape[1], w.shape[0])
        layer.weight.data.copy_(w)
        layer.bias.data.copy_(state[key[: -len("weight")] + "bias"])
        layers.append(layer)
    return torch.nn.Sequential(*layers).eval()


def resolve_device(cfg: ClipConfig) -> str:
    import torch

    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.device


class ClipStage:
    """Ray Data stage (1:1, actor pool): CLIP embeddings and scores of one video's clips."""

    def __init__(self, cfg: CurateConfig) -> None:
        self.cfg, self.counts = cfg.clip, frame_counts(cfg)
        if not self.cfg.enabled:
            return
        self.device = resolve_device(self.cfg)
        with torch_threads(self.cfg.threads):
            self.model, self.preprocess, self.tokenizer = load_clip(self.cfg, self.device)
            dim = int(self.model.visual.output_dim)
            head = self.cfg.aesthetic_head
            self.head = load_aesthetic_head(head, dim).to(self.device) if head else None

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        video = json.loads(row["video"])
        if video["status"] == "ok" and self.cfg.enabled:
            with torch_threads(self.cfg.threads):
                self._video(video)
        return {"video": json.dumps(video)}

    def _video(self, video: dict[str, Any]) -> None:
        """Clips in chunks of about `batch_size` frames: memory stays flat in the video's length."""
        folder = Path(video["stage_dir"])
        pending: list[tuple[dict[str, Any], np.ndarray]] = []
        for clip in scoreable(video):
            try:
                sample = load_frames(folder, clip["clip_id"], self.counts).pick(self.cfg.frames)
            except Exception as exc:  # noqa: BLE001 - a bad clip is a row, not a crash
                fail(clip, "clip", exc)
                continue
            pending.append((clip, sample))
            if sum(len(f) for _, f in pending) >= self.cfg.batch_size:
                self._score_chunk(pending, folder)
                pending = []
        if pending:
            self._score_chunk(pending, folder)

    def _score_chunk(self, pending: list[tuple[dict[str, Any], np.ndarray]], folder: Path) -> None:
        clips = [c for c, _ in pending]
        embs = self.embed_clips([f for _, f in pending])
        for clip, emb in zip(clips, embs, strict=True):
            np.save(folder / f"{clip['clip_id']}{EMB_SUFFIX}", emb.astype(np.float16))
        # Scores from the stored (float16) embedding, so a re-read gives the same numbers.
        stored = np.stack([e.astype(np.float16).astype(np.float32) for e in embs])
        self._scores(clips, stored)

    def embed_clips(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """One L2-normalised embedding per clip: the mean of its normalised frame embeddings."""
        flat = [f for clip in frames for f in clip]
        out = self.embed_images(flat)
        embs, at = [], 0
        for clip in frames:
            mean = out[at : at + len(clip)].mean(axis=0)
            embs.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
            at += len(clip)
        return embs

    def embed_images(self, images: list[np.ndarray]) -> np.ndarray:
        import torch
        from PIL import Image

        chunks = []
        for at in range(0, len(images), self.cfg.batch_size):
            batch = images[at : at + self.cfg.batch_size]
            x = torch.stack([self.preprocess(Image.fromarray(im)) for im in batch])
            with torch.inference_mode():
                e = self.model.encode_image(x.to(self.device)).float()
            chunks.append(torch.nn.functional.normalize(e, dim=-1).cpu().numpy())
        return np.concatenate(chunks)

    def _scores(self, clips: list[dict[str, Any]], embs: np.ndarray) -> None:
        import torch

        captioned = [i for i, c in enumerate(clips) if c.get("caption")]
        if captioned:
            tokens = self.tokenizer([clips[i]["caption"] for i in captioned]).to(self.device)
            with torch.inference_mode():
                text = self.model.encode_text(tokens).float()
            text = torch.nn.functional.normalize(text, dim=-1).cpu().numpy()
            for i, t in zip(captioned, text, strict=True):
                clips[i]["clip_score"] = round(float(embs[i] @ t), 5)
        if self.head is not None:
            with torch.inference_mode():
                scores = self.head(torch.from_numpy(embs).to(self.device)).float().cpu().numpy()
            for clip, s in zip(clips, scores[:, 0], strict=True):
                clip["aesthetic"] = round(float(s), 5)
