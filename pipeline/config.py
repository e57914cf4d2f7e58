"""Typed configuration of `clipmill curate`: one frozen dataclass per section.

Each section validates itself in `__post_init__` and names the command-line flag
in its message, so a bad value stops the run before any work, in one line.
The command line (`--split.max_clip_s 10`) and YAML files (`configs/curate/`)
fill the same fields through jsonargparse.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the flag."""


def _check(ok: bool, flag: str, why: str) -> None:
    if not ok:
        raise ConfigError(f"--{flag} {why}")


@dataclass(frozen=True)
class StageResources:
    """How Ray runs one stage: per-task CPUs/GPUs, pool size, rows per batch."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    concurrency: int | None = None
    """Actor-pool size for model stages (None: as many as the CPUs allow)."""

    def check(self, section: str) -> None:
        _check(self.num_cpus > 0, f"{section}.num_cpus", f"must be > 0, got {self.num_cpus}")
        _check(self.num_gpus >= 0, f"{section}.num_gpus", f"must be >= 0, got {self.num_gpus}")
        _check(
            self.concurrency is None or self.concurrency >= 1,
            f"{section}.concurrency",
            f"must be >= 1, got {self.concurrency}",
        )

    def ray_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.num_gpus:
            args["num_gpus"] = self.num_gpus
        return args


@dataclass(frozen=True)
class RayConfig:
    address: str | None = None
    """Ray cluster to join ('auto', 'ray://host:10001'); None starts a local Ray
    sized to this machine; 'none' runs every stage in this process (no Ray)."""
    num_cpus: int | None = None
    """CPUs of the local Ray instance (None: all of this machine's)."""

    def __post_init__(self) -> None:
        _check(
            self.num_cpus is None or self.num_cpus >= 1,
            "ray.num_cpus",
            f"must be >= 1, got {self.num_cpus}",
        )


@dataclass(frozen=True)
class ProbeConfig:
    resources: StageResources = field(default_factory=lambda: StageResources(num_cpus=0.5))

    def __post_init__(self) -> None:
        self.resources.check("probe.resources")


Detector = Literal["content", "adaptive", "transnetv2", "fixed"]


@dataclass(frozen=True)
class SplitConfig:
    detector: Detector = "content"
    """content|adaptive (PySceneDetect), transnetv2 (learned), fixed (windows only, no cuts)."""
    min_clip_s: float = 2.0
    """Scenes shorter than this (after trimming) are kept as rows with reason too_short."""
    max_clip_s: float = 10.0
    """Longer scenes are cut into equal consecutive windows no longer than this."""
    trim_s: float = 0.1
    """Seconds dropped on each side of a cut, so no frame of a neighbouring shot leaks in."""
    analysis_width: int = 96
    """Width of the one low-resolution decode every detector and per-frame statistic uses."""
    content_threshold: float = 27.0
    adaptive_threshold: float = 3.0
    transnet_threshold: float = 0.5
    soft_window_s: float = 0.15
    """Half-window of the soft-transition (dissolve/fade) guard; 0 turns it off."""
    sample_fps: float = 4.0
    """Analysis frames per second kept on disk for the filter stages (0: none)."""
    blank_luma: float = 16.0
    """Frames whose mean luma (0-255) is below this and nearly uniform count as blank."""
    resources: StageResources = field(default_factory=StageResources)

    def __post_init__(self) -> None:
        _check(
            self.detector in ("content", "adaptive", "transnetv2", "fixed"),
            "split.detector",
            f"must be content|adaptive|transnetv2|fixed, got {self.detector!r}",
        )
        _check(self.min_clip_s > 0, "split.min_clip_s", f"must be > 0, got {self.min_clip_s}")
        _check(
            self.max_clip_s >= self.min_clip_s,
            "split.max_clip_s",
            f"must be >= --split.min_clip_s ({self.min_clip_s}), got {self.max_clip_s}",
        )
        _check(self.trim_s >= 0, "split.trim_s", f"must be >= 0, got {self.trim_s}")
        _check(
            16 <= self.analysis_width <= 1024,
            "split.analysis_width",
            f"must be in [16, 1024], got {self.analysis_width}",
        )
        _check(
            0 < self.transnet_threshold < 1,
            "split.transnet_threshold",
            f"must be in (0, 1), got {self.transnet_threshold}",
        )
        _check(self.soft_window_s >= 0, "split.soft_window_s", "must be >= 0")
        _check(0 <= self.sample_fps <= 60, "split.sample_fps", "must be in [0, 60]")
        self.resources.check("split.resources")


@dataclass(frozen=True)
class TranscodeConfig:
    fps: float | None = None
    """Output frame rate; None keeps the source's (average) rate."""
    short_side: int | None = 360
    """Output short side in pixels (never upscaled); None keeps the source size."""
    crf: int = 23
    preset: str = "veryfast"
    threads: int = 2
    """x264 threads; fixed so the output bytes are reproducible."""
    keep_audio: bool = False
    resources: StageResources = field(default_factory=StageResources)

    def __post_init__(self) -> None:
        _check(
            self.fps is None or 1 <= self.fps <= 240,
            "transcode.fps",
            f"must be in [1, 240], got {self.fps}",
        )
        _check(
            self.short_side is None or 16 <= self.short_side <= 4320,
            "transcode.short_side",
            f"must be in [16, 4320], got {self.short_side}",
        )
        _check(0 <= self.crf <= 51, "transcode.crf", f"must be in [0, 51], got {self.crf}")
        presets = (
            "ultrafast",
            "superfast",
            "veryfast",
            "faster",
            "fast",
            "medium",
            "slow",
            "slower",
            "veryslow",
        )
        _check(self.preset in presets, "transcode.preset", f"must be one of {presets}")
        _check(1 <= self.threads <= 64, "transcode.threads", "must be in [1, 64]")
        self.resources.check("transcode.resources")


@dataclass(frozen=True)
class ShardsConfig:
    max_samples: int = 1000
    max_bytes: int = 1 << 30
    thumbnails: bool = True
    """Store a middle-frame `{clip_id}.jpg` next to each clip."""

    def __post_init__(self) -> None:
        _check(self.max_samples >= 1, "shards.max_samples", "must be >= 1")
        _check(self.max_bytes >= 1 << 16, "shards.max_bytes", "must be >= 65536")


@dataclass(frozen=True)
class CurateConfig:
    """Everything `clipmill curate` needs besides its inputs and output folder."""

    ray: RayConfig = field(default_factory=RayConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    transcode: TranscodeConfig = field(default_factory=TranscodeConfig)
    shards: ShardsConfig = field(default_factory=ShardsConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = {
    "ray": RayConfig,
    "probe": ProbeConfig,
    "split": SplitConfig,
    "transcode": TranscodeConfig,
    "shards": ShardsConfig,
}


def build_config(values: dict[str, Any]) -> CurateConfig:
    """Build a validated CurateConfig from nested plain dicts (YAML or parsed CLI)."""
    unknown = set(values) - set(SECTIONS)
    if unknown:
        raise ConfigError(f"unknown config section(s) {sorted(unknown)}; known: {list(SECTIONS)}")
    sections = {}
    for name, cls in SECTIONS.items():
        raw = dict(values.get(name) or {})
        if "resources" in raw and isinstance(raw["resources"], dict):
            raw["resources"] = StageResources(**raw["resources"])
        known = {f.name for f in dataclasses.fields(cls)}
        extra = set(raw) - known
        if extra:
            raise ConfigError(f"--{name}.{sorted(extra)[0]} is not a known option")
        sections[name] = cls(**raw)
    return CurateConfig(**sections)
