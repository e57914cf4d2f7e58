"""Configuration of the scoring stages and of the decisions taken from their scores.

Scoring stages record numbers only; reasons come from those numbers and the
`pack_time` fields (thresholds, dedup and weight rules) when the output is
packed, so `clipmill pack OUT --filters.text.max_area 0.05` re-decides in
seconds without running a model. Every other field of these sections shapes
the scores and is part of the staged videos' fingerprints (`pipeline.staging`).
A threshold set to null turns its filter off; a clip whose score is unknown
(null: stage off, or no frames to score) passes it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.config.base import check, pack_time, runtime
from pipeline.config.resources import StageResources

# Runs in-process and cheaply: one actor is enough and spares the memory of many.
_LIGHT = lambda: StageResources(num_cpus=0.25, concurrency=1)  # noqa: E731


@dataclass(frozen=True)
class MotionFilterConfig:
    enabled: bool = True
    fps: float = 2.0
    """Flow pairs per second, taken from the split's sampled frames (<= --split.sample_fps)."""
    width: int = 64
    """Width the sampled frames are shrunk to for optical flow (Farneback)."""
    grid: int = 3
    """motion_min is the least-moving cell of a grid x grid split of the frame."""
    min_score: float | None = pack_time(0.001)
    """low_motion below this mean flow (frame widths per second)."""
    max_score: float | None = pack_time(None)
    """high_motion (jitter, whip pans) above this; off by default."""
    min_region: float | None = pack_time(None)
    """low_motion when the least-moving grid cell is below this (frozen overlays); off."""
    resources: StageResources = field(default_factory=_LIGHT)

    def __post_init__(self) -> None:
        check(0 < self.fps <= 60, "filters.motion.fps", f"must be in (0, 60], got {self.fps}")
        check(16 <= self.width <= 1024, "filters.motion.width", "must be in [16, 1024]")
        check(1 <= self.grid <= 8, "filters.motion.grid", "must be in [1, 8]")
        _non_negative("filters.motion", min_score=self.min_score, max_score=self.max_score)
        self.resources.check("filters.motion.resources")


@dataclass(frozen=True)
class BlankFilterConfig:
    enabled: bool = True
    max_std: float = 5.0
    """A frame whose luma standard deviation (0-255) is below this is near-uniform."""
    max_fraction: float | None = pack_time(0.3)
    """blank when more than this fraction of the clip's frames is near-uniform or black."""
    resources: StageResources = field(default_factory=_LIGHT)
    """Of the technical stage (blank and blur share one read of the per-frame statistics)."""

    def __post_init__(self) -> None:
        check(self.max_std >= 0, "filters.blank.max_std", "must be >= 0")
        _fraction("filters.blank.max_fraction", self.max_fraction)
        self.resources.check("filters.blank.resources")


@dataclass(frozen=True)
class BlurFilterConfig:
    enabled: bool = True
    min_sharpness: float | None = pack_time(10.0)
    """blurry below this median variance of the Laplacian at --split.analysis_width."""

    def __post_init__(self) -> None:
        _non_negative("filters.blur", min_sharpness=self.min_sharpness)


@dataclass(frozen=True)
class TextFilterConfig:
    enabled: bool = True
    frames: int = 1
    """Frames read per clip (1-3, evenly spread; 1 is the middle frame)."""
    max_side: int = 320
    """Frames are shrunk to this long side before detection: cost grows with the pixels."""
    min_confidence: float = 0.5
    """Recognised lines below this confidence are ignored."""
    max_area: float | None = pack_time(0.03)
    """text_overlay above this fraction of the frame covered by text boxes."""
    resources: StageResources = field(default_factory=StageResources)

    def __post_init__(self) -> None:
        check(1 <= self.frames <= 3, "filters.text.frames", f"must be 1-3, got {self.frames}")
        check(64 <= self.max_side <= 4096, "filters.text.max_side", "must be in [64, 4096]")
        check(0 <= self.min_confidence <= 1, "filters.text.min_confidence", "must be in [0, 1]")
        _fraction("filters.text.max_area", self.max_area)
        self.resources.check("filters.text.resources")


