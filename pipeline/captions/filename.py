"""Source `filename`, the weakest: the file's name turned into words.

`beach_sunset-drone.mp4` → "beach sunset drone"; `IMG_20230101_1234.MOV` says
nothing and gives no caption. When the name itself is only camera or export
boilerplate, the folder's name is tried (`surfing/GOPR0042.MP4` → "surfing").
It never has a score: it only says what the person who named the file thought.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from pipeline.captions.text import Candidate, is_url

# Words camera apps, editors and this project's own tools put in file names.
_GENERIC_WORDS = """video videos clip clips img image dsc dscn dscf mvi vid mov gopr gp gh gx
    pxl dji untitled final copy edit edited export exported raw footage output out sample test new
    file movie camera cam screen recording record capture shot take scene part mp4 mkv
    webm avi m4v whatsapp signal telegram tmp temp data input inputs media content"""
GENERIC = frozenset(_GENERIC_WORDS.split())
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_SPLIT = re.compile(r"[^0-9A-Za-zÀ-ÿ']+")


def words_of(name: str) -> list[str]:
    """Meaningful lower-case words of one path component (no counters, dates or boilerplate)."""
    words = _SPLIT.split(_CAMEL.sub(" ", name))
    return [
        w.lower()
        for w in words
        if len(w) > 1 and not any(ch.isdigit() for ch in w) and w.lower() not in GENERIC
    ]


def filename_caption(path: str) -> str | None:
    """Words of the file's stem, else of its folder; None when neither says anything."""
    p = PurePosixPath(unquote(urlsplit(path).path) if is_url(path) else path.replace("\\", "/"))
    for part in (p.stem, p.parent.name):
        if words := words_of(part):
            return " ".join(words)
    return None


def filename_captions(path: str) -> list[Candidate]:
    text = filename_caption(path)
    return [Candidate(text, "filename")] if text else []
