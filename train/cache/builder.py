"""Encode once, train many epochs: the latent cache of augmented views and caption states.

For every clip of the curated shards, `CacheBuilder` decodes K views with the
trainer's own sampling code (`train.data.augment`: temporal crop at the fps stride,
resize to cover, crop, caption-aware flip), encodes them with the autoencoder
and keeps the posterior (mean, logvar) rather than one draw, so each training
step still samples fresh latents. View 0 is the deterministic view (centred
frames and crop, no flip) that validation uses; views 1..K-1 each draw their
own temporal offset, fps stride (jittered around the configured one), crop and
flip from a generator seeded by (seed, clip key), so a rebuild is identical.
The token states of every caption (and of its mirrored form for flipped views,
and of the empty caption) are stored beside, so training never runs the text
encoder. Record layout: `schemas/cache.py`.

A cache is only valid for the autoencoder and text encoder that made it:
`cache.json` names both and `check_header` refuses a mismatch in one line.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from schemas.cache import CACHE_FORMAT, CACHE_VERSION, HEADER_NAME
from train.cache.format import (
    CLIP_DIR,
    IMAGE_DIR,
    autoencoder_identity,
    key_seed,
    prepare_output,
)
from train.data.augment import (
    DEFAULT_FLIP_PAIRS,
    CorruptSample,
    caption_choices,
    check_rate,
    clip_timing,
    finite_number,
    flip_caption,
    flip_video,
    jitter_stride,
    parse_record,
    random_offset,
    resize_for_crop,
    temporal_indices,
)
from train.data.video_io import Mp4Reader

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheConfig:
    """How views are drawn; each field is a `clipmill cache --<field>` flag (checked here)."""

    views: int = 4
    num_frames: int = 9
    size: tuple[int, int] = (32, 32)
    fps: float | None = None
    frame_stride: int | None = None
    span_s: float | str | None = None
    """spread a view's frames over this many seconds of the clip ("clip": all of it)"""
    stride_jitter: float = 0.25
    """views 1.. use the stride times a factor in [1/(1+j), 1+j] (their fps is recorded)"""
    flip_prob: float = 0.5
    flip_pairs: tuple[tuple[str, str], ...] = DEFAULT_FLIP_PAIRS
    seed: int = 0
    shard_samples: int = 256
    caption_prefix: str | None = None
    """a trigger word put before every caption before it is encoded"""

    def __post_init__(self) -> None:
        size = (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "flip_pairs", tuple((str(a), str(b)) for a, b in self.flip_pairs))
        checks = (
            (self.views >= 1, "views", "be at least 1"),
            (self.num_frames >= 1, "frames", "be at least 1"),
            (len(size) == 2 and min(size) >= 1, "size", "be a positive int or HxW"),
            (self.fps is None or self.fps > 0, "fps", "be positive"),
            (self.frame_stride is None or self.frame_stride >= 1, "frame-stride", "be >= 1"),
            (self.stride_jitter >= 0, "stride-jitter", "be >= 0"),
            (0 <= self.flip_prob <= 1, "flip-prob", "be in [0, 1]"),
            (self.shard_samples >= 1, "shard-samples", "be at least 1"),
        )
        for ok, flag, must in checks:
            if not ok:
                raise ValueError(
                    f"--{flag} must {must}, got {getattr(self, flag.replace('-', '_'), None)!r}"
                )
        check_rate(self, lambda f: "--" + f.replace("_", "-"))

    def check_autoencoder(self, vae: Any) -> None:
        """ValueError naming --frames/--size when the autoencoder cannot take them."""
        ft, fs = vae.temporal_compression, vae.spatial_compression
        if (self.num_frames - 1) % ft:
            raise ValueError(
                f"--frames must be 1 + k*{ft} for this autoencoder, got {self.num_frames}"
            )
        if self.size[0] % fs or self.size[1] % fs:
            raise ValueError(
                f"--size must be a multiple of {fs} for this autoencoder, got {self.size}"
            )


