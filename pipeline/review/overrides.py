"""`OUT/overrides.jsonl`: a person's corrections, one JSON line per action.

    {"clip_id": "…", "action": "keep"|"reject"|"caption"|"split"|"join", "value": …, "time": "…"}

The file is append-only, so a correction is never lost to a crash mid-write: a torn
last line is skipped when reading and the next append starts on a fresh line. Later
lines win per (clip, kind), where keep and reject are one kind (the decision).

keep, reject and caption act on a clip at pack time (`apply_overrides`, after the
thresholds). split and join act on a video's cut list: they are turned into cut
edits in source frames (`cut_edits`), which `clipmill curate` hands to the split
stage of that video only. They are written in source frames, not clip ids, so they
still hold after the video was re-cut and its clip ids changed.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas.layout import staged_clip

FILE = "overrides.jsonl"
ACTIONS = ("keep", "reject", "caption", "split", "join")
KIND = {"keep": "decision", "reject": "decision", "caption": "caption", "split": "split"}
MAX_CAPTION = 2000  # characters: a caption, not a document
_APPEND_LOCK = threading.Lock()  # the review server appends from several threads


class OverrideError(ValueError):
    """An action that cannot be recorded; the message says why, for the person."""


def overrides_path(out: Path) -> Path:
    return Path(out) / FILE


def read_overrides(out: Path) -> list[dict[str, Any]]:
    """Every well-formed line, in file order; a torn or foreign line is skipped."""
    path = overrides_path(out)
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # the torn tail of a write that died, or a hand edit gone wrong
        if (
            isinstance(entry, dict)
            and isinstance(entry.get("clip_id"), str)
            and entry.get("action") in ACTIONS
        ):
            entries.append(entry)
    return entries


def latest(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries that still count (the last per clip and kind), in file order."""
    last: dict[tuple[str, str], int] = {}
    for i, e in enumerate(entries):
        last[(e["clip_id"], KIND.get(e["action"], e["action"]))] = i
    return [entries[i] for i in sorted(last.values())]


