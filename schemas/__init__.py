"""Typed records shared by `pipeline` (writes them) and `train` (reads them)."""

from schemas.records import (
    CLIP_FIELDS,
    CLIP_SCHEMA,
    VIDEO_FIELDS,
    VIDEO_SCHEMA,
    clip_json_schema,
    empty_clip,
    empty_video,
    validate_clip,
)
from schemas.vocab import CAPTION_SOURCES, REJECT_REASONS, VIDEO_STATUSES

__all__ = [
    "CAPTION_SOURCES",
    "CLIP_FIELDS",
    "CLIP_SCHEMA",
    "REJECT_REASONS",
    "VIDEO_FIELDS",
    "VIDEO_SCHEMA",
    "VIDEO_STATUSES",
    "clip_json_schema",
    "empty_clip",
    "empty_video",
    "validate_clip",
]