def draw_views(raw: dict[str, Any], cfg: CacheConfig) -> tuple[list[np.ndarray], list[dict], dict]:
    """Decode the K views of one shard sample: (uint8 [T, H, W, 3] each, view metadata, record).

    Raises CorruptSample. One reader serves every view (the clip is opened once).
    """
    record = parse_record(raw)
    if not raw.get("mp4"):
        raise CorruptSample("missing_mp4")
    rng = np.random.default_rng(key_seed(cfg.seed, raw["__key__"]))
    videos, views = [], []
    try:
        with Mp4Reader(raw["mp4"]) as reader:
            info = reader.info
            clip_fps, n_frames, base = clip_timing(info, record, cfg)
            scaled = resize_for_crop(info.height, info.width, cfg.size)
            for k in range(cfg.views):
                view_rng = rng if k else None  # view 0: centred, unflipped
                stride = jitter_stride(base, cfg.stride_jitter, view_rng)
                indices, used = temporal_indices(n_frames, cfg.num_frames, stride, view_rng)
                frames = reader.read(indices, scaled)
                video, box = _crop(frames, cfg.size, view_rng)
                flip = bool(k and cfg.flip_prob > 0 and rng.random() < cfg.flip_prob)
                videos.append(flip_video(video) if flip else np.ascontiguousarray(video))
                fps = clip_fps / used if clip_fps > 0 else None
                views.append(
                    {"flip": flip, "fps": fps, "frames": [int(i) for i in indices], "crop": box}
                )
    except CorruptSample:
        raise
    except Exception as err:  # any decoder failure is the clip's fault, not the run's
        raise CorruptSample("decode_error", f"{type(err).__name__}: {err}") from err
    record = {**record, "fps": clip_fps}
    return videos, views, record


def _crop(frames: np.ndarray, size: tuple[int, int], rng: np.random.Generator | None) -> tuple:
    # Draw the crop's corner here (as train.data.augment.crop would) so that it can be recorded.
    top = random_offset(frames.shape[1] - size[0], rng)
    left = random_offset(frames.shape[2] - size[1], rng)
    box = [top, left, size[0], size[1]]
    return frames[:, top : top + size[0], left : left + size[1]], box


def caption_table(
    captions: list[str], views: list[dict], pairs: Sequence[Sequence[str]]
) -> list[str]:
    """Texts to encode ("" first) and, in each view, `captions`: its rows, primary first.

    A flipped view gets the mirrored captions ("left" <-> "right"), as the
    trainer's flip does, so the stored states always describe the pixels.
    """
    texts: dict[str, int] = {"": 0}
    for view in views:
        own = [flip_caption(c, pairs) for c in captions] if view["flip"] else captions
        view["captions"] = [texts.setdefault(c, len(texts)) for c in own] or [0]
    return list(texts)


@torch.no_grad()
def encode_texts(encoder: Any, texts: list[str]) -> tuple[np.ndarray, list[int]]:
    """float16 [N, L, D] token states (padded) and the valid length of each row."""
    states, mask = encoder(texts)
    lengths = [int(m) for m in mask.sum(1)]
    keep = max(1, max(lengths))
    return states[:, :keep].float().cpu().numpy().astype(np.float16), lengths


