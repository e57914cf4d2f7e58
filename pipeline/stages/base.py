"""What every per-clip scoring stage shares: the loop over one video's clips.

A scorer (motion, technical, phash, text) takes one video's row, skips a video
that is not `ok`, scores each scoreable clip, turns a clip's failure into an
`error` reason on that clip (never a crashed job) and hands the row on. Only
`enabled` and `score` differ, so that is all a subclass writes. CLIP keeps its
own loop because it batches frames across clips (`pipeline.stages.clip_embed`),
but uses `scoreable` and `fail` from here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def scoreable(video: dict[str, Any]) -> list[dict[str, Any]]:
    """The clips a scoring stage looks at: transcoded and not rejected by a hard reason."""
    folder = Path(video.get("stage_dir") or "")
    return [
        c
        for c in video.get("clips", [])
        if not c["reject_reasons"] and (folder / f"{c['clip_id']}.mp4").exists()
    ]


def fail(clip: dict[str, Any], stage: str, exc: Exception) -> None:
    """Record a scoring failure on the clip: an `error` reason and a one-line message."""
    if "error" not in clip["reject_reasons"]:
        clip["reject_reasons"] = [*clip["reject_reasons"], "error"]
    line = f"{stage}: {type(exc).__name__}: {exc}"[:300]
    clip["errors"] = f"{clip['errors']}\n{line}" if clip.get("errors") else line


class ClipScorer:
    """Ray Data stage (1:1) base: `score` every scoreable clip of one video, in place."""

    name = "score"
    """the stage's name at the start of a clip's error line"""

    def enabled(self) -> bool:
        return True

    def score(self, clip: dict[str, Any], folder: Path, video: dict[str, Any]) -> None:
        raise NotImplementedError

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        video = json.loads(row["video"])
        if video["status"] == "ok" and self.enabled():
            folder = Path(video["stage_dir"])
            for clip in scoreable(video):
                try:
                    self.score(clip, folder, video)
                except Exception as exc:  # noqa: BLE001 - a bad clip is a row, not a crash
                    fail(clip, self.name, exc)
        return {"video": json.dumps(video)}