@dataclass(frozen=True)
class FiltersConfig:
    """The CPU filters: motion, blank and blur read the split's low-res frames, text the mp4."""

    motion: MotionFilterConfig = field(default_factory=MotionFilterConfig)
    blank: BlankFilterConfig = field(default_factory=BlankFilterConfig)
    blur: BlurFilterConfig = field(default_factory=BlurFilterConfig)
    text: TextFilterConfig = field(default_factory=TextFilterConfig)


TINY_CLIP = "clipmill-tiny"


@dataclass(frozen=True)
class ClipConfig:
    enabled: bool | None = None
    """null (auto): on when `pretrained` names weights. Random weights score nothing real and
    cost a model load per worker, so a run without weights skips CLIP unless told `true`."""
    model: str = TINY_CLIP
    """open_clip model name (ViT-B-32, …); clipmill-tiny is a random-weight test model."""
    pretrained: str | None = None
    """open_clip tag (downloads) or a local checkpoint path; null: random weights."""
    frames: int = 4
    """Frames per clip whose image embeddings are averaged."""
    aesthetic_head: str | None = None
    """Path of a LAION-style aesthetic MLP (state dict of Linear layers) on the embeddings."""
    device: str = runtime("auto")
    """auto (cuda when visible), cpu, cuda, cuda:1, …"""
    batch_size: int = runtime(64)
    """Frames per forward pass."""
    threads: int = runtime(1)
    """torch CPU threads; fixed so embeddings are bit-for-bit the same in any runner."""
    min_score: float | None = pack_time(None)
    """low_clip_score below this caption-image cosine; off: it depends on the model."""
    min_aesthetic: float | None = pack_time(None)
    """low_aesthetic below this (LAION's scale is 1-10); off until a head is given."""
    resources: StageResources = field(
        default_factory=lambda: StageResources(num_cpus=1, concurrency=1, own_pool=True)
    )
    """One actor loads one CLIP model; its own pool, so `concurrency` bounds the copies."""

    def __post_init__(self) -> None:
        if self.enabled is None:  # frozen: resolve auto once, so every reader sees a bool
            object.__setattr__(self, "enabled", self.pretrained is not None)
        check(1 <= self.frames <= 32, "clip.frames", f"must be in [1, 32], got {self.frames}")
        check(self.batch_size >= 1, "clip.batch_size", "must be >= 1")
        check(self.threads >= 1, "clip.threads", "must be >= 1")
        check(
            self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"),
            "clip.device",
            f"must be auto, cpu, cuda[:N] or mps, got {self.device!r}",
        )
        if self.pretrained and _looks_like_path(self.pretrained):
            check(
                os.path.isfile(self.pretrained),
                "clip.pretrained",
                f"is not a file: {self.pretrained}",
            )
        if self.aesthetic_head:
            check(
                os.path.isfile(self.aesthetic_head),
                "clip.aesthetic_head",
                f"is not a file: {self.aesthetic_head}",
            )
        self.resources.check("clip.resources")


def _looks_like_path(value: str) -> bool:
    return os.sep in value or value.endswith((".pt", ".pth", ".bin", ".safetensors"))


