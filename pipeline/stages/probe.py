"""Stage 1 (1:1 per file): hash the bytes and probe the container with PyAV.

Row in:  {"path": str, "explicit": bool, "order": int, "work_dir": str}
Row out: a video record (schemas.VIDEO_FIELDS) plus `explicit`, `order`,
         `local_path` (what later stages open) and `status` in
         ok | error | ignored (ignored = not a video, found by a folder walk).

The first frame is decoded too: "opens and has a video stream" is not enough
(a PNG renamed .mp4 opens as `png_pipe`), and a file whose first frame cannot
be decoded is better rejected here than halfway through a split.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path
from typing import Any

from pipeline.discover import is_url
from schemas import empty_video

VIDEO_SUFFIXES = {
    ".mp4",
    ".m4v",
    ".mov",
    ".mkv",
    ".webm",
    ".avi",
    ".mpg",
    ".mpeg",
    ".ts",
    ".mts",
    ".m2ts",
    ".wmv",
    ".flv",
    ".3gp",
    ".ogv",
    ".mxf",
    ".y4m",
    ".gif",
}
CHUNK = 1 << 20


def hash_file(path: str, copy_to: str | None = None) -> tuple[str, int]:
    """SHA-256 hex digest and size of a local path or fsspec URL (optionally copying it)."""
    import fsspec

    digest, size = hashlib.sha256(), 0
    with ExitStack() as stack:
        src = stack.enter_context(fsspec.open(path, "rb"))
        dst = stack.enter_context(open(copy_to + ".part", "wb")) if copy_to else None
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if dst:
                dst.write(chunk)
    if copy_to:
        os.replace(copy_to + ".part", copy_to)
    return digest.hexdigest(), size


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip().rstrip(":")[:300]


def inspect_container(path: str) -> dict[str, Any]:
    """Stream facts of the first video stream; raises ValueError when it is not a video."""
    import av

    with av.open(path, metadata_errors="ignore") as container:
        fmt = container.format.name
        if fmt.endswith("_pipe") or fmt == "image2":
            raise ValueError(f"an image ({fmt}), not a video")
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise ValueError(f"no video stream (has {', '.join(kinds)})")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frame = _first_frame(container, stream)
        if frame is None:
            raise ValueError("video stream has no decodable frame")
        rate = stream.average_rate or stream.guessed_rate or Fraction(0)
        base = stream.base_rate or rate
        rotation = int(getattr(frame, "rotation", 0) or 0) % 360
        width, height = frame.width, frame.height
        if rotation in (90, 270):
            width, height = height, width
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = (container.duration or 0) / 1e6
        return {
            "duration_s": duration,
            "fps": float(rate) if rate else None,
            "vfr": bool(rate and base and abs(float(base) - float(rate)) > 0.01 * float(rate)),
            "n_frames": stream.frames or None,
            "width": width,
            "height": height,
            "rotation": rotation,
            "codec": stream.codec_context.name,
            "pix_fmt": frame.format.name,
            "has_audio": bool(container.streams.audio),
        }


def _first_frame(container: Any, stream: Any) -> Any:
    """The first frame that decodes, or None: a broken packet at the start is damage for
    the split to place (a `corrupt` row), not a reason to drop the whole file."""
    import av

    for packet in container.demux(stream):
        try:
            for frame in packet.decode():
                return frame
        except av.error.InvalidDataError:
            continue
    return None


def probe_video(row: dict[str, Any]) -> dict[str, Any]:
    """Hash + probe one file; never raises for bad input (the error is data)."""
    path, explicit = row["path"], bool(row.get("explicit", True))
    out = empty_video(source_path=path, status="ok")
    out.update(explicit=explicit, order=int(row.get("order", 0)), local_path=path)
    try:
        local = path
        if is_url(path):
            # ffmpeg and PyAV need a local file for object-store URLs: fetch once, into work/.
            fetch_dir = Path(row["work_dir"]) / "fetch"
            fetch_dir.mkdir(parents=True, exist_ok=True)
            local = str(fetch_dir / hashlib.sha256(path.encode()).hexdigest()[:24])
            digest, size = hash_file(path, copy_to=local)
        else:
            digest, size = None, os.path.getsize(path)
        out["local_path"] = local
        out["size_bytes"] = size
        if size == 0:
            raise ValueError("empty file (0 bytes)")
        out.update(inspect_container(local))
        if digest is None:
            digest, _ = hash_file(local)
        out["video_id"] = digest[:16]
    except Exception as exc:  # noqa: BLE001 - any failure on user data is a row, not a crash
        looks_like_video = Path(path).suffix.lower() in VIDEO_SUFFIXES
        out["status"] = "error" if explicit or looks_like_video else "ignored"
        out["error"] = _one_line(exc)
    return out


def mark_duplicates(videos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Byte-identical files share a video_id: the first (by path order) wins."""
    first: dict[str, str] = {}
    for v in sorted(videos, key=lambda v: v["order"]):
        if v["status"] != "ok":
            continue
        vid = v["video_id"]
        if vid in first:
            v["status"], v["duplicate_of"] = "duplicate", first[vid]
        else:
            first[vid] = v["source_path"]
    return videos
