"""The `caption` config section: which caption sources run, in what order, and how.

Every field is a `--caption.<field>` flag (nested: `--caption.vlm.model`). A bad value stops
the run before any work, in one line naming the flag. Imports only `pipeline.config.base` and
`schemas`, so `pipeline.config.curate` can import this module without a cycle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipeline.config.base import ConfigError, check, runtime
from pipeline.config.resources import StageResources
from schemas.vocab import CAPTION_SOURCES

__all__ = [
    "DEFAULT_VOCABULARY",
    "CaptionConfig",
    "ConfigError",
    "VlmConfig",
    "ZeroShotConfig",
    "check_caption_against_clip",
    "resolve_vocabulary",
]

# The repository root, where `configs/` lives in a source checkout.
_REPO = Path(__file__).resolve().parents[2]
DEFAULT_VOCABULARY = "configs/caption/default.yaml"


def resolve_vocabulary(path: str) -> Path | None:
    """`path` as given (absolute or from the working directory), else from the repo root."""
    for candidate in (Path(path), _REPO / path):
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class ZeroShotConfig:
    """CLIP zero-shot tags composed into a short caption (source `clip_zeroshot`)."""

    vocabulary: str = DEFAULT_VOCABULARY
    """YAML with tag categories (subjects, motions, scenes, styles) and prompt templates."""
    templates: tuple[str, ...] = ()
    """Prompt templates with one {} for the tag; empty: the vocabulary file's own."""
    top_k: int = 1
    """At most this many tags per category."""
    margin: float = 0.01
    """A tag is used when its cosine beats the median cosine of its category by this much."""

    def __post_init__(self) -> None:
        check(1 <= self.top_k <= 5, "caption.zeroshot.top_k", f"must be 1-5, got {self.top_k}")
        check(0 <= self.margin <= 1, "caption.zeroshot.margin", "must be in [0, 1]")
        bad = [t for t in self.templates if t.count("{}") != 1]
        check(not bad, "caption.zeroshot.templates", f"need exactly one {{}} each, got {bad}")


@dataclass(frozen=True)
class VlmConfig:
    """A Hugging Face vision-language model that writes captions (source `vlm`)."""

    model: str | None = None
    """Local model folder or hub id (image-text-to-text: Qwen2-VL, LLaVA, SmolVLM, …)."""
    prompt: str = "Describe this video in one sentence: the main subject, its motion, the setting."
    frames: int = 4
    """Frames per clip, evenly spread."""
    input: Literal["images", "video"] = "images"
    """images: the frames as a multi-image prompt (any VLM); video: one video input
    (models whose processor takes `videos=`, e.g. Qwen2-VL, LLaVA-OneVision)."""
    max_new_tokens: int = 48
    batch_size: int = runtime(8)
    """Clips per generate() call."""
    device: str = runtime("auto")
    """auto (cuda when visible), cpu, cuda, cuda:1, …"""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = runtime("auto")
    """auto: bfloat16 on a GPU that supports it, else float32."""
    resources: StageResources = field(
        default_factory=lambda: StageResources(num_cpus=1, concurrency=1, own_pool=True)
    )
    """Of the VLM actor pool (its own: one model per actor): give it num_gpus on a GPU."""

    def __post_init__(self) -> None:
        check(1 <= self.frames <= 64, "caption.vlm.frames", f"must be 1-64, got {self.frames}")
        check(self.input in ("images", "video"), "caption.vlm.input", "must be images|video")
        check(1 <= self.max_new_tokens <= 1024, "caption.vlm.max_new_tokens", "must be 1-1024")
        check(self.batch_size >= 1, "caption.vlm.batch_size", "must be >= 1")
        check(bool(self.prompt.strip()), "caption.vlm.prompt", "must not be empty")
        check(
            self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"),
            "caption.vlm.device",
            f"must be auto, cpu, cuda[:N] or mps, got {self.device!r}",
        )
        check(
            self.dtype in ("auto", "float32", "bfloat16", "float16"),
            "caption.vlm.dtype",
            "must be auto|float32|bfloat16|float16",
        )
        if self.model and _looks_local(self.model):
            check(os.path.isdir(self.model), "caption.vlm.model", f"no folder {self.model}")
        self.resources.check("caption.vlm.resources")


def _looks_local(model: str) -> bool:
    # A hub id is "org/name"; anything else with a separator is a folder the user means.
    return model.startswith((".", "/", "~")) or model.count("/") > 1 or os.path.isdir(model)