def append_override(out: Path, clip_id: str, action: str, value: Any) -> dict[str, Any]:
    """Append one (already validated) action durably; returns the line written."""
    entry = {
        "clip_id": clip_id,
        "action": action,
        "value": value,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path = overrides_path(out)
    line = json.dumps(entry, sort_keys=True) + "\n"
    with _APPEND_LOCK, open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell():
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                line = "\n" + line  # a torn last line stays alone (and is skipped)
        f.write(line.encode())
        f.flush()
        os.fsync(f.fileno())
    return entry


class Manifest:
    """What validation needs of a run's clips.parquet: each clip and its video's order."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.clips = {r["clip_id"]: r for r in rows}
        self.by_video: dict[str, list[dict[str, Any]]] = {}
        for r in sorted(rows, key=lambda r: (r["video_id"], r["start_frame"])):
            self.by_video.setdefault(r["video_id"], []).append(r)

    @classmethod
    def load(cls, out: Path) -> Manifest:
        import pyarrow.parquet as pq

        columns = ["clip_id", "video_id", "scene_index", "start_frame", "end_frame", "kept"]
        return cls(pq.read_table(Path(out) / "clips.parquet", columns=columns).to_pylist())

    def next_clip(self, clip_id: str) -> dict[str, Any] | None:
        rows = self.by_video[self.clips[clip_id]["video_id"]]
        at = next(i for i, r in enumerate(rows) if r["clip_id"] == clip_id)
        return rows[at + 1] if at + 1 < len(rows) else None


def validate(out: Path, manifest: Manifest, clip_id: Any, action: Any, value: Any) -> Any:
    """The value to record for this action, or OverrideError saying what is wrong."""
    if action not in ACTIONS:
        raise OverrideError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if not isinstance(clip_id, str) or clip_id not in manifest.clips:
        raise OverrideError(f"unknown clip id {str(clip_id)[:80]!r}")
    clip = manifest.clips[clip_id]
    if action in ("keep", "reject"):
        if value is not None:
            raise OverrideError(f"{action} takes no value")
        # Only clips a score rejected keep their mp4: a hard reason (too short, a
        # transition, an error) left nothing to put in a shard.
        if action == "keep" and not staged_clip(out, clip["video_id"], clip_id).is_file():
            raise OverrideError(f"{clip_id} has no staged mp4 (a hard reject): cannot keep")
        return None
    if action == "caption":
        if not isinstance(value, str) or not value.strip():
            raise OverrideError("caption must be a non-empty string")
        if len(value) > MAX_CAPTION or "\x00" in value:
            raise OverrideError(f"caption must be at most {MAX_CAPTION} characters, no NUL")
        return value.strip()
    if action == "split":
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok or not clip["start_frame"] < value < clip["end_frame"]:
            raise OverrideError(
                f"split frame must be an integer strictly inside "
                f"({clip['start_frame']}, {clip['end_frame']}), got {value!r}"
            )
        return value
    return _validate_join(manifest, clip, value)


def _validate_join(manifest: Manifest, clip: dict[str, Any], value: Any) -> str:
    """join's value is the next clip's id (filled in when not given, checked when given)."""
    nxt = manifest.next_clip(clip["clip_id"])
    if nxt is None:
        raise OverrideError(f"{clip['clip_id']} is the last clip of its video: nothing to join")
    if value is not None and value != nxt["clip_id"]:
        raise OverrideError(f"join joins with the next clip {nxt['clip_id']}, got {value!r}")
    if nxt["scene_index"] == clip["scene_index"]:
        # Two windows of one shot: --split.max_clip_s cut there, not a detector.
        raise OverrideError("these are windows of one shot (--split.max_clip_s), not a cut")
    return nxt["clip_id"]


def _frames(clip_id: str) -> tuple[str, int, int]:
    """(video_id, start frame, end frame) read off a clip id (its documented format)."""
    video_id, start, end = clip_id.rsplit("_", 2)
    return video_id, int(start), int(end)


def cut_edits(entries: list[dict[str, Any]]) -> dict[str, list[list[Any]]]:
    """{video_id: [["add", frame, frame] | ["remove", start, end], …]} in file order.

    split adds a cut at its frame; join removes every cut and transition mark from the
    end of its clip to the end of the next one (its boundary, or the dissolve it was).
    Applied in order, a later join can undo an earlier split and vice versa.
    """
    edits: dict[str, list[list[Any]]] = {}
    for e in latest(entries):
        try:
            video_id, _, end = _frames(e["clip_id"])
            if e["action"] == "split" and isinstance(e["value"], int):
                edits.setdefault(video_id, []).append(["add", e["value"], e["value"]])
            elif e["action"] == "join" and isinstance(e["value"], str):
                _, _, next_end = _frames(e["value"])
                edits.setdefault(video_id, []).append(["remove", end, next_end])
        except ValueError:
            continue  # a hand-written line with a malformed id: nothing to apply
    return edits


def apply_overrides(
    clips: list[dict[str, Any]], entries: list[dict[str, Any]], folders: dict[str, Path]
) -> dict[str, Any]:
    """keep / reject / caption on the decided clips (in place); the report for summary.json.

    Runs after the thresholds and dedup: a person's correction outranks every rule. An
    entry whose clip is gone (its video was re-cut since) is counted as stale.
    """
    by_id = {c["clip_id"]: c for c in clips}
    report = {"applied": 0, "stale": 0, "refused": []}
    for e in latest(entries):
        clip = by_id.get(e["clip_id"])
        if e["action"] in ("split", "join"):
            continue
        if clip is None:
            report["stale"] += 1
            continue
        if e["action"] == "keep":
            if not (folders[clip["clip_id"]] / f"{clip['clip_id']}.mp4").is_file():
                report["refused"].append(clip["clip_id"])  # a hard reject: no mp4 to ship
                continue
            clip["kept"], clip["reject_reasons"] = True, []
        elif e["action"] == "reject":
            clip["kept"] = False
            others = [r for r in clip["reject_reasons"] if r != "manual"]
            clip["reject_reasons"] = [*others, "manual"]
        elif isinstance(e["value"], str) and e["value"].strip():
            text = e["value"].strip()[:MAX_CAPTION]
            # The person's caption replaces the others: caption rotation in training must
            # not bring the wrong ones back.
            clip["caption"] = text
            clip["captions"] = [{"text": text, "source": "manual", "score": None}]
        else:
            continue
        clip["override"] = [*(clip.get("override") or []), e["action"]]
        report["applied"] += 1
    return report
