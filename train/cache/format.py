"""The latent cache's on-disk format: its folders, header, key seeds and staleness checks.

One owner for what a cache folder holds, so the writer (`train.cache.builder`),
the readers (`train.cache.latent`, `train.module`) and `clipmill cache` agree.
The record layout and header fields are in `schemas/cache.py`.

    CACHE/cache.json      the header, written last (a cache without it is unfinished)
    CACHE/shards/*.tar    one sample per clip: mean.npy, logvar.npy, text.npy, json
    CACHE/images/*.tar    the same for stills (1-frame views)
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from schemas.cache import CACHE_FORMAT, CACHE_VERSION, HEADER_NAME

CLIP_DIR, IMAGE_DIR = "shards", "images"


class CacheError(ValueError):
    """A latent cache that cannot be used (missing, unfinished, stale); names the flag."""


class StaleCache(CacheError):
    """The cache was made by another autoencoder or text encoder than the one configured."""


def key_seed(seed: int, key: str) -> int:
    return int(
        np.random.SeedSequence([seed & 0xFFFFFFFF, zlib.crc32(key.encode())]).generate_state(1)[0]
    )


def prepare_output(out: Path, overwrite: bool) -> None:
    """Refuse to mix two caches in one folder; `overwrite` removes only what a cache writes."""
    ours = [out / HEADER_NAME, out / CLIP_DIR, out / IMAGE_DIR]
    if any(p.exists() for p in ours):
        if not overwrite:
            raise FileExistsError(
                f"--output {out} already holds a cache; add --overwrite to replace it"
            )
        for p in ours:
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def autoencoder_identity(vae: Any, spec: str = "") -> dict[str, Any]:
    """What the header records of the autoencoder; `fingerprint` decides staleness."""
    return {
        "spec": spec,
        "fingerprint": vae.fingerprint(),
        "latent_channels": int(vae.latent_channels),
        "temporal_compression": int(vae.temporal_compression),
        "spatial_compression": int(vae.spatial_compression),
        "scaling_factor": float(vae.scaling_factor),
        "shift_factor": float(vae.shift_factor),
    }


def read_header(folder: str | os.PathLike, flag: str = "--data.cache") -> dict[str, Any]:
    """`cache.json` of a finished cache; FileNotFoundError/ValueError naming `flag` otherwise."""
    path = Path(folder) / HEADER_NAME
    if not path.is_file():
        raise CacheError(
            f"{flag}: no finished cache at {folder} (no {HEADER_NAME}); run `clipmill cache`"
        )
    header = json.loads(path.read_text())
    if header.get("format") != CACHE_FORMAT or header.get("version") != CACHE_VERSION:
        raise CacheError(f"{flag}: {path} is not a version-{CACHE_VERSION} clipmill latent cache")
    return header


def check_header(
    header: dict[str, Any],
    *,
    fingerprint: str | None = None,
    text_encoder_id: str | None = None,
    flag: str = "--data.cache",
) -> None:
    """Raise StaleCache, in one line naming the flags, when the cache was made by other encoders."""
    made = header["autoencoder"]
    if fingerprint is not None and made["fingerprint"] != fingerprint:
        raise StaleCache(
            f"{flag} is stale: it was made by autoencoder {made['spec'] or '?'} (fingerprint "
            f"{made['fingerprint']}), but --model.autoencoder has fingerprint {fingerprint}; "
            "rebuild it with `clipmill cache --ckpt-vae ...` or use that VAE"
        )
    text = header["text_encoder"]["id"]
    if text_encoder_id is not None and text != text_encoder_id:
        raise StaleCache(
            f"{flag} is stale: its text states come from {text!r}, but --model.text builds "
            f"{text_encoder_id!r}; rebuild it with `clipmill cache` and the same --text.* flags"
        )
