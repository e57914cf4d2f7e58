"""Typed configuration of `clipmill curate`: one frozen dataclass per section.

Each section validates itself in `__post_init__` and names the command-line flag
in its message, so a bad value stops the run before any work, in one line.
The command line (`--split.max_clip_s 10`) and YAML files (`configs/curate/`)
fill the same fields through jsonargparse.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.config.base import ConfigError, added, check, pack_time, runtime
from pipeline.config.captions import CaptionConfig, check_caption_against_clip
from pipeline.config.resources import StageResources
from pipeline.config.scores import ClipConfig, DedupConfig, FiltersConfig, WeightsConfig

__all__ = ["SECTIONS", "ConfigError", "CurateConfig", "StageResources", "build_config"]


@dataclass(frozen=True)
class RayConfig:
    address: str | None = None
    """Ray cluster to join ('auto', 'host:6379'); None starts a local Ray sized to
    this machine; 'none' runs every stage in this process (no Ray). Ray Client
    ('ray://…') cannot run Ray Data here: submit with `ray job submit` instead."""
    num_cpus: int | None = None
    """CPUs of the local Ray instance (None: all of this machine's)."""
    fuse: bool = True
    """Run consecutive CPU-only stages in one actor pool (a GPU stage keeps its own)."""

    def __post_init__(self) -> None:
        # Seen with Ray 2.60: Ray Data over Ray Client dies in its executor ('Worker' object
        # has no attribute 'core_worker'); fail at start with the way that works.
        check(
            not (self.address or "").startswith("ray://"),
            "ray.address",
            "ray:// (Ray Client) cannot run Ray Data pipelines: run `ray job submit --address "
            "http://HEAD:8265 -- clipmill curate … --ray.address auto` instead",
        )
        check(
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
Hwaccel = Literal["none", "cuda"]
Encoder = Literal["libx264", "h264_nvenc"]
ENCODERS = ("libx264", "h264_nvenc")
HWACCELS = ("none", "cuda")


def _check_hwaccel(value: str, flag: str) -> None:
    check(value in HWACCELS, flag, f"must be none|cuda, got {value!r}")


@dataclass(frozen=True)
class SplitConfig:
    detector: Detector = "adaptive"
    """adaptive|content (PySceneDetect), transnetv2 (learned), fixed (windows only, no cuts).
    adaptive, PySceneDetect's own default: a cut is a frame difference 3x its neighbours'
    (and at least 15), so a cut between two shots of like colour and brightness is found,
    which content's fixed 27 misses (3 of 182 hard cuts in `make demo`'s footage, each a
    kept clip holding two shots and two captions; benchmarks/bench_cuts.py)."""
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
    soft_shift_ratio: float = 0.4
    """A guard candidate whose change a shift of the picture explains down to this fraction
    is a pan, not a dissolve (measured: slow pans over soft content <= 0.23, dissolves and
    fades >= 0.64); 0 turns the check off."""
    flash_max_frames: int = 3
    """Longest flash (a camera flash, lightning) held out of the cut detector, so it never
    splits a shot; a cut right next to one is still found. 0 turns it off."""
    flash_min_jump: float = 12.0
    """How much brighter (mean luma, 0-255) than the frames just before and after it every
    frame of a flash is. Measured false cuts of 1-3 frame boosts: adaptive from +18,
    transnetv2 from +30, content from +40."""
    sample_fps: float = 4.0
    """Analysis frames per second kept on disk for the filter stages (0: none)."""
    blank_luma: float = 16.0
    """Frames whose mean luma (0-255) is below this and nearly uniform count as blank."""
    hwaccel: Hwaccel = runtime("none")
    """cuda: the analysis decode runs on the GPU's NVDEC (`-hwaccel cuda`), probed at start.
    How the stage runs, not what it finds (no re-do on resume): the frames differ only by
    the deblocking filter, which NVDEC always applies and the CPU decode skips."""
    chunk_s: float | None = runtime(300.0)
    """A video at least twice this long is analysed in spans of about this many seconds,
    each on its own worker, and joined: the same cuts, masks and samples as one worker's
    pass (`pipeline/stages/spans.py`), so a long recording keeps a node busy. Each span
    costs an ffmpeg start, a seek and a few seconds of look-around decoded twice. null:
    one analysis per video. Not applied to a stream without timestamps, or one whose
    decode shows damage (that video is analysed in one piece)."""
    resources: StageResources = field(default_factory=StageResources)

    def __post_init__(self) -> None:
        check(
            self.detector in ("content", "adaptive", "transnetv2", "fixed"),
            "split.detector",
            f"must be content|adaptive|transnetv2|fixed, got {self.detector!r}",
        )
        check(self.min_clip_s > 0, "split.min_clip_s", f"must be > 0, got {self.min_clip_s}")
        check(
            self.max_clip_s >= self.min_clip_s,
            "split.max_clip_s",
            f"must be >= --split.min_clip_s ({self.min_clip_s}), got {self.max_clip_s}",
        )
        check(self.trim_s >= 0, "split.trim_s", f"must be >= 0, got {self.trim_s}")
        check(
            16 <= self.analysis_width <= 1024,
            "split.analysis_width",
            f"must be in [16, 1024], got {self.analysis_width}",
        )
        check(
            0 < self.transnet_threshold < 1,
            "split.transnet_threshold",
            f"must be in (0, 1), got {self.transnet_threshold}",
        )
        check(self.soft_window_s >= 0, "split.soft_window_s", "must be >= 0")
        check(
            0 <= self.soft_shift_ratio <= 1,
            "split.soft_shift_ratio",
            f"must be in [0, 1], got {self.soft_shift_ratio}",
        )
        check(
            0 <= self.flash_max_frames <= 12,
            "split.flash_max_frames",
            f"must be in [0, 12], got {self.flash_max_frames}",
        )
        check(
            0 < self.flash_min_jump <= 255,
            "split.flash_min_jump",
            f"must be in (0, 255], got {self.flash_min_jump}",
        )
        check(
            self.chunk_s is None or self.chunk_s >= 10,
            "split.chunk_s",
            f"must be >= 10 seconds or null, got {self.chunk_s}",
        )
        check(0 <= self.sample_fps <= 60, "split.sample_fps", "must be in [0, 60]")
        _check_hwaccel(self.hwaccel, "split.hwaccel")
        self.resources.check("split.resources")


@dataclass(frozen=True)
class TranscodeConfig:
    fps: float | None = None
    """Output frame rate; None keeps the source's (average) rate."""
    short_side: int | None = 360
    """Output short side in pixels (never upscaled); None keeps the source size."""
    encoder: Encoder = added("libx264")
    """libx264 (CPU) or h264_nvenc (the GPU's NVENC, probed at start). NVENC's bytes repeat
    only on the same GPU model and driver; a change of encoder re-does the transcodes."""
    crf: int = 23
    """Constant quality (lower is better): x264's CRF, or NVENC's `-cq` (1-51)."""
    preset: str = "veryfast"
    """x264 preset name; h264_nvenc maps it onto p1 (fastest) .. p7 (`NVENC_PRESETS`)."""
    threads: int = 2
    """x264 threads; fixed so the output bytes are reproducible. NVENC ignores it."""
    hwaccel: Hwaccel = runtime("none")
    """cuda: decode the source on the GPU's NVDEC (`-hwaccel cuda`), probed at start. The
    scale and the encoder read the frames from system memory; H.264/HEVC/VP9 decoding is
    bit-exact by their specs, so a well-formed source gives the same clips."""
    keep_audio: bool = False
    keyframe_interval_s: float | None = 1.0
    """Longest gap between keyframes in the clips; None = x264's default (250 frames).
    Training loaders seek to a random start, and decoding from the previous keyframe
    dominates their cost, so short intervals make the shards cheaper to train on."""
    chunk_s: float | None = added(120.0)
    """A video's clips are encoded in groups starting every this many seconds (the first
    clip at or after each mark starts one), and the groups run in parallel on as many workers
    as are free, so a long recording keeps a node busy. The groups are part of the output
    (an encode starting elsewhere gives other bytes), fixed by this value alone, never by the
    workers. null: one encode per video. Not applied with --transcode.keep_audio, or to a
    stream without timestamps. Each group costs an ffmpeg start and a seek from the
    previous keyframe."""
    resources: StageResources = field(default_factory=StageResources)

    @property
    def chunked(self) -> bool:
        """Whether long videos are encoded in units: with audio kept they are not, since a
        unit's audio would start at its seek, not at its first frame."""
        return self.chunk_s is not None and not self.keep_audio

    def __post_init__(self) -> None:
        check(
            self.chunk_s is None or self.chunk_s >= 1,
            "transcode.chunk_s",
            f"must be >= 1 second or null, got {self.chunk_s}",
        )
        check(
            self.keyframe_interval_s is None or 0.04 <= self.keyframe_interval_s <= 60,
            "transcode.keyframe_interval_s",
            f"must be in [0.04, 60] seconds or null, got {self.keyframe_interval_s}",
        )
        check(
            self.fps is None or 1 <= self.fps <= 240,
            "transcode.fps",
            f"must be in [1, 240], got {self.fps}",
        )
        check(
            self.short_side is None or 16 <= self.short_side <= 4320,
            "transcode.short_side",
            f"must be in [16, 4320], got {self.short_side}",
        )
        check(
            self.encoder in ENCODERS,
            "transcode.encoder",
            f"must be libx264|h264_nvenc, got {self.encoder!r}",
        )
        check(0 <= self.crf <= 51, "transcode.crf", f"must be in [0, 51], got {self.crf}")
        # NVENC reads cq 0 as "pick a quality yourself", not as lossless like x264's crf 0.
        check(
            self.encoder != "h264_nvenc" or self.crf >= 1,
            "transcode.crf",
            "must be in [1, 51] with --transcode.encoder h264_nvenc (its cq 0 means 'automatic')",
        )
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
        check(self.preset in presets, "transcode.preset", f"must be one of {presets}")
        check(1 <= self.threads <= 64, "transcode.threads", "must be in [1, 64]")
        _check_hwaccel(self.hwaccel, "transcode.hwaccel")
        self.resources.check("transcode.resources")


@dataclass(frozen=True)
class ShardsConfig:
    max_samples: int = 1000
    max_bytes: int = 1 << 30
    thumbnails: bool = True
    """Store a middle-frame `{clip_id}.jpg` next to each clip."""

    def __post_init__(self) -> None:
        check(self.max_samples >= 1, "shards.max_samples", "must be >= 1")
        check(self.max_bytes >= 1 << 16, "shards.max_bytes", "must be >= 65536")


@dataclass(frozen=True)
class ValConfig:
    """The leakage-safe train/val split of the kept clips (`pipeline/pack/valsplit.py`)."""

    fraction: float = pack_time(0.0)
    """Share of the kept clips written to shards/val/ (whole groups: a video with every
    near-duplicate of its clips); 0 keeps one shards/ folder."""
    seed: int = pack_time(0)
    """Which groups go to val; the same seed gives the same split."""

    def __post_init__(self) -> None:
        ok = isinstance(self.fraction, int | float) and 0 <= self.fraction < 1
        check(ok, "val.fraction", f"must be in [0, 1), got {self.fraction!r}")
        ok = isinstance(self.seed, int) and self.seed >= 0
        check(ok, "val.seed", f"must be an integer >= 0, got {self.seed!r}")


@dataclass(frozen=True)
class CurateConfig:
    """Everything `clipmill curate` needs besides its inputs and output folder."""

    ray: RayConfig = field(default_factory=RayConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    transcode: TranscodeConfig = field(default_factory=TranscodeConfig)
    filters: FiltersConfig = field(default_factory=FiltersConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    weights: WeightsConfig = field(default_factory=WeightsConfig)
    caption: CaptionConfig = field(default_factory=CaptionConfig)
    shards: ShardsConfig = field(default_factory=ShardsConfig)
    val: ValConfig = field(default_factory=ValConfig)

    def __post_init__(self) -> None:
        check_caption_against_clip(self.caption, self.clip)
        # Motion and perceptual hashes read the split's sampled frames: none, nothing to read.
        sample_fps = self.split.sample_fps
        for flag, on in (
            ("filters.motion.enabled", self.filters.motion.enabled),
            ("dedup.perceptual", self.dedup.perceptual),
        ):
            check(not on or sample_fps > 0, flag, "needs --split.sample_fps > 0 (or set false)")
        for flag, on, fps in (
            ("filters.motion.fps", self.filters.motion.enabled, self.filters.motion.fps),
            ("dedup.hash_fps", self.dedup.perceptual, self.dedup.hash_fps),
        ):
            check(
                not on or fps <= sample_fps,
                flag,
                f"must be <= --split.sample_fps ({sample_fps}), got {fps}",
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = {
    "ray": RayConfig,
    "probe": ProbeConfig,
    "split": SplitConfig,
    "transcode": TranscodeConfig,
    "filters": FiltersConfig,
    "clip": ClipConfig,
    "dedup": DedupConfig,
    "weights": WeightsConfig,
    "caption": CaptionConfig,
    "shards": ShardsConfig,
    "val": ValConfig,
}


def build_config(values: dict[str, Any]) -> CurateConfig:
    """Build a validated CurateConfig from nested plain dicts (YAML, parsed CLI, summary.json)."""
    unknown = set(values) - set(SECTIONS)
    if unknown:
        raise ConfigError(f"unknown config section(s) {sorted(unknown)}; known: {list(SECTIONS)}")
    return CurateConfig(
        **{name: _build(cls, values.get(name) or {}, name) for name, cls in SECTIONS.items()}
    )


def _field_default(cls: type, name: str) -> Any:
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _build(cls: type, raw: dict[str, Any], prefix: str) -> Any:
    """A (nested) section dataclass from a plain dict; unknown keys name their flag."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    extra = set(raw) - known
    if extra:
        raise ConfigError(f"--{prefix}.{sorted(extra)[0]} is not a known option")
    kwargs = {}
    for name, value in raw.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            # A partial block changes only the keys it names, as the flags do: the rest keep
            # this field's own default (CLIP's resources: concurrency 1, own pool), not the
            # class's. Nested sections never resolve "auto" fields, so their defaults merge.
            base = dataclasses.asdict(_field_default(cls, name))
            value = _build(kind, {**base, **value}, f"{prefix}.{name}")
        elif typing.get_origin(kind) is tuple and isinstance(value, list):
            value = tuple(value)  # JSON (summary.json) has no tuples
        kwargs[name] = value
    return cls(**kwargs)
