"""Source `sidecar_video`: text about the whole video, given to each of its clips.

Looked up next to `video.mp4`, in this order:
- `video.txt`: the whole file is one caption;
- `video.json` / `video.info.json` (yt-dlp): its `caption`, `description` and `title` strings;
- `captions.csv` / `captions.parquet` in the video's folder: rows (path, caption) whose path,
  relative to that folder or absolute, or whose file name, is the video's.

A per-folder table is read once per actor and kept (`FolderTables`), since every
video of the folder asks for it.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
from pathlib import Path

from pipeline.captions.text import (
    Candidate,
    CaptionError,
    clean_text,
    decode_text,
    folder_of,
    is_url,
    name_of,
    read_bytes,
    shorten,
    sibling,
)

JSON_KEYS = ("caption", "description", "title")
TABLE_NAMES = ("captions.csv", "captions.parquet")


def text_file_captions(video_path: str) -> list[str]:
    data = read_bytes(sibling(video_path, ".txt"))
    if data is None:
        return []
    text = clean_text(decode_text(data, name_of(sibling(video_path, ".txt"))))
    return [text] if text else []


def json_captions(video_path: str) -> list[str]:
    """Strings under caption/description/title of `video.json` and `video.info.json`."""
    out = []
    for suffix in (".json", ".info.json"):
        path = sibling(video_path, suffix)
        data = read_bytes(path)
        if data is None:
            continue
        try:
            doc = json.loads(decode_text(data, name_of(path)))
        except ValueError as exc:
            raise CaptionError(f"{name_of(path)}: invalid JSON ({exc})") from None
        if not isinstance(doc, dict):
            continue  # a bare list is a timed transcript (sidecar_timed reads it)
        for key in JSON_KEYS:
            if isinstance(doc.get(key), str) and (text := clean_text(doc[key])):
                out.append(text)
    return out


class FolderTables:
    """Per-folder `captions.csv`/`.parquet` tables, read once: {video key: [captions]}."""

    def __init__(self) -> None:
        self._tables: dict[str, dict[str, list[str]]] = {}

    def captions(self, video_path: str) -> list[str]:
        folder = folder_of(video_path)
        if folder not in self._tables:
            self._tables[folder] = _read_tables(folder)
        table = self._tables[folder]
        keys = (_key(video_path, folder), name_of(video_path))
        return [c for k in dict.fromkeys(keys) for c in table.get(k, [])]


def _key(path: str, folder: str) -> str:
    """A table path normalised so that 'a.mp4', './a.mp4' and '/abs/dir/a.mp4' match."""
    if is_url(path) or is_url(folder):
        base = path if is_url(path) else f"{folder}/{path}"
        scheme, rest = base.split("://", 1)
        return f"{scheme}://{posixpath.normpath(rest)}"
    p = Path(path)
    return os.path.normpath(p if p.is_absolute() else Path(folder) / p)


def _read_tables(folder: str) -> dict[str, list[str]]:
    import pyarrow as pa

    table: dict[str, list[str]] = {}
    for name in TABLE_NAMES:
        path = f"{folder}/{name}" if is_url(folder) else str(Path(folder) / name)
        data = read_bytes(path)
        if data is None:
            continue
        try:
            rows = _parse_table(data, name)
        except (pa.ArrowException, ValueError, KeyError) as exc:
            raise CaptionError(f"{name}: cannot read ({str(exc).splitlines()[0]})") from None
        for raw_path, caption in rows:
            text = clean_text(str(caption or ""))
            if raw_path and text:
                for key in (_key(str(raw_path), folder), name_of(str(raw_path))):
                    table.setdefault(key, []).append(text)
    return table


def _parse_table(data: bytes, name: str) -> list[tuple[object, object]]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if name.endswith(".csv"):
        # Decoded here, not by Arrow: captions.csv files come from spreadsheets in any encoding.
        text = decode_text(data, name).encode("utf-8")
        tbl = pacsv.read_csv(io.BytesIO(text))
    else:
        tbl = pq.read_table(io.BytesIO(data))
    missing = [c for c in ("path", "caption") if c not in tbl.column_names]
    if missing:
        raise ValueError(f"no column {missing[0]!r}; found {tbl.column_names}")
    return list(zip(tbl.column("path").to_pylist(), tbl.column("caption").to_pylist(), strict=True))


def video_captions(
    video_path: str, tables: FolderTables, max_chars: int, errors: list[str]
) -> list[Candidate]:
    """Every whole-video caption of `video_path`, in lookup order, without repeats.

    A broken file is reported into `errors` and does not hide what the others give.
    """
    texts: list[str] = []
    for reader in (text_file_captions, json_captions, tables.captions):
        try:
            texts += reader(video_path)
        except CaptionError as exc:
            errors.append(str(exc))
    return [Candidate(shorten(t, max_chars), "sidecar_video") for t in dict.fromkeys(texts)]
