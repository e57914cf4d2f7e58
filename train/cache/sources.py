"""What `clipmill cache` reads: clip shards, image folders, and stills of low-motion clips.

Stills are cached as 1-frame videos (the causal autoencoder encodes frame 0
alone, so an image is exactly a 1-frame clip) with the same K views (view 0
centred and unflipped, the others a random crop and maybe mirrored), and go to
their own shards (`images/`) so that training mixes them in at a chosen ratio.

A clip the curation rejected *only* as `low_motion` is a fine picture that
does not move: its sharpest frame (variance of the Laplacian over up to 8
evenly spaced frames) becomes a still with the clip's captions.
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from schemas.layout import staged_clip
from train.cache.builder import CacheBuilder
from train.cache.format import key_seed
from train.data.augment import caption_choices, random_offset, resize_for_crop
from train.data.stills import IMAGE_SUFFIXES, image_captions

log = logging.getLogger(__name__)

BEST_OF = 8  # frames of a low-motion clip compared for sharpness


def add_shards(builder: CacheBuilder, shards: str, limit: int | None = None) -> None:
    """Every sample of the curated shards (corrupt ones counted by the builder)."""
    from train.data.shards import expand_shards, read_shard

    done = 0
    for url in expand_shards(shards, "--shards"):
        for raw in read_shard(url):
            if limit is not None and done >= limit:
                return
            done += builder.add_clip(raw)


def still_views(image: np.ndarray, builder: CacheBuilder, key: str) -> tuple[list, list]:
    """K views of uint8 [H, W, 3]: each a [1, h, w, 3] crop, view 0 centred and unflipped."""
    import cv2

    cfg = builder.cfg
    height, width = resize_for_crop(image.shape[0], image.shape[1], cfg.size)
    scaled = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(key_seed(cfg.seed, key))
    videos, views = [], []
    for k in range(cfg.views):
        view_rng = rng if k else None
        top = random_offset(height - cfg.size[0], view_rng)
        left = random_offset(width - cfg.size[1], view_rng)
        still = scaled[None, top : top + cfg.size[0], left : left + cfg.size[1]]
        flip = bool(k and cfg.flip_prob > 0 and rng.random() < cfg.flip_prob)
        videos.append(np.ascontiguousarray(still[:, :, ::-1] if flip else still))
        box = [top, left, cfg.size[0], cfg.size[1]]
        views.append({"flip": flip, "fps": None, "frames": [0], "crop": box})
    return videos, views


def _add_still(
    builder: CacheBuilder, key: str, source: str, image: np.ndarray, captions: list, micro: dict
) -> None:
    videos, views = still_views(image, builder, key)
    builder.write("image", key, source, videos, views, captions, micro)


def add_images(builder: CacheBuilder, folder: str) -> None:
    """Every image under `folder` (recursively); unreadable ones are counted as corrupt."""
    from PIL import Image

    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"--images: no folder {folder}")
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            with Image.open(path) as im:
                image = np.asarray(im.convert("RGB"))
        except Exception as err:  # a bad file is data, not a failed run
            _corrupt(builder, "bad_image", str(path), err)
            continue
        key = "img-" + hashlib.sha256(str(path.relative_to(root)).encode()).hexdigest()[:16]
        micro = {"fps": None, "motion_score": None, "clip_score": None, "sample_weight": None}
        _add_still(builder, key, str(path), image, image_captions(path), micro)


def _corrupt(builder: CacheBuilder, reason: str, where: str, err: Exception) -> None:
    builder.stats["corrupt"] += 1
    builder.stats[f"corrupt/{reason}"] += 1
    log.warning("skipping %s: %s: %s", where, type(err).__name__, err)


def low_motion_rows(curated: str) -> list[dict[str, Any]]:
    """Manifest rows of clips whose only reject reason is low_motion."""
    import pyarrow.parquet as pq

    path = Path(curated) / "clips.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"--low-motion: no clips.parquet in {curated}")
    rows = pq.read_table(path).to_pylist()
    return [
        r
        for r in rows
        if not r.get("kept") and list(r.get("reject_reasons") or []) == ["low_motion"]
    ]


def sharpest_frame(frames: np.ndarray) -> np.ndarray:
    """The frame of uint8 [T, H, W, 3] with the largest variance of the Laplacian."""
    import cv2

    scores = [cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() for f in frames]
    return frames[int(np.argmax(scores))]


def _clip_frames(curated: Path, row: dict[str, Any]) -> np.ndarray:
    """Up to BEST_OF frames of the clip: from its staged mp4 if kept, else from its source."""
    import av

    staged = staged_clip(curated, str(row["video_id"]), str(row["clip_id"]))
    start, end = int(row["start_frame"]), int(row["end_frame"])
    if staged.is_file():
        path, lo, hi = staged, 0, end - start
    else:
        path, lo, hi = Path(row["source_path"]), start, end
    wanted = {lo + math.floor((i + 0.5) * (hi - lo) / BEST_OF) for i in range(BEST_OF)}
    frames = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                frames.append(frame.to_ndarray(format="rgb24"))
            if index >= hi:
                break
    if not frames:
        raise ValueError(f"no frame of {row['clip_id']} could be decoded from {path}")
    return np.stack(frames)


def add_low_motion(builder: CacheBuilder, curated: str) -> None:
    """The sharpest frame of each low_motion-only reject of a curate output, as a still."""
    root = Path(curated)
    for row in low_motion_rows(curated):
        try:
            image = sharpest_frame(_clip_frames(root, row))
        except Exception as err:  # one unreadable clip must not stop the cache
            _corrupt(builder, "bad_still", str(row.get("clip_id")), err)
            continue
        captions = caption_choices(row, row.get("caption"))
        micro = {
            "fps": None,
            "motion_score": row.get("motion_score"),
            "clip_score": row.get("clip_score"),
            "sample_weight": row.get("sample_weight"),
        }
        key = f"{row['clip_id']}_still"
        _add_still(builder, key, str(row["clip_id"]), image, captions, micro)
