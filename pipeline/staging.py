"""Per-video staging under OUT/work/: what makes a run resumable.

A finished video is a folder `work/videos/{video_id}/` holding its clips' mp4
(and jpg) files and `record.json`; it appears by an atomic rename, so after a
`kill -9` a video is either wholly there or not at all. The record carries a
fingerprint of the settings that shaped it; a changed setting re-does the video.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from pipeline.config import CurateConfig, SplitConfig, TranscodeConfig
from pipeline.split import Splitter
from pipeline.transcode import transcode_video

# Keys of the split stage's working state that never leave the stage.
_SCRATCH = ("frame_times", "blank_mask", "transition_mask", "cuts")


def fingerprint(cfg: CurateConfig) -> str:
    """Hash of the settings that change a staged video's clips (not resources)."""
    parts = {}
    for name in ("split", "transcode"):
        section = dict(getattr(cfg, name).__dict__)
        section.pop("resources", None)
        parts[name] = section
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def video_dir(work: Path, video_id: str) -> Path:
    return work / "videos" / video_id


def load_staged(work: Path, video_id: str, fp: str) -> dict[str, Any] | None:
    """The staged record of a finished video made with the same settings, else None."""
    path = video_dir(work, video_id) / "record.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("fingerprint") == fp else None


class SplitStage:
    """Ray Data stage wrapper (1:1): JSON row in/out around `Splitter`.

    Rows cross stages as one JSON string: nested, often-empty lists of optional
    fields do not give Arrow a stable schema across blocks.
    """

    def __init__(self, cfg: SplitConfig) -> None:
        self.splitter = Splitter(cfg)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        video = self.splitter(json.loads(row["video"]))
        for key in _SCRATCH:
            video.pop(key, None)
        return {"video": json.dumps(video)}


class StageWriter:
    """Ray Data stage (1:1): transcode one video's clips and stage them atomically."""

    def __init__(self, cfg: TranscodeConfig, work: str, fp: str, thumbnails: bool) -> None:
        self.cfg, self.work, self.fp, self.thumbnails = cfg, Path(work), fp, thumbnails

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        video = json.loads(row["video"])
        final = video_dir(self.work, video["video_id"])
        tmp = final.with_name(f"{final.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if video["status"] == "ok":
            transcode_video(video, self.cfg, tmp)
            for clip in video["clips"]:
                self._finish_clip(clip, tmp)
        video["fingerprint"] = self.fp
        (tmp / "record.json").write_text(json.dumps(video, sort_keys=True))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        return {
            "video_id": video["video_id"],
            "status": video["status"],
            "n_clips": len(video["clips"]),
        }

    def _finish_clip(self, clip: dict[str, Any], folder: Path) -> None:
        path = folder / f"{clip['clip_id']}.mp4"
        if clip["reject_reasons"] or not path.exists():
            return
        data = path.read_bytes()
        clip["sha256"] = hashlib.sha256(data).hexdigest()
        if self.thumbnails:
            try:
                (folder / f"{clip['clip_id']}.jpg").write_bytes(middle_jpeg(path))
            except Exception as exc:  # noqa: BLE001 - a thumbnail is optional
                clip["errors"] = f"thumbnail: {exc}"[:300]


def middle_jpeg(path: Path, quality: int = 90) -> bytes:
    """JPEG of the clip's middle frame."""
    import av
    import cv2

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        target = max(0, (stream.frames or 1) // 2)
        frame = None
        for i, f in enumerate(c.decode(stream)):
            frame = f
            if i >= target:
                break
    if frame is None:
        raise ValueError("no frame")
    bgr = frame.to_ndarray(format="bgr24")
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("jpeg encode failed")
    return buf.tobytes()
