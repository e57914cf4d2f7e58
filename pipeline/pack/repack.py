"""`clipmill pack OUT [--filters.text.max_area 0.05 …]`: re-decide a finished run, no model.

Every score of a curated run is stored (the clip records under OUT/work/, the
mp4s and embeddings of every clip no hard reason rejected), and reasons are
only derived from scores and thresholds when packing. So loosening or
tightening a threshold, a dedup rule or the weights is a re-pack: the run's
config is read back from OUT/summary.json, the flags given here override it,
and the same `pack` as `clipmill curate` rewrites shards, manifests and summary.
A flag that would change clips or scores (split, transcode, motion fps, CLIP
model, …) is refused: that needs `clipmill curate` again. A person's corrections
(OUT/overrides.jsonl) are applied after the thresholds on every pack; split/join
edits need `clipmill curate` to re-cut their videos, and pack names those videos.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from pipeline.config.curate import SECTIONS, ConfigError, CurateConfig, build_config
from pipeline.config.scores import is_free
from schemas.layout import work_dir

# Besides pack-time fields: what packing reads, or what no stored result depends on.
REPACKABLE_PREFIXES = ("ray.", "probe.", "shards.max_samples", "shards.max_bytes")


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """{"section.field": value} of a (nested) dataclass or dict."""
    items = dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj
    out: dict[str, Any] = {}
    for key, value in items.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return out


def _marked(section: Any, prefix: str) -> set[str]:
    """Flags of the fields marked pack_time or runtime (and every `resources`)."""
    found = set()
    for f in dataclasses.fields(section):
        value, flag = getattr(section, f.name), f"{prefix}.{f.name}"
        if is_free(f):
            found.add(flag)
        elif dataclasses.is_dataclass(value):
            found |= _marked(value, flag)
    return found


def refused_changes(stored: CurateConfig, new: CurateConfig) -> list[str]:
    """Flags whose new value would need the stages to run again."""
    free = set().union(*(_marked(getattr(new, name), name) for name in SECTIONS))
    old, now = flatten(stored), flatten(new)
    return [
        flag
        for flag in now
        if now[flag] != old.get(flag)
        and not flag.startswith(REPACKABLE_PREFIXES)
        and not any(flag == f or flag.startswith(f + ".") for f in free)
    ]


def stored_config(out: Path) -> dict[str, Any]:
    """The config of the last pack: summary.json's, or work/config.json if a pack died."""
    summary, backup = out / "summary.json", work_dir(out) / "config.json"
    if summary.is_file():
        return json.loads(summary.read_text())["config"]
    if backup.is_file():
        return json.loads(backup.read_text())
    raise FileNotFoundError(f"{out} has no summary.json: run `clipmill curate` first")


def repack(out: Path, cfg: CurateConfig) -> dict[str, Any]:
    """Re-decide and rewrite a finished run in `out` under `cfg`; returns the new summary."""
    import pyarrow.parquet as pq

    from pipeline.pack.pack import invalidate, pack
    from pipeline.staging import fingerprint, load_staged, score_fingerprint

    stored = build_config(stored_config(out))
    refused = refused_changes(stored, cfg)
    if refused:
        raise ConfigError(
            f"--{refused[0]} changes clips or scores: re-run `clipmill curate` for that"
        )
    videos = pq.read_table(out / "videos.parquet").to_pylist()
    for i, v in enumerate(videos):
        v["order"] = i
    fp, sfp = fingerprint(cfg), score_fingerprint(cfg)
    ok = [v for v in videos if v["status"] == "ok"]
    staged = {v["video_id"]: load_staged(work_dir(out), v["video_id"], fp) for v in ok}
    lost = [
        v["source_path"]
        for v in ok
        if staged[v["video_id"]] is None or staged[v["video_id"]].get("score_fingerprint") != sfp
    ]
    if lost:
        raise FileNotFoundError(f"{out}/work has no usable staged result for {lost[0]}")
    invalidate(out)
    return pack(out, videos, staged, cfg)


def pack_parser(defaults: dict[str, Any]):
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(
        prog="clipmill pack",
        exit_on_error=False,
        description="Re-apply thresholds, dedup and weights to a curated output (no model runs).",
    )
    parser.add_argument("output", help="a folder written by `clipmill curate`")
    for name, cls in SECTIONS.items():
        parser.add_class_arguments(cls, name)
    parser.set_defaults({k: v for k, v in flatten(defaults).items()})
    return parser


def pack_main(argv: list[str]) -> int:
    from jsonargparse import ArgumentError

    from pipeline.report.page import write_report_quietly

    prog = "clipmill pack"
    if not argv or argv[0].startswith("-"):
        print(
            f"usage: {prog} OUT [--section.field value …] [--val.fraction F --val.seed S]\n"
            f"  applies OUT/overrides.jsonl after the thresholds",
            file=sys.stderr,
        )
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    out = Path(argv[0])
    try:
        parser = pack_parser(stored_config(out))
        ns = parser.parse_args(argv)
        built = parser.instantiate(ns)
        cfg = CurateConfig(**{k: built[k] for k in SECTIONS})
        summary = repack(out, cfg)
        write_report_quietly(out)  # the page follows the new manifests
    except (ArgumentError, ConfigError, ValueError, TypeError) as exc:
        text = " ".join(str(exc).split())
        print(f"{prog}: error: {text}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    secs = summary["seconds"]
    print(
        f"packed: {summary['clips']['kept']}/{summary['clips']['candidates']} clips kept, "
        f"{secs['kept']:.1f}s of {secs['input']:.1f}s, {len(summary['shards'])} shards -> {out}"
    )
    pending = summary.get("overrides", {}).get("pending_videos") or []
    if pending:
        print(
            f"pending cut edits (split/join) in {len(pending)} video(s): re-run `clipmill "
            f"curate` with the same inputs and --output {out} to re-cut {', '.join(pending)}"
        )
    return 0
