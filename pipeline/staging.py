"""Per-video staging under OUT/work/: what makes a run resumable.

A video is built in `work/videos/{video_id}.partial/` by the split, transcode
(and filter) stages; the finalize stage renames it to `work/videos/{video_id}/`
(clips' mp4 and jpg files plus `record.json`). The rename is atomic, so after
a `kill -9` a video is either wholly there or not at all. The record carries a
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
from pipeline.lowres import LowresRecorder
from pipeline.split import Splitter
from pipeline.transcode import transcode_video

# Keys of the split stage's working state that never leave the stage.
_SCRATCH = ("frame_times", "blank_mask", "transition_mask", "cuts")
# Files only the stages between split and finalize read.
SCRATCH_FILES = ("lowres.u8", "lowres.json", "stats.npy")


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


def partial_dir(work: Path, video_id: str) -> Path:
    """Where a video's clips are built; renamed to `video_dir` when complete."""
    return work / "videos" / f"{video_id}.partial"


class SplitStage:
    """Ray Data stage (1:1): analyse one video into candidate clips.

    Starts the video's `.partial` staging folder afresh (a retried or resumed
    video never sees a previous attempt's files) and records the low-res
    samples the filter stages read. Rows cross stages as one JSON string:
    nested, often-empty lists of optional fields give Arrow no stable schema.
    """

    def __init__(self, cfg: SplitConfig, work: str) -> None:
        self.splitter, self.cfg, self.work = Splitter(cfg), cfg, Path(work)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        video = json.loads(row["video"])
        folder = partial_dir(self.work, video["video_id"])
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        recorder = LowresRecorder(folder, self.cfg.sample_fps)
        try:
            video = self.splitter(video, sink=recorder)
            recorder.finish()
        finally:
            recorder.close()
        for key in _SCRATCH:
            video.pop(key, None)
        video["stage_dir"] = str(folder)
        return {"video": json.dumps(video)}


class TranscodeStage:
    """Ray Data stage (1:N clips): one ffmpeg pass writes the video's clip mp4s."""

    def __init__(self, cfg: TranscodeConfig) -> None:
        self.cfg = cfg

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        video = json.loads(row["video"])
        if video["status"] == "ok":
            transcode_video(video, self.cfg, Path(video["stage_dir"]))
        return {"video": json.dumps(video)}


class FinalizeStage:
    """Ray Data stage (1:1): hashes, thumbnails, record; the atomic rename that marks done."""

    def __init__(self, fp: str, thumbnails: bool) -> None:
        self.fp, self.thumbnails = fp, thumbnails

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        video = json.loads(row["video"])
        folder = Path(video.pop("stage_dir"))
        for clip in video["clips"]:
            self._finish_clip(clip, folder)
        for name in SCRATCH_FILES:
            (folder / name).unlink(missing_ok=True)
        video["fingerprint"] = self.fp
        (folder / "record.json").write_text(json.dumps(video, sort_keys=True))
        final = folder.with_name(video["video_id"])
        shutil.rmtree(final, ignore_errors=True)
        os.replace(folder, final)
        return {
            "video_id": video["video_id"],
            "status": video["status"],
            "n_clips": len(video["clips"]),
        }

    def _finish_clip(self, clip: dict[str, Any], folder: Path) -> None:
        path = folder / f"{clip['clip_id']}.mp4"
        if clip["reject_reasons"] or not path.exists():
            path.unlink(missing_ok=True)
            return
        clip["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
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
