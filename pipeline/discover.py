"""Stage 0 (driver side): turn the user's inputs into a sorted list of candidate files.

Inputs may be files, folders (walked recursively), glob patterns, list files
(`.txt` one path per line, `.csv`/`.parquet` with a `path` column), local paths
or any fsspec URL. Whether a file is a video is decided later by its content
(probe); here we only note whether the user named it explicitly (then a
non-video is an error row) or it was found in a folder walk (then a non-video
is silently ignored).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

LIST_SUFFIXES = (".txt", ".csv", ".parquet")
GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Candidate:
    path: str
    explicit: bool
    """Named by the user (or a list file), not found by walking a folder."""


def is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _strip_file_scheme(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def read_list_file(path: str) -> list[str]:
    """Paths from a .txt (one per line, # comments) or .csv/.parquet `path` column."""
    suffix = Path(path).suffix.lower()
    if suffix == ".txt":
        import fsspec

        with fsspec.open(path, "rt", encoding="utf-8-sig") as f:
            lines = [ln.strip() for ln in f]
        return [ln for ln in lines if ln and not ln.startswith("#")]
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pq.read_table(path) if suffix == ".parquet" else pacsv.read_csv(path)
    if "path" not in table.column_names:
        raise ValueError(f"list file {path} has no 'path' column")
    return [p for p in table.column("path").to_pylist() if p]


def _walk_local(root: Path, exclude: Path | None) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        # Never ingest our own output (users often put --output inside the footage folder).
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and (exclude is None or (here / d).resolve() != exclude)
        )
        found += [str(here / f) for f in sorted(filenames) if not f.startswith(".")]
    return found


def _expand_url(url: str) -> list[Candidate]:
    import fsspec

    fs, _, paths = fsspec.get_fs_token_paths(url)
    out = []
    for p in paths:
        if fs.isdir(p):
            out += [Candidate(fs.unstrip_protocol(f), False) for f in sorted(fs.find(p))]
        elif fs.exists(p):
            out.append(Candidate(fs.unstrip_protocol(p), True))
    return out


def expand_inputs(
    inputs: list[str], exclude: str | Path | None = None
) -> tuple[list[Candidate], list[str]]:
    """Return (candidates sorted and de-duplicated by path, inputs that matched nothing)."""
    exclude_path = Path(exclude).resolve() if exclude else None
    cands: dict[str, Candidate] = {}
    missing: list[str] = []

    def add(c: Candidate) -> None:
        prev = cands.get(c.path)
        cands[c.path] = Candidate(c.path, c.explicit or (prev.explicit if prev else False))

    for raw in inputs:
        if is_url(raw):
            found = _expand_url(raw)
            missing += [] if found else [raw]
            for c in found:
                add(c)
            continue
        path = _strip_file_scheme(raw)
        if GLOB_CHARS & set(path) and not os.path.exists(path):
            matches = sorted(glob.glob(path, recursive=True))
            missing += [] if matches else [raw]
            for m in matches:
                for f in _walk_local(Path(m), exclude_path) if os.path.isdir(m) else [m]:
                    add(Candidate(f, os.path.isfile(m)))
        elif os.path.isdir(path):
            for f in _walk_local(Path(path), exclude_path):
                add(Candidate(f, False))
        elif os.path.isfile(path) and Path(path).suffix.lower() in LIST_SUFFIXES:
            base = os.path.dirname(path)
            for p in read_list_file(path):
                # Relative entries are relative to the list file, not to the cwd.
                p = p if is_url(p) or os.path.isabs(p) else os.path.join(base, p)
                found, lost = expand_inputs([p], exclude)
                missing += lost
                for c in found:
                    add(Candidate(c.path, True))
        elif os.path.isfile(path):
            add(Candidate(path, True))
        else:
            missing.append(raw)
    return [cands[k] for k in sorted(cands)], missing
