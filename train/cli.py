"""`clipmill train {fit,validate}` (LightningCLI) and `clipmill sample`.

Training is LightningCLI over `VideoDiffusion` and the shards' `VideoDataModule`,
so every constructor argument is a `--model.*` / `--data.*` / `--trainer.*` flag
and a YAML key. A YAML whose `model:` names a `class_path` trains that
LightningModule instead (configs/train/vae_tiny.yaml: the video autoencoder).
Two defaults are filled in here rather than in YAML because they
depend on the machine or on other flags: the precision (bf16-mixed on a GPU that
supports it, fp32 elsewhere) and the checkpoint folder (`<default_root_dir>/checkpoints`,
one fixed place, so `--ckpt_path last` finds the previous run's `last.ckpt`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch


def default_precision() -> str:
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def _make_cli_class() -> type:
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

    class TrainCLI(LightningCLI):
        @staticmethod
        def subcommands() -> dict[str, set[str]]:
            return {k: v for k, v in LightningCLI.subcommands().items() if k in ("fit", "validate")}

        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            parser.set_defaults({"trainer.precision": default_precision()})

        def before_instantiate_classes(self) -> None:
            cfg = self.config[self.subcommand]
            root = cfg.trainer.default_root_dir or os.getcwd()
            for cb in cfg.trainer.callbacks or []:
                if str(cb.class_path).endswith("ModelCheckpoint") and not cb.init_args.dirpath:
                    cb.init_args.dirpath = os.path.join(root, "checkpoints")

    return TrainCLI


def names_model_class(argv: list[str], section: str = "model") -> bool:
    """True when the YAML's `model:` (or `section:`) has a `class_path` or `--model` names one.

    Then the model is chosen by class (`model: class_path: train.autoencoder.module.
    VideoAutoencoderModule`, or train.finetune.module.FinetuneModule); otherwise it is
    VideoDiffusion and `model:` holds its arguments, as before. Likewise for `data:`
    (train.finetune.data.FinetuneDataModule) and the shards' VideoDataModule.
    """
    import yaml

    for i, arg in enumerate(argv):
        if arg == f"--{section}" or arg.startswith(f"--{section}="):
            return True
        if (arg == "--config" and i + 1 < len(argv)) or arg.startswith("--config="):
            path = argv[i + 1] if arg == "--config" else arg.partition("=")[2]
            try:
                cfg = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError):
                continue  # the parser reports it, naming --config
            model = cfg.get(section) if isinstance(cfg, dict) else None
            if isinstance(model, dict) and "class_path" in model:
                return True
    return False


def train_main(argv: list[str], datamodule_class: type | None = None) -> int:
    """`clipmill train fit|validate|plan --config ... [--flag value ...]`; returns the exit code.

    `datamodule_class` replaces the shards' VideoDataModule (tests use a synthetic one).
    """
    if argv and argv[0] == "plan":  # fine-tuning buckets, before any model is loaded
        from train.finetune.plan import plan_main

        return plan_main(list(argv[1:]))
    import lightning as L

    from train.cache.format import CacheError
    from train.module import VideoDiffusion

    by_class = names_model_class(list(argv))
    data_by_class = datamodule_class is None and names_model_class(list(argv), "data")
    if data_by_class:
        datamodule_class = L.LightningDataModule
    if datamodule_class is None:
        from train.data.module import VideoDataModule  # imported late: curation never pays for it

        datamodule_class = VideoDataModule
    try:
        with warnings.catch_warnings():
            # `clipmill train ...` hands us sys.argv[2:] on purpose; Lightning warns
            # whenever args and sys.argv are both set.
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
            _make_cli_class()(
                L.LightningModule if by_class else VideoDiffusion,
                datamodule_class,
                subclass_mode_model=by_class,
                subclass_mode_data=data_by_class,
                args=list(argv),
                save_config_kwargs={"overwrite": True},
                parser_kwargs={"prog": "clipmill train"},
                load_from_checkpoint_support=False,  # hparams are plain dicts, see module.py
                seed_everything_default=0,
            )
    except SystemExit as e:  # argparse exits on --help and on bad flags
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    except CacheError as e:  # a stale or missing latent cache: one line naming the flag
        print(f"clipmill train: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        # The checks in train/ raise ValueError naming the flag ("--data.num_frames 8 does
        # not fit ..."): a configuration error, so one line and exit 2. Others are bugs.
        flagged = _flag_error(e)
        if flagged is None:
            raise
        print(f"clipmill train: error: {flagged}", file=sys.stderr)
        return 2
    return 0


def _flag_error(err: BaseException) -> str | None:
    """The message of the flag-naming ValueError behind `err`, or None when there is none.

    A class chosen by `class_path` (FinetuneModule, FinetuneDataModule) is built by
    jsonargparse, which re-raises its constructor's ValueError as "Does not validate
    against any of the Union subtypes ..." `from` the original: follow the cause chain.
    """
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, ValueError) and str(err).startswith("--"):
            return str(err)
        err = err.__cause__ or err.__context__
    return None


# ---------------------------------------------------------------------- sample


def _parse_size(text: str) -> int | tuple[int, int]:
    if "x" in text.lower():
        h, w = text.lower().split("x")
        return int(h), int(w)
    return int(text)


def _parse_micro(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--micro expects NAME=VALUE, got {item!r}")
        out[name] = float(value)
    return out


def sample_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="clipmill sample",
        description=(
            "Sample videos from a checkpoint: one mp4 per prompt and a grid.png of all frames."
        ),
    )
    p.add_argument("--ckpt", required=True, help="a .ckpt written by `clipmill train fit`")
    p.add_argument("--prompt", action="append", default=[], help="repeatable")
    p.add_argument("--prompts-file", help="one prompt per line")
    p.add_argument("--output", default="samples", help="folder for the mp4s and grid.png")
    p.add_argument("--num-frames", type=int, help="default: the training clips' frame count")
    p.add_argument("--size", type=_parse_size, help="N or HxW; default: the training size")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--cfg", type=float, default=None, help="guidance scale (default: the ckpt's)")
    p.add_argument("--method", choices=("euler", "heun"), help="default: the ckpt's")
    p.add_argument("--seed", type=int, default=0, help="prompt i uses seed + i")
    p.add_argument("--fps", type=float, help="of the written mp4s (default: training fps or 8)")
    p.add_argument(
        "--micro",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a micro-condition, e.g. fps=8 or motion_score=2; unset = unknown",
    )
    p.add_argument(
        "--ckpt-vae",
        help="latent models: the autoencoder to decode with, if it moved since training "
        "(default: the checkpoint's --model.autoencoder; a different VAE is refused)",
    )
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--no-ema", action="store_true", help="use the raw weights, not the EMA")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p


def _slug(text: str, n: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:n] or "prompt"


def sample_main(argv: list[str]) -> int:
    """`clipmill sample --ckpt X --prompt "..." --output DIR`; returns the exit code."""
    args = sample_parser().parse_args(argv)
    prompts = list(args.prompt)
    if args.prompts_file:
        lines = Path(args.prompts_file).read_text(encoding="utf-8").splitlines()
        prompts += [line.strip() for line in lines if line.strip()]
    if not prompts:
        print("clipmill sample: give --prompt or --prompts-file", file=sys.stderr)
        return 2
    from train.data.video_io import write_mp4
    from train.filmstrip import filmstrip
    from train.finetune.sample import is_finetune_checkpoint

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    if is_finetune_checkpoint(args.ckpt):
        from train.finetune.sample import generate

        frames, train_fps = generate(
            args.ckpt, prompts, out, num_frames=args.num_frames,
            size=(args.size, args.size) if isinstance(args.size, int) else args.size,
            steps=args.steps, cfg=args.cfg, seed=args.seed, batch_size=args.batch_size,
            use_ema=not args.no_ema, device=args.device,
        )  # fmt: skip
    else:
        frames, train_fps = _sample_dit(args, prompts)
    fps = args.fps or train_fps
    index = []
    for i, (prompt, clip) in enumerate(zip(prompts, frames, strict=True)):
        name = f"{i:03d}_{_slug(prompt)}.mp4"
        write_mp4(str(out / name), clip, fps)
        index.append({"file": name, "prompt": prompt})
    # One labelled filmstrip per prompt, frames enlarged to >= 64 px: readable by eye.
    _save_png(out / "grid.png", filmstrip(frames, prompts))
    (out / "prompts.txt").write_text("\n".join(prompts) + "\n", encoding="utf-8")
    # Which file holds which prompt, for `clipmill evaluate` (file names are truncated slugs).
    (out / "samples.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(prompts)} videos and grid.png to {out}")
    return 0


def _sample_dit(args: argparse.Namespace, prompts: list[str]) -> tuple[np.ndarray, float]:
    """uint8 [N, T, H, W, 3] from a from-scratch DiT checkpoint, and its sample fps."""
    from train.module import VideoDiffusion, to_uint8

    moved = {"autoencoder": args.ckpt_vae} if args.ckpt_vae else {}
    model = VideoDiffusion.load_from_checkpoint(args.ckpt, map_location=args.device, **moved)
    model.eval()
    videos = []
    for i in range(0, len(prompts), args.batch_size):
        videos.append(
            model.generate(
                prompts[i : i + args.batch_size],
                num_frames=args.num_frames,
                size=args.size,
                steps=args.steps,
                cfg_scale=args.cfg,
                seed=args.seed + i,
                method=args.method,
                micro=_parse_micro(args.micro),
                use_ema=not args.no_ema,
            ).cpu()
        )
    return to_uint8(torch.cat(videos)).numpy(), model.hparams.get("sample_fps") or 8


def _save_png(path: Path, image: Any) -> None:
    from PIL import Image

    Image.fromarray(np.asarray(image)).save(path)
