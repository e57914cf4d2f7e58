"""Where a curate output keeps each video's staged clips: `OUT/work/videos/{video_id}/`.

Curation writes there (`pipeline.staging`) and reads it back when packing; training's
latent cache reads a rejected-but-staged clip's mp4 from there (`train.cache.sources`).
One owner for the layout, so the two halves cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path

WORK = "work"


def work_dir(out: Path) -> Path:
    """Staging of one curate output (`--output`): safe to delete after a finished run."""
    return out / WORK


def video_dir(work: Path, video_id: str) -> Path:
    """A finished video's folder: its clips' mp4, jpg and emb.npy files and `record.json`."""
    return work / "videos" / video_id


def partial_dir(work: Path, video_id: str) -> Path:
    """Where a video's clips are built; renamed to `video_dir` when complete."""
    return work / "videos" / f"{video_id}.partial"


def staged_clip(out: Path, video_id: str, clip_id: str) -> Path:
    """The staged mp4 of one clip of a curate output."""
    return video_dir(work_dir(out), video_id) / f"{clip_id}.mp4"