@dataclass(frozen=True)
class DedupConfig:
    """Collection-wide duplicates, decided at pack time among clips no filter rejected."""

    exact: bool = pack_time(True)
    """Same mp4 bytes (sha256)."""
    perceptual: bool = True
    """Perceptual hashes of sampled frames; needs no model. Hashing happens while curating,
    so turning it on needs `clipmill curate` (the matching is at pack time)."""
    hash_fps: float = 2.0
    """Frames per second hashed, from the split's sampled frames (<= --split.sample_fps)."""
    max_hamming: int = pack_time(8)
    """Two frames match when their 64-bit DCT hashes differ in at most this many bits."""
    min_matched: float = pack_time(0.5)
    """Clips match when this fraction of the shorter one's frames match the other's, in
    order at one time offset (a repeat matches along its whole length; two shots that
    merely cross a similar picture once do not)."""
    semantic: Literal["auto", "on", "off"] = pack_time("auto")
    """CLIP-embedding duplicates; auto: only with pretrained weights (random ones mean nothing)."""
    threshold: float = pack_time(0.95)
    """Semantic duplicates at or above this cosine."""
    keep: Literal["best", "all"] = pack_time("best")
    """best: keep one per cluster (longest, then highest quality); all: keep every
    member and let sample_weight count the cluster once."""
    resources: StageResources = field(default_factory=_LIGHT)

    def __post_init__(self) -> None:
        check(0 < self.hash_fps <= 60, "dedup.hash_fps", "must be in (0, 60]")
        check(0 <= self.max_hamming <= 32, "dedup.max_hamming", "must be in [0, 32]")
        check(0 < self.min_matched <= 1, "dedup.min_matched", "must be in (0, 1]")
        check(-1 <= self.threshold <= 1, "dedup.threshold", "must be in [-1, 1]")
        check(self.semantic in ("auto", "on", "off"), "dedup.semantic", "must be auto|on|off")
        check(self.keep in ("best", "all"), "dedup.keep", "must be best|all")
        self.resources.check("dedup.resources")


QUALITY_SCORES = ("aesthetic", "clip_score", "motion_score", "sharpness")


@dataclass(frozen=True)
class WeightsConfig:
    """sample_weight = quality x rarity, normalised to mean 1 over the kept clips."""

    rarity: Literal["auto", "cluster", "density", "none"] = pack_time("auto")
    """cluster: 1/size of the clip's kept duplicate cluster; density: 1/(kept clips within
    --weights.density_threshold cosine); auto: density with pretrained CLIP, else cluster."""
    density_threshold: float = pack_time(0.9)
    rarity_power: float = pack_time(0.5)
    """rarity = 1 / n ** power: 1 counts a cluster once, 0.5 softens it."""
    quality_from: tuple[str, ...] = pack_time(("aesthetic",))
    """Scores whose percentile rank (mapped to 0.5-1.5) multiply the weight."""

    def __post_init__(self) -> None:
        check(
            self.rarity in ("auto", "cluster", "density", "none"),
            "weights.rarity",
            "must be auto|cluster|density|none",
        )
        check(-1 <= self.density_threshold <= 1, "weights.density_threshold", "in [-1, 1]")
        check(0 <= self.rarity_power <= 2, "weights.rarity_power", "must be in [0, 2]")
        bad = [q for q in self.quality_from if q not in QUALITY_SCORES]
        check(not bad, "weights.quality_from", f"must name scores among {QUALITY_SCORES}")


def _non_negative(section: str, **values: float | None) -> None:
    for name, value in values.items():
        check(value is None or value >= 0, f"{section}.{name}", f"must be >= 0, got {value}")


def _fraction(flag: str, value: float | None) -> None:
    check(value is None or 0 <= value <= 1, flag, f"must be in [0, 1], got {value}")


def is_free(f: dataclasses.Field) -> bool:
    """Whether a field can change without re-scoring: pack-time, runtime or `resources`."""
    return bool(f.metadata.get("pack_time") or f.metadata.get("runtime") or f.name == "resources")


def scoring_params(section: Any) -> dict[str, Any]:
    """The fields of a section that shape its scores (not pack-time, runtime or resources;
    an `added` field only when it is not at its default)."""
    out = {}
    for f in dataclasses.fields(section):
        if is_free(f):
            continue
        value = getattr(section, f.name)
        if f.metadata.get("added") and value == f.default:
            continue  # as before the field existed: no re-run of existing outputs
        out[f.name] = scoring_params(value) if dataclasses.is_dataclass(value) else value
    return out
