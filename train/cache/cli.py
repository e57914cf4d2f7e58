"""`clipmill cache`: curated shards (and still images) -> a latent cache folder.

    clipmill cache --ckpt-vae runs/vae/checkpoints/last.ckpt --shards 'out/shards/*.tar' \
        --output cache/ --views 4 --frames 9 --size 32 --text.kind hf

`--train-config configs/train/latent_tiny.yaml` takes the text encoder
(`model.text`), the autoencoder (`model.autoencoder`) and the sampling
(`data.num_frames/size/fps/frame_stride/span_s/flip_pairs`) from the training YAML,
so the cache matches what that training run will check; explicit flags win.
Exit codes: 0 done (corrupt clips are counted, not fatal), 2 usage/config error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields
from typing import Any

_TEXT_FLAGS = {"kind": str, "path": str, "name": str, "pretrained": str, "max_length": int,
               "dim": int, "seed": int}  # fmt: skip


def _size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    return int(h), int(w or h)


def _span(text: str) -> float | str:
    return "clip" if text == "clip" else float(text)


def cache_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="clipmill cache",
        description="Encode K augmented views per clip and every caption once, for many epochs.",
    )
    p.add_argument("--ckpt-vae", help="autoencoder: a .ckpt of vae_tiny.yaml, or diffusers:<dir>")
    p.add_argument("--shards", help="curated shards: a glob, folder or brace pattern")
    p.add_argument("--output", required=True, help="cache folder (nothing is written outside)")
    p.add_argument("--train-config", help="training YAML to take text/VAE/frames/size from")
    p.add_argument("--views", type=int, help="augmented views per clip (default 4)")
    p.add_argument("--frames", type=int, help="frames per view, 1 + k*f_t (default 9)")
    p.add_argument("--size", type=_size, help="N or HxW, multiples of f_s (default 32)")
    p.add_argument("--fps", type=float, help="sample frames at this rate")
    p.add_argument("--frame-stride", type=int, help="or take every n-th frame")
    p.add_argument(
        "--span-s", type=_span, help="or spread the frames over N seconds of the clip, or 'clip'"
    )
    p.add_argument("--stride-jitter", type=float, help="views 1.. vary the stride by up to this")
    p.add_argument("--flip-prob", type=float, help="chance a view 1.. is mirrored (default 0.5)")
    p.add_argument("--seed", type=int, help="seed of the views (default 0)")
    p.add_argument("--shard-samples", type=int, help="clips per cache shard (default 256)")
    p.add_argument("--images", action="append", default=[], help="folder of still images")
    p.add_argument(
        "--low-motion",
        action="append",
        default=[],
        help="curate output folder: the sharpest frame of each clip rejected only as low_motion",
    )
    p.add_argument("--limit", type=int, help="cache at most this many clips (for trials)")
    p.add_argument("--overwrite", action="store_true", help="replace a cache in --output")
    p.add_argument("--device", default=None, help="default: cuda when available")
    for name, kind in _TEXT_FLAGS.items():
        p.add_argument(f"--text.{name}", dest=f"text_{name}", type=kind, help="as --model.text.*")
    return p


def _train_defaults(path: str | None) -> tuple[dict, dict, str | None]:
    """(text spec, cache options, autoencoder spec) from a training YAML's model/data."""
    if not path:
        return {}, {}, None
    import yaml

    with open(path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f) or {}
    model, data = cfg.get("model") or {}, cfg.get("data") or {}
    options = {k: data[k] for k in ("fps", "frame_stride", "span_s", "flip_pairs") if data.get(k)}
    if data.get("num_frames"):
        options["num_frames"] = data["num_frames"]
    if data.get("size"):
        options["size"] = data["size"]
    return dict(model.get("text") or {}), options, model.get("autoencoder")


def resolve(args: argparse.Namespace) -> tuple[Any, dict, str]:
    """(CacheConfig, text spec dict, autoencoder spec); ValueError naming the flag."""
    from train.cache.builder import CacheConfig

    text, options, vae = _train_defaults(args.train_config)
    for name in _TEXT_FLAGS:
        if getattr(args, f"text_{name}") is not None:
            text[name] = getattr(args, f"text_{name}")
    flags = {"num_frames": args.frames, "size": args.size}
    for f in fields(CacheConfig):
        value = flags.get(f.name, getattr(args, f.name, None))
        if value is not None:
            options[f.name] = value
    vae = args.ckpt_vae or vae
    if not vae:
        raise ValueError("--ckpt-vae is required (or a --train-config with model.autoencoder)")
    if not args.shards and not args.images and not args.low_motion:
        raise ValueError("--shards is required (or --images / --low-motion)")
    return CacheConfig(**options), text, vae


def _fail(prog: str, message: str) -> int:
    # The one-line form every clipmill command uses for a bad flag (pipeline.cli has its
    # own: train never imports pipeline, so the two halves stay apart).
    text = " ".join(line.strip() for line in str(message).strip().splitlines() if line.strip())
    print(f"{prog}: error: {text}", file=sys.stderr)
    return 2


def cache_main(argv: list[str]) -> int:
    """Entry point of `clipmill cache`; returns the exit code."""
    import torch

    prog = "clipmill cache"
    args = cache_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        cfg, text_spec, vae_spec = resolve(args)
        builder = _builder(args, cfg, text_spec, vae_spec, device)
        from train.cache.sources import add_images, add_low_motion, add_shards

        if args.shards:
            add_shards(builder, args.shards, args.limit)
        for folder in args.images:
            add_images(builder, folder)
        for folder in args.low_motion:
            add_low_motion(builder, folder)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        return _fail(prog, str(err))
    header = builder.finish()
    counts, size = header["counts"], header["bytes"]
    per = f", {size['per_item'] / 1024:.1f} KiB per item" if size["per_item"] else ""
    print(
        f"done: {counts.get('clips', 0)} clips, {counts.get('images', 0)} images, "
        f"{counts.get('views', 0)} views, {counts.get('corrupt', 0)} corrupt skipped{per} "
        f"-> {args.output}"
    )
    return 0


def _builder(args: argparse.Namespace, cfg: Any, text_spec: dict, vae_spec: str, device: str):
    from train.autoencoder.io import load_autoencoder
    from train.cache.builder import CacheBuilder
    from train.models.text import TextEncoderSpec, build_text_encoder

    try:
        spec = TextEncoderSpec(**text_spec)
    except TypeError as err:
        raise ValueError(f"--text.*: {err}") from err
    encoder = build_text_encoder(spec).to(device)
    try:
        vae = load_autoencoder(vae_spec, device)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"--ckpt-vae: {err}") from err
    from dataclasses import asdict

    return CacheBuilder(
        args.output, vae, encoder, cfg, vae_spec, asdict(spec), device, args.overwrite
    )


if __name__ == "__main__":
    sys.exit(cache_main(sys.argv[1:]))
