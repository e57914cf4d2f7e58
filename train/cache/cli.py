"""`clipmill cache`: curated shards (and still images) -> a latent cache folder.

    clipmill cache --ckpt-vae runs/vae/checkpoints/last.ckpt --shards 'out/shards/*.tar' \
        --output cache/ --views 4 --frames 9 --size 32 --text.kind hf

For a pretrained family (fine-tuning, train/finetune/), `--model.pretrained DIR` (or a
`--train-config` whose model names it, e.g. configs/train/wan_lora.yaml) takes the VAE and
the text encoder from the pipeline folder and draws each clip's views in its bucket
(`data.frame_buckets/size_buckets/fps` of the training YAML):

    clipmill cache --train-config configs/train/wan_lora.yaml --model.pretrained DIR \
        --shards 'out/shards/*.tar' --output cache/

`--train-config configs/train/latent_tiny.yaml` takes the text encoder
(`model.text`), the autoencoder (`model.autoencoder`) and the sampling
(`data.num_frames/size/fps/frame_stride/span_s/stride_jitter/flip_pairs`) from the training YAML,
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
    p.add_argument(
        "--model.pretrained",
        dest="pretrained",
        help="a diffusers pipeline folder: cache its VAE latents and text states (fine-tuning)",
    )
    p.add_argument("--caption-prefix", help="a trigger word put before every caption")
    p.add_argument("--limit", type=int, help="cache at most this many clips (for trials)")
    p.add_argument("--overwrite", action="store_true", help="replace a cache in --output")
    p.add_argument("--device", default=None, help="default: cuda when available")
    for name, kind in _TEXT_FLAGS.items():
        p.add_argument(f"--text.{name}", dest=f"text_{name}", type=kind, help="as --model.text.*")
    return p


def _read_yaml(path: str) -> dict:
    import yaml

    with open(path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f) or {}
    return cfg if isinstance(cfg, dict) else {}


def _train_defaults(path: str | None) -> tuple[dict, dict, str | None]:
    """(text spec, cache options, autoencoder spec) from a training YAML's model/data."""
    if not path:
        return {}, {}, None
    from train.finetune.plan import section_args

    cfg = _read_yaml(path)
    model, data = section_args(cfg, "model"), section_args(cfg, "data")
    options = {k: data[k] for k in ("fps", "frame_stride", "span_s", "flip_pairs") if data.get(k)}
    if data.get("stride_jitter") is not None:  # 0 is a choice here (no jitter), not "unset"
        options["stride_jitter"] = data["stride_jitter"]
    if model.get("pretrained"):  # a fine-tuning YAML: the family's VAE, buckets from data
        return (
            {},
            {k: v for k, v in options.items() if k == "fps"},
            f"pretrained:{model['pretrained']}",
        )
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
    flags = {"num_frames": args.frames, "size": args.size, "caption_prefix": args.caption_prefix}
    for f in fields(CacheConfig):
        value = flags.get(f.name, getattr(args, f.name, None))
        if value is not None:
            options[f.name] = value
    vae = args.ckpt_vae or vae
    if args.pretrained:
        vae = f"pretrained:{args.pretrained}"
    if not vae:
        # a fine-tuning YAML leaves model.pretrained to the command line: name that flag too
        raise ValueError(
            "--ckpt-vae is required (or a --train-config with model.autoencoder, or "
            "--model.pretrained DIR for a pretrained family)"
        )
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
    if vae_spec.startswith("pretrained:"):
        return _family_builder(args, cfg, vae_spec.removeprefix("pretrained:"), device)
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


def _family_builder(args: argparse.Namespace, cfg: Any, folder: str, device: str):
    """A builder with a pretrained family's VAE and text encoder, views in its buckets."""
    from dataclasses import asdict, replace

    from train.cache.builder import CacheBuilder
    from train.finetune.cache import FamilyText, bucket_chooser, family_identity, grid_from_config
    from train.finetune.data import check_grid
    from train.finetune.plan import section_args
    from train.finetune.registry import load_family

    for flag, value in (
        ("--frames", args.frames),
        ("--size", args.size),
        ("--ckpt-vae", args.ckpt_vae),
    ):
        if value is not None:  # silently ignored otherwise: say so
            raise ValueError(
                f"{flag}: a cache for --model.pretrained takes the family's VAE and each clip's "
                "bucket (the --train-config's data.frame_buckets/size_buckets/fps); drop the flag"
            )
    family = load_family(folder)
    data = section_args(_read_yaml(args.train_config), "data") if args.train_config else {}
    try:
        grid = grid_from_config(data)
        if args.fps is not None:
            grid = replace(grid, fps=args.fps)
        check_grid(grid, family)
    except ValueError as err:
        # The buckets come from the training YAML (clipmill cache has no --data.* flags).
        given = args.train_config or "(not given: the default buckets)"
        raise ValueError(f"--train-config {given}: {err}") from err
    # The fine-tuning loader samples at exactly --data.fps and mirrors with
    # --data.flip_prob (default 0: text and handedness stay the right way round); the
    # cached views do the same unless --stride-jitter / --flip-prob say otherwise.
    defaults = {"stride_jitter": 0.0, "flip_prob": float(data.get("flip_prob") or 0.0)}
    cfg = replace(
        cfg, num_frames=grid.frames[0], size=grid.sizes[0], fps=grid.fps,
        **{k: v for k, v in defaults.items() if getattr(args, k) is None},
    )  # fmt: skip
    vae = family.load_vae().to(device)
    text = FamilyText(family).to(device)
    identity = {**family_identity(family), "buckets": asdict(grid)}
    return CacheBuilder(
        args.output, vae, text, cfg, f"pretrained:{folder}", {"pretrained": folder}, device,
        args.overwrite, bucket_fn=bucket_chooser(grid), family=identity,
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(cache_main(sys.argv[1:]))