@torch.no_grad()
def encode_views(vae: Any, videos: list[np.ndarray], device: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [T, H, W, 3] views -> float16 posterior (mean, logvar), each [V, C, T', H', W']."""
    x = torch.from_numpy(np.stack(videos)).to(device).permute(0, 4, 1, 2, 3).float()
    mean, logvar = vae.encode(x / 127.5 - 1.0)
    return (
        mean.float().cpu().numpy().astype(np.float16),
        logvar.float().cpu().numpy().astype(np.float16),
    )


def _micro(record: dict[str, Any]) -> dict[str, float | None]:
    def value(name: str) -> float | None:
        v = finite_number(record, name, math.nan)
        return None if math.isnan(v) else v

    return {
        n: value(n) for n in ("fps", "motion_score", "clip_score", "aesthetic", "sample_weight")
    }


class CacheBuilder:
    """Writes the cache folder: clip shards, image shards, then `cache.json` last."""

    def __init__(
        self,
        output: str | os.PathLike,
        vae: Any,
        text_encoder: Any,
        cfg: CacheConfig,
        vae_spec: str = "",
        text_spec: dict[str, Any] | None = None,
        device: str = "cpu",
        overwrite: bool = False,
        bucket_fn: Any = None,
        family: dict[str, Any] | None = None,
    ) -> None:
        """`bucket_fn(raw) -> (frames, (h, w))` or a reason: per-clip views (fine-tuning
        buckets) instead of cfg's; `family`: the pretrained family the cache is made for."""
        from schemas.shards import ShardWriter

        cfg.check_autoencoder(vae)
        self.out = Path(output)
        prepare_output(self.out, overwrite)
        self.vae, self.text, self.cfg, self.device = vae, text_encoder, cfg, device
        self.vae_spec, self.text_spec = vae_spec, text_spec or {}
        self.bucket_fn, self.family = bucket_fn, family
        self.stats: Counter = Counter()
        self._writers = {
            kind: ShardWriter(self.out / folder, max_samples=cfg.shard_samples)
            for kind, folder in (("video", CLIP_DIR), ("image", IMAGE_DIR))
        }

    def add_clip(self, raw: dict[str, Any]) -> bool:
        """Cache one shard sample; a corrupt one is logged, counted and skipped (False)."""
        try:
            if "__error__" in raw:
                raise CorruptSample(raw["__error__"], raw.get("__url__", ""))
            cfg = self.cfg
            if self.bucket_fn is not None:
                bucket = self.bucket_fn(raw)
                if isinstance(bucket, str):  # the plan leaves it out: not corrupt
                    self.stats[f"dropped/{bucket}"] += 1
                    return False
                cfg = replace(cfg, num_frames=bucket[0], size=bucket[1])
            videos, views, record = draw_views(raw, cfg)
        except CorruptSample as err:
            self.stats["corrupt"] += 1
            self.stats[f"corrupt/{err.reason}"] += 1
            log.warning("skipping clip %r: %s", raw.get("__key__"), err)
            return False
        primary = (
            raw["txt"].decode("utf-8", "replace") if isinstance(raw.get("txt"), bytes) else None
        )
        captions = caption_choices(record, primary)
        if self.cfg.caption_prefix:
            captions = [f"{self.cfg.caption_prefix} {c}".strip() for c in captions]
        self.write("video", raw["__key__"], raw["__key__"], videos, views, captions, _micro(record))
        return True

    def write(
        self,
        kind: str,
        key: str,
        source: str,
        videos: list[np.ndarray],
        views: list[dict],
        captions: list[str],
        micro: dict[str, float | None],
    ) -> None:
        """Encode the views and captions of one clip or image and add it to its shards."""
        texts = caption_table(captions, views, self.cfg.flip_pairs)
        states, lengths = encode_texts(self.text, texts)
        mean, logvar = encode_views(self.vae, videos, self.device)
        record = {
            "key": key,
            "kind": kind,
            "source": source,
            "texts": texts,
            "text_lengths": lengths,
            "views": views,
            "latent_shape": list(mean.shape[1:]),
            **micro,
        }
        fields = {"mean.npy": mean, "logvar.npy": logvar, "text.npy": states, "json": record}
        self._writers[kind].write(key, fields)
        self.stats["clips" if kind == "video" else "images"] += 1
        self.stats["views"] += len(views)

    def finish(self) -> dict[str, Any]:
        """Close the shards and write `cache.json` (last: a cache without it is unfinished)."""
        shards = {k: [f"{d}/{n}" for n in w.close()] for k, w, d in self._dirs()}
        sizes = sum(os.path.getsize(self.out / s) for names in shards.values() for s in names)
        items = self.stats["clips"] + self.stats["images"]
        header = {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "autoencoder": autoencoder_identity(self.vae, self.vae_spec),
            "text_encoder": {"id": self.text.encoder_id, "spec": self.text_spec},
            "sample": {**asdict(self.cfg), "size": list(self.cfg.size)},
            "shards": shards["video"],
            "image_shards": shards["image"],
            "counts": dict(self.stats),
            "bytes": {"total": sizes, "per_item": sizes / items if items else None},
            "family": self.family,
        }
        tmp = self.out / (HEADER_NAME + ".tmp")
        tmp.write_text(json.dumps(header, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.out / HEADER_NAME)
        return header

    def _dirs(self) -> Iterable[tuple[str, Any, str]]:
        folders = {"video": CLIP_DIR, "image": IMAGE_DIR}
        return ((k, w, folders[k]) for k, w in self._writers.items())
