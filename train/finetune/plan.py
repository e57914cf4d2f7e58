"""`clipmill train plan`: what the fine-tuning loader will use and drop, before any GPU time.

    clipmill train plan --config configs/train/wan_lora.yaml --data.shards 'out/shards/*.tar'

Reads the YAML's `data:` (FinetuneDataModule's arguments), applies `--data.<field> VALUE`
overrides (values parsed as YAML: `--data.frame_buckets [17,33]`), checks the buckets
against the family when `--model.pretrained DIR` (or the YAML's) is given, prints the
per-bucket table and writes it as JSON (`--output`, default
`<trainer.default_root_dir>/plan.json`). Reads only the shards' json and txt members.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

import yaml


def section_args(cfg: dict[str, Any], key: str) -> dict[str, Any]:
    """The arguments of a training YAML's `key:` section, plain or in the class_path form
    (under `init_args`; a class_path alone: none). Also how `clipmill cache` reads it."""
    part = cfg.get(key) or {}
    part = part if isinstance(part, dict) else {}
    return dict(part.get("init_args") or ({} if "class_path" in part else part))


def _sections(argv: list[str]) -> tuple[dict, dict, dict, str | None]:
    """(data args, model args, trainer args, --output) from --config and --x.y flags."""
    cfg: dict[str, Any] = {}
    out, i = None, 0
    overrides: list[tuple[str, str]] = []
    while i < len(argv):
        flag = argv[i]
        name, eq, value = flag.partition("=")
        if not eq:
            if i + 1 >= len(argv):
                raise ValueError(f"{flag} needs a value")
            value, i = argv[i + 1], i + 1
        if name == "--config":
            cfg = _read_config(value)
        elif name == "--output":
            out = value
        elif name.startswith(("--data.", "--model.", "--trainer.")):
            overrides.append((name[2:], value))
        else:
            raise ValueError(
                f"{name}: unknown flag (plan takes --config, --data.*, "
                "--model.pretrained, --output)"
            )
        i += 1
    sections = {key: section_args(cfg, key) for key in ("data", "model", "trainer")}
    for dotted, value in overrides:
        section, _, field = dotted.partition(".")
        sections[section][field.removeprefix("init_args.")] = _value(dotted, value)
    return sections["data"], sections["model"], sections["trainer"], out


# The checks below turn what would be a traceback or an unnamed message into one line
# naming the flag, as every clipmill command reports a bad flag.


def _read_config(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            cfg = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"--config {path}: {_one_line(err)}") from err
    if not isinstance(cfg, dict):
        raise ValueError(f"--config {path}: not a YAML mapping")
    return cfg


def _value(dotted: str, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"--{dotted}: {text!r} is not a YAML value ({_one_line(err)})") from err


def _one_line(err: BaseException) -> str:
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip())


def _check_data_fields(data: dict[str, Any], cls: type) -> None:
    """ValueError naming `--data.<field>` when the data module has no such argument."""
    known = inspect.signature(cls.__init__).parameters
    unknown = sorted(k for k in data if k not in known or k == "self")
    if unknown:
        raise ValueError(f"--data.{unknown[0]}: {cls.__name__} has no such option")


def plan_main(argv: list[str]) -> int:
    """Entry point of `clipmill train plan`; returns the exit code."""
    from train.finetune.buckets import format_plan
    from train.finetune.data import FinetuneDataModule

    try:
        data, model, trainer, out = _sections(list(argv))
        data.pop("cache", None)  # the plan is of shards
        _check_data_fields(data, FinetuneDataModule)
        module = FinetuneDataModule(**data)
        if model.get("pretrained"):
            from train.finetune.registry import load_family

            module.check_family(load_family(model["pretrained"]))
        report = module.make_plan(quiet=True)
    except (ValueError, FileNotFoundError, OSError, TypeError, yaml.YAMLError) as err:
        print(f"clipmill train plan: error: {_one_line(err)}", file=sys.stderr)
        return 2
    print(format_plan(report))
    path = Path(out or Path(trainer.get("default_root_dir") or ".") / "plan.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"plan written to {path}")
    return 0 if report["total"]["used_clips"] else 1
