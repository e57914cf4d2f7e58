"""`clipmill train plan` (train/finetune/plan.py) and the plan `clipmill train fit` logs.

The shards are conftest's MIXED clips: seven fit the tiny Wan grid in four buckets, three
are dropped (too short, uncaptioned, too small).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from train.cli import train_main
from train.finetune.buckets import BucketGrid, format_plan, plan, read_records
from train.finetune.plan import plan_main

REPO = Path(__file__).parents[3]
GRID = ["--data.frame_buckets", "[9, 17]", "--data.size_buckets", "[[32, 32], [32, 48]]",
        "--data.fps", "12"]  # fmt: skip


def files(root: Path) -> dict[str, int]:
    """Every file under `root` (relative path -> mtime in ns): what a command wrote."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def expected_report(shards: str) -> dict:
    return plan(read_records(shards), BucketGrid((9, 17), ((32, 32), (32, 48)), 12.0))


def table_rows(text: str) -> dict[str, int]:
    """Row name -> clips of the printed table ("17x32x32  3  5.2  42.9%", "drop too_short ...")."""
    rows = {}
    for line in text.splitlines():
        parts = line.rsplit(None, 3) if line.startswith("drop ") else line.split()
        if len(parts) >= 3 and parts[1].isdigit():
            rows[parts[0]] = int(parts[1])
    return rows


def test_plan_prints_the_buckets_and_writes_the_report(
    mixed_shards, mixed, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    shard_dir = Path(mixed_shards).parent
    before = files(shard_dir)
    argv = ["--data.shards", mixed_shards, *GRID, "--output", "out/plan.json"]
    assert plan_main(argv) == 0
    out = capsys.readouterr().out
    assert files(tmp_path) == {"out/plan.json": files(tmp_path)["out/plan.json"]}
    assert files(shard_dir) == before  # the shards are only read
    report = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert report == expected_report(mixed_shards)
    assert report["assignments"] == {k: v[-1] for k, v in mixed.items() if "x" in v[-1]}
    rows = table_rows(out)
    assert {k: rows[k] for k in ("9x32x32", "9x32x48", "17x32x32", "17x32x48")} == {
        "9x32x32": 1, "9x32x48": 1, "17x32x32": 3, "17x32x48": 2,
    }  # fmt: skip
    drops = {k: v for k, v in rows.items() if k.startswith("drop ")}
    assert drops == {"drop no_caption": 1, "drop no_size": 0, "drop no_timing": 0,
                     "drop too_short": 1, "drop too_small": 1}  # fmt: skip
    assert rows["used"] == 7 and rows["total"] == 10
    assert format_plan(report) in out and "out/plan.json" in out


def test_plan_checks_the_family_and_writes_to_the_run_folder(
    mixed_shards, tiny_pipeline, tmp_path, capsys, monkeypatch
):
    """With the YAML, --model.pretrained and no --output: <trainer.default_root_dir>/plan.json."""
    monkeypatch.chdir(tmp_path)
    config = str(REPO / "configs/train/wan_lora.yaml")
    argv = ["plan", "--config", config, "--data.shards", mixed_shards, *GRID,
            "--model.pretrained", str(tiny_pipeline("wan")), "--model.lora.rank", "4"]  # fmt: skip
    assert train_main(argv) == 0  # `clipmill train plan` is plan_main
    assert list(files(tmp_path)) == ["runs/wan_lora/plan.json"]  # the YAML's root dir
    report = json.loads((tmp_path / "runs/wan_lora/plan.json").read_text())
    assert report == expected_report(mixed_shards)
    assert "plan written to runs/wan_lora/plan.json" in capsys.readouterr().out


def test_plan_of_nothing_usable_exits_1(mixed_shards, tmp_path, capsys):
    argv = ["--data.shards", mixed_shards, *GRID, "--data.frame_buckets", "[33]",
            "--output", str(tmp_path / "plan.json")]  # fmt: skip
    assert plan_main(argv) == 1
    out = capsys.readouterr().out
    assert "WARNING: no clip fits the grid; most were dropped as too_short (9 of 10)" in out
    report = json.loads((tmp_path / "plan.json").read_text())
    assert report["total"]["used_clips"] == 0 and report["dropped"]["too_short"]["clips"] == 9


BAD = {
    "off_grid_frames": (["--data.frame_buckets", "[8, 16]"], "wan", "--data.frame_buckets"),
    "off_grid_size_ltx": (["--data.size_buckets", "[[32, 48]]"], "ltx", "--data.size_buckets"),
    "frames_unordered": (["--data.frame_buckets", "[17, 9]"], None, "--data.frame_buckets"),
    "unknown_field": (["--data.frame_bucketz", "[9]"], None, "--data.frame_bucketz"),
    "unknown_flag": (["--bogus", "1"], None, "--bogus"),
    "bad_yaml_value": (["--data.size_buckets", "[[32, 32"], None, "--data.size_buckets"),
    "no_value": (["--data.fps"], None, "--data.fps"),
    "not_a_pipeline": (["--model.pretrained", "no_such_dir"], None, "--model.pretrained"),
    "no_shards": (["--data.shards", "no_such_dir/*.tar"], None, "--data.shards"),
    "no_config": (["--config", "no_such.yaml"], None, "--config"),
    "bad_batch": (["--data.batch_size", "0"], None, "--data.batch_size"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_flags_exit_2_naming_the_flag(
    case, mixed_shards, tiny_pipeline, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    flags, family, flag = BAD[case]
    pretrained = ["--model.pretrained", str(tiny_pipeline(family))] if family else []
    capsys.readouterr()  # building the tiny pipeline reports progress
    argv = ["--data.shards", mixed_shards, *GRID, *pretrained, "--output", "out/plan.json", *flags]
    assert plan_main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"clipmill train plan: error: {flag}")
    assert not captured.out and not files(tmp_path)  # nothing printed or written


def test_fit_logs_the_same_plan_at_start(mixed_shards, tiny_pipeline, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    argv = ["fit", "--config", str(REPO / "configs/train/wan_lora.yaml"),
            "--model.pretrained", str(tiny_pipeline("wan")), "--data.shards", mixed_shards,
            *GRID, "--data.batch_size", "2", "--data.num_workers", "0",
            "--data.epoch_size", "2", "--trainer.max_steps", "1", "--trainer.logger", "false",
            "--trainer.default_root_dir", str(tmp_path / "run"), "--model.lora.rank", "4",
            "--model.gradient_checkpointing", "false"]  # fmt: skip
    assert train_main(argv) == 0
    table = format_plan(expected_report(mixed_shards))
    logged = [r.getMessage() for r in caplog.records if "bucket plan" in r.getMessage()]
    assert logged == ["bucket plan:\n" + table]  # once, before training
    assert os.path.isfile(tmp_path / "run" / "lora" / "pytorch_lora_weights.safetensors")
