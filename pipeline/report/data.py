"""What the report shows, read from a curated output's manifests (never from the shards).

In:  OUT/clips.parquet, OUT/videos.parquet, OUT/summary.json (its config and what-if).
Out: one JSON-able dict the page embeds: totals, per-video seconds, the clip rows (as
     columns + row arrays, the compact form for 10,000 clips), score histograms with the
     run's thresholds, and the what-if curves.

Totals are recounted from clips.parquet rather than copied from summary.json, so the page
always agrees with the manifest it sits beside (a re-pack or an override rewrites both).
Nothing that differs between two runs of the same clips goes in (the folder's name, the
run's `ray` section, package versions): curated with or without Ray, resumed or copied, the
page is the same bytes.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from pipeline.pack.decide import FILTERS
from pipeline.pack.pack import tally

NEEDED = ("clips.parquet", "videos.parquet", "summary.json")
# Every score column of the manifest, in the order the histograms are drawn.
SCORES = (
    "motion_score",
    "motion_min",
    "blank_fraction",
    "sharpness",
    "text_area",
    "clip_score",
    "aesthetic",
    "sample_weight",
)
# The columns of each clip row sent to the page (`preview` and `video` are added here).
COLUMNS = (
    "clip_id",
    "video",
    "start_frame",
    "end_frame",
    "start_s",
    "end_s",
    "duration_s",
    "kept",
    "reject_reasons",
    "caption",
    "duplicate_of",
    "errors",
    "override",  # a person's corrections (pipeline/review), when the manifest has them
    "split",  # train or val, with --val.fraction
    *SCORES,
)
BINS = 24


class NotCuratedError(ValueError):
    """The folder given is not the output of `clipmill curate`."""


def check_curated(out: Path) -> None:
    """Raise NotCuratedError naming the first manifest that is missing."""
    if not out.is_dir():
        raise NotCuratedError(f"OUT {str(out)!r} is not a folder")
    for name in NEEDED:
        if not (out / name).is_file():
            raise NotCuratedError(
                f"OUT {str(out)!r} is not a curated output: no {name} (run `clipmill curate`)"
            )


def _round(value: Any) -> Any:
    """Floats to 6 significant digits: the page needs no more, and 10,000 rows stay small."""
    if isinstance(value, float):
        return None if math.isnan(value) else float(f"{value:.6g}")
    return value


def clip_rows(clips: list[dict], video_index: dict[str, int], media: dict[str, list]) -> list:
    """One array per clip in COLUMNS order, plus its [kind, path] preview (or null)."""
    rows = []
    for c in clips:
        row = [_round(c.get(k)) for k in COLUMNS]
        row[1] = video_index.get(c["video_id"], -1)
        rows.append([*row, media.get(c["clip_id"])])
    return rows


def video_rows(videos: list[dict], clips: list[dict]) -> list[dict[str, Any]]:
    """Per video: its facts and where its seconds went (kept, rejected, trimmed at cuts)."""
    mine: dict[str, list[dict]] = {}
    for c in clips:
        mine.setdefault(c["video_id"], []).append(c)
    rows = []
    for v in videos:
        # A duplicate video shares its video_id with the first copy, which owns the clips.
        own = mine.get(v["video_id"], []) if v["status"] == "ok" else []
        kept_s = sum(c["duration_s"] for c in own if c["kept"])
        rejected_s = sum(c["duration_s"] for c in own if not c["kept"])
        duration = v["duration_s"] or 0.0
        trimmed = max(0.0, duration - kept_s - rejected_s) if v["status"] == "ok" else 0.0
        rows.append(
            {
                "video_id": v["video_id"],
                "source_path": v["source_path"],
                "status": v["status"],
                "error": v["error"],
                "duplicate_of": v["duplicate_of"],
                "duration_s": _round(duration),
                "n_clips": len(own),
                "n_kept": sum(c["kept"] for c in own),
                "kept_s": _round(kept_s),
                "rejected_s": _round(rejected_s),
                "trimmed_s": _round(trimmed),
            }
        )
    return rows


def totals(videos: list[dict], clips: list[dict]) -> dict[str, Any]:
    """The run's counts, as summary.json counts them (`pack.tally`)."""
    t = tally(videos, clips)
    return {
        "videos": dict(sorted(Counter(v["status"] for v in videos).items())),
        "clips": len(clips),
        "kept": t["kept"],
        "rejected": len(clips) - t["kept"],
        "rejected_by_reason": dict(sorted(t["by_reason"].items())),
        "seconds": {
            "input": _round(t["input_s"]),
            "kept": _round(t["kept_s"]),
            "rejected": _round(t["rejected_s"]),
            "rejected_by_reason": {k: _round(v) for k, v in sorted(t["secs_by_reason"].items())},
            "trimmed_at_cuts": _round(t["trimmed_s"]),
        },
    }


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def threshold(config: dict[str, Any], flag: str) -> Any:
    for part in flag.split("."):
        config = config.get(part, {}) if isinstance(config, dict) else {}
    return config if isinstance(config, int | float) and not isinstance(config, bool) else None


def histogram(clips: list[dict], score: str, config: dict[str, Any]) -> dict[str, Any] | None:
    """Counts of kept and rejected clips per bin; log-spaced when the scores span decades
    (motion and sharpness do), with every threshold on that score inside the range."""
    marks = [
        {"flag": f.flag, "bound": f.bound, "reason": f.reason, "value": threshold(config, f.flag)}
        for f in FILTERS
        if f.score == score and threshold(config, f.flag) is not None
    ]
    values = [(c[score], c["kept"]) for c in clips if _finite(c.get(score))]
    if not values:
        return None
    xs = np.array([v for v, _ in values], dtype=np.float64)
    kept = np.array([k for _, k in values], dtype=bool)
    span = np.concatenate([xs, [m["value"] for m in marks]])
    lo, hi = float(span.min()), float(span.max())
    log = lo > 0 and hi / lo > 100
    if log:
        edges = np.geomspace(lo, hi, BINS + 1)
    else:
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, BINS + 1)
    return {
        "score": score,
        "log": bool(log),
        "edges": [_round(float(e)) for e in edges],
        "kept": np.histogram(xs[kept], edges)[0].tolist(),
        "rejected": np.histogram(xs[~kept], edges)[0].tolist(),
        "missing": len(clips) - len(values),
        "thresholds": marks,
    }


def what_if(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The yield curves pack recorded (seconds kept against one threshold's value)."""
    curves = []
    for flag, entry in sorted(summary.get("what_if", {}).items()):
        points = entry.get("kept_s") or []
        if len(points) >= 2:
            curves.append(
                {
                    "flag": flag,
                    "reason": entry.get("reason"),
                    "chosen": entry.get("chosen"),
                    "points": points,
                }
            )
    return curves


def report_data(out: Path, media: dict[str, list], *, review: bool = False) -> dict[str, Any]:
    """Everything the page shows; `media`: clip_id -> [kind, path relative to OUT]."""
    check_curated(out)
    clips = pq.read_table(out / "clips.parquet").to_pylist()
    videos = pq.read_table(out / "videos.parquet").to_pylist()
    summary = json.loads((out / "summary.json").read_text())
    config = summary.get("config", {})
    index = {v["video_id"]: i for i, v in enumerate(videos) if v["status"] == "ok"}
    hists = [histogram(clips, s, config) for s in SCORES]
    return {
        "review": review,
        "totals": totals(videos, clips),
        "videos": video_rows(videos, clips),
        "columns": [*COLUMNS, "preview"],
        "clips": clip_rows(clips, index, media),
        "histograms": [h for h in hists if h],
        "what_if": what_if(summary),
    }
