"""Closed vocabularies shared by curation and training.

A reject reason or status outside these sets is a bug, so both halves import
them from here instead of spelling strings inline.
"""

from __future__ import annotations

from typing import Literal

VideoStatus = Literal["ok", "error", "duplicate"]
VIDEO_STATUSES: tuple[str, ...] = ("ok", "error", "duplicate")

# Why a candidate clip was not kept. Later stages add their reason here first.
REJECT_REASONS: tuple[str, ...] = (
    "too_short",
    "transition",
    "corrupt",  # a damaged stretch of the source: decode errors, lost or concealed frames
    "low_motion",
    "high_motion",
    "blank",
    "blurry",
    "text_overlay",
    "duplicate",
    "low_clip_score",
    "low_aesthetic",
    "no_caption",
    "error",
    "manual",  # a person rejected it in `clipmill review` (OUT/overrides.jsonl)
)

# Where a caption came from, weakest last (issue: captions).
CAPTION_SOURCES: tuple[str, ...] = (
    "sidecar_timed",
    "sidecar_video",
    "vlm",
    "clip_zeroshot",
    "filename",
    "manual",  # written by a person in `clipmill review`; it replaces the others
)


# Which side of the leakage-safe split a kept clip went to (`clipmill pack --val.fraction`).
SPLITS: tuple[str, ...] = ("train", "val")


def check_reasons(reasons: list[str]) -> list[str]:
    """Return `reasons` unchanged, raising if any is outside the vocabulary."""
    unknown = [r for r in reasons if r not in REJECT_REASONS]
    if unknown:
        raise ValueError(f"unknown reject reason(s) {unknown}; known: {list(REJECT_REASONS)}")
    return reasons