@dataclass(frozen=True)
class CaptionConfig:
    """Caption sources in priority order, and how the primary caption is chosen."""

    sources: tuple[str, ...] = ("sidecar_timed", "sidecar_video", "filename")
    """Tried in this order: sidecar_timed, sidecar_video, vlm, clip_zeroshot, filename."""
    min_overlap: float = 0.5
    """A timed cue counts for a clip when their overlap is at least this fraction of the
    shorter of the two (so a long cue still captions each window cut from it)."""
    required: bool = False
    """Reject clips left without any caption (no_caption); off: kept for unconditional training."""
    primary: Literal["priority", "score"] = "priority"
    """priority: the first source in `sources` with a caption (score breaks ties within it);
    score: the best CLIP score among `trusted` sources (needs CLIP scores)."""
    trusted: tuple[str, ...] = ("sidecar_timed", "sidecar_video", "vlm", "clip_zeroshot")
    """Sources `primary: score` may choose from; the others only when no trusted one captioned."""
    clip_scores: Literal["auto", "on", "off"] = "auto"
    """Score every caption by CLIP cosine with the clip; auto: only with pretrained weights."""
    text_embeddings: bool = False
    """Store the primary caption's CLIP text embedding as {clip_id}.txt_emb.npy (float16)."""
    max_chars: int = 400
    """Longer captions are cut at a word boundary."""
    zeroshot: ZeroShotConfig = field(default_factory=ZeroShotConfig)
    vlm: VlmConfig = field(default_factory=VlmConfig)
    resources: StageResources = field(
        default_factory=lambda: StageResources(num_cpus=1, concurrency=1)
    )
    """Of the caption stage (sidecars, zero-shot, scoring); one CLIP text tower per actor."""

    def __post_init__(self) -> None:
        unknown = [s for s in self.sources if s not in CAPTION_SOURCES]
        check(not unknown, "caption.sources", f"unknown {unknown}; known: {CAPTION_SOURCES}")
        check(len(set(self.sources)) == len(self.sources), "caption.sources", "has a duplicate")
        unknown = [s for s in self.trusted if s not in CAPTION_SOURCES]
        check(not unknown, "caption.trusted", f"unknown {unknown}; known: {CAPTION_SOURCES}")
        check(0 < self.min_overlap <= 1, "caption.min_overlap", "must be in (0, 1]")
        check(self.primary in ("priority", "score"), "caption.primary", "must be priority|score")
        check(
            self.clip_scores in ("auto", "on", "off"), "caption.clip_scores", "must be auto|on|off"
        )
        check(
            not (self.primary == "score" and self.clip_scores == "off"),
            "caption.primary",
            "score needs CLIP scores (--caption.clip_scores auto|on)",
        )
        check(
            not (self.required and not self.sources),
            "caption.required",
            "needs at least one --caption.sources",
        )
        check(self.max_chars >= 16, "caption.max_chars", "must be >= 16")
        check(
            "vlm" not in self.sources or bool(self.vlm.model),
            "caption.vlm.model",
            "is required when vlm is in --caption.sources",
        )
        if "clip_zeroshot" in self.sources:
            check(
                resolve_vocabulary(self.zeroshot.vocabulary) is not None,
                "caption.zeroshot.vocabulary",
                f"is not a file: {self.zeroshot.vocabulary}",
            )
        self.resources.check("caption.resources")

    @property
    def needs_clip(self) -> bool:
        """Whether a caption feature needs CLIP (the stage also loads it, for the primary's
        `clip_score`, whenever the `--clip` section is on)."""
        return "clip_zeroshot" in self.sources or self.text_embeddings or self.clip_scores == "on"


def check_caption_against_clip(caption: CaptionConfig, clip: Any) -> None:
    """Cross-section check for `CurateConfig.__post_init__`: CLIP users need --clip.enabled."""
    if getattr(clip, "enabled", True):
        return
    for flag, on in (
        ("caption.sources", "clip_zeroshot" in caption.sources),
        ("caption.text_embeddings", caption.text_embeddings),
        ("caption.clip_scores", caption.clip_scores == "on"),
        ("caption.primary", caption.primary == "score"),
    ):
        if on:
            raise ConfigError(
                f"--{flag} needs CLIP: set --clip.pretrained (weights) or --clip.enabled true"
            )
