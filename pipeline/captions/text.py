"""What every caption source shares: the error type, reading sidecars, cleaning text.

Sidecars come from people and many tools, so reading is forgiving: any BOM,
UTF-8, UTF-16, then cp1252 and latin-1 (which never fails). Only a file that is
not text at all (NUL bytes), or absurdly large, is an error.
"""

from __future__ import annotations

import codecs
import html
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

MAX_SIDECAR_BYTES = 20 << 20  # 20 MiB: far above any subtitle file, far below a video


class CaptionError(ValueError):
    """A sidecar cannot be used; one line, naming the file. Becomes an error on the video row."""


@dataclass(frozen=True)
class Candidate:
    """One caption found for a clip: the text, where it came from, and how far to trust it."""

    text: str
    source: str
    score: float | None = None

    def to_dict(self) -> dict:
        score = None if self.score is None else round(float(self.score), 4)
        return {"text": self.text, "source": self.source, "score": score}


def is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def sibling(path: str, suffix: str) -> str:
    """The path of a file next to `path` with the same stem and another suffix ('.srt')."""
    if is_url(path):
        head, _, name = path.rpartition("/")
        stem = name.rsplit(".", 1)[0] if "." in name else name
        return f"{head}/{stem}{suffix}"
    p = Path(path)
    return str(p.with_name(p.stem + suffix))


def folder_of(path: str) -> str:
    if is_url(path):
        return path.rpartition("/")[0]
    return str(Path(path).parent)


def name_of(path: str) -> str:
    return posixpath.basename(urlsplit(path).path) if is_url(path) else Path(path).name


def read_bytes(path: str) -> bytes | None:
    """The bytes of a local path or fsspec URL; None when there is no such file."""
    if not is_url(path):
        p = Path(path)
        if not p.is_file():
            return None
        if p.stat().st_size > MAX_SIDECAR_BYTES:
            raise CaptionError(f"{p.name}: larger than {MAX_SIDECAR_BYTES >> 20} MiB")
        return p.read_bytes()
    import fsspec

    fs, inner = fsspec.core.url_to_fs(path)
    if not fs.isfile(inner):
        return None
    if (fs.size(inner) or 0) > MAX_SIDECAR_BYTES:
        raise CaptionError(f"{name_of(path)}: larger than {MAX_SIDECAR_BYTES >> 20} MiB")
    return fs.cat_file(inner)


def decode_text(data: bytes, name: str) -> str:
    """Text from bytes in whatever encoding a subtitle tool chose."""
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: its BOM starts the same way
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            start = len(bom) if codec == "utf-8" else 0
            return data[start:].decode(codec, errors="replace")
    head = data[:4096]
    if b"\x00" in head:
        # UTF-16 without a BOM has a NUL in every other byte of ASCII text.
        if head[1::2].count(0) > 0.4 * len(head[1::2]):
            return data.decode("utf-16-le", errors="replace")
        if head[0::2].count(0) > 0.4 * len(head[0::2]):
            return data.decode("utf-16-be", errors="replace")
        raise CaptionError(f"{name}: not a text file (binary bytes)")
    for codec in ("utf-8", "cp1252"):
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


_TAG = re.compile(r"<[^>\n]{0,200}>")  # <i>, <font …>, <c.yellow>, <v Bob>, <00:01.000>
_ASS = re.compile(r"\{\\[^}]*\}")  # {\an8} positioning left in SRTs converted from ASS
_SOUND = re.compile(r"\[[^\]\n]{0,80}\]|\([A-Z][A-Z .'-]{1,40}\)")  # [MUSIC], (APPLAUSE)
_URL = re.compile(r"https?://\S+|www\.\S+")
_DASH = re.compile(r"(^|\s)[-–—]\s+")  # speaker-change dashes at the start of a line
_NOTES = re.compile(r"[♪♫#]+")
_SPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Plain words from subtitle or description markup: no tags, sound cues, URLs or notes."""
    text = html.unescape(_ASS.sub(" ", _TAG.sub(" ", text)))
    text = _NOTES.sub(" ", _URL.sub(" ", _SOUND.sub(" ", text)))
    text = _DASH.sub(r"\1", text.replace("\\N", " "))
    text = _SPACE.sub(" ", text).strip(" -–—:;,")
    return text if any(ch.isalnum() for ch in text) else ""


def shorten(text: str, max_chars: int) -> str:
    """`text` cut at the last word boundary before `max_chars`."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars].rsplit(" ", 1)[0]
    return (cut or text[:max_chars]).rstrip(" ,;:")
