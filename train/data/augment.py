"""One shard sample -> one training sample: which frames, crop, caption, mirrored or not.

Small functions over numbers, strings and numpy arrays with the random
generator passed in (None = the deterministic choice used for validation), so
each is testable alone; `prepare_sample` composes them with the decoder and
`collate` stacks samples into the batch the model reads.
"""

from __future__ import annotations

import json
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from train.data.video_io import Mp4Reader

DEFAULT_FLIP_PAIRS: tuple[tuple[str, str], ...] = (("left", "right"),)


def frame_stride(clip_fps: float, fps: float | None, stride: int | None) -> float:
    """Frames of the clip between two sampled frames.

    A target `fps` gives a possibly fractional stride (30 -> 8 fps is 3.75);
    never below 1: a clip slower than the target is used at its own rate
    rather than showing each frame twice.
    """
    if fps is not None:
        if not clip_fps > 0:
            raise ValueError("clip has no frame rate; cannot sample at a target fps")
        return max(1.0, clip_fps / fps)
    return float(stride or 1)


Span = float | Literal["clip"] | None
"""Seconds of the clip a sample's frames are spread over; "clip": the whole clip."""


RATE_FIELDS = ("fps", "frame_stride", "span_s")


def check_rate(cfg: Any, flag: Callable[[str], str]) -> None:
    """ValueError naming the flag (`flag(field)`) unless `cfg.span_s` is None, "clip" or a
    positive number and at most one of fps, frame_stride and span_s is set."""
    span = cfg.span_s
    number = isinstance(span, int | float) and not isinstance(span, bool)
    if not (span is None or span == "clip" or (number and span > 0)):
        raise ValueError(
            f"{flag('span_s')} must be a positive number of seconds or 'clip', got {span!r}"
        )
    given = [f for f in RATE_FIELDS if getattr(cfg, f) is not None]
    if len(given) > 1:
        every, both = (", ".join(flag(f) for f in names) for names in (RATE_FIELDS, given))
        raise ValueError(f"give one of {every}, not {both}")


def clip_timing(info: Any, record: dict[str, Any], cfg: Any) -> tuple[float, int, float]:
    """(clip fps, frame count, stride) of a clip for `cfg` (num_frames and the rate fields):
    the container's own figures first, the manifest record's when it has none."""
    clip_fps = info.fps or finite_number(record, "fps", 0.0)
    n_frames = info.n_frames or int(finite_number(record, "n_frames", 0.0))
    stride = sample_stride(
        clip_fps, n_frames, cfg.num_frames, cfg.fps, cfg.frame_stride, cfg.span_s
    )
    return clip_fps, n_frames, stride


def span_stride(n_frames: int, num_frames: int, clip_fps: float, span_s: float | str) -> float:
    """The stride that spreads `num_frames` evenly over `span_s` seconds of the clip.

    Consecutive frames of a 2-10 s shot barely move; spreading the same frames over
    the shot shows the motion. "clip" spans the whole clip; a clip shorter than
    the span is spanned whole. The effective rate, clip_fps / stride, is what the
    batch's `fps` reports and the model is conditioned on.
    """
    if num_frames <= 1:
        return 1.0
    frames = n_frames
    if span_s != "clip":
        if not clip_fps > 0:
            raise ValueError("clip has no frame rate; cannot spread frames over seconds")
        frames = min(n_frames, math.floor(float(span_s) * clip_fps + 0.5))
    return max(1.0, (frames - 1) / (num_frames - 1))


def sample_stride(
    clip_fps: float,
    n_frames: int,
    num_frames: int,
    fps: float | None = None,
    stride: int | None = None,
    span_s: Span = None,
) -> float:
    """Frames between two sampled frames, from whichever of span_s, fps, stride is set."""
    if span_s is not None:
        return span_stride(n_frames, num_frames, clip_fps, span_s)
    return frame_stride(clip_fps, fps, stride)


def temporal_indices(
    n_frames: int, num_frames: int, stride: float, rng: np.random.Generator | None = None
) -> tuple[list[int], float]:
    """Indices of `num_frames` frames spaced `stride` apart, and the stride used.

    A clip too short for the span is handled by lowering the stride (an integer
    stride stays an integer) so the sampled frames still show real motion, and
    the batch's `fps` reports the rate actually shown, which the model is
    conditioned on. Only a clip with fewer frames than `num_frames` repeats its
    last frame. The start is random with `rng`, centred without.
    """
    if n_frames < 1 or num_frames < 1:
        raise ValueError(f"need frames: clip has {n_frames}, asked for {num_frames}")
    if num_frames == 1:
        return [random_offset(n_frames - 1, rng)], stride
    if _span(num_frames, stride) > n_frames:
        fit = (n_frames - 1) / (num_frames - 1)
        stride = float(math.floor(fit)) if float(stride).is_integer() else fit
        if stride < 1:
            return [min(k, n_frames - 1) for k in range(num_frames)], 1.0
    start = random_offset(n_frames - _span(num_frames, stride), rng)
    return [start + math.floor(k * stride + 0.5) for k in range(num_frames)], stride


def jitter_stride(stride: float, jitter: float, rng: np.random.Generator | None) -> float:
    """`stride` times a log-uniform factor in [1 / (1 + jitter), 1 + jitter] (never below 1).

    Each sample then shows its clip at another pace: longer strides show the motion, shorter
    ones a nearly still object in detail. The rate actually used is what the batch's `fps`
    reports. No `rng` (validation, a cache's first view) or no jitter: `stride` unchanged.
    """
    if jitter <= 0 or rng is None:
        return stride
    return max(1.0, stride * math.exp(rng.uniform(-math.log1p(jitter), math.log1p(jitter))))


def _span(num_frames: int, stride: float) -> int:
    return math.floor((num_frames - 1) * stride + 0.5) + 1


def random_offset(slack: int, rng: np.random.Generator | None) -> int:
    if slack <= 0:
        return 0
    return int(rng.integers(0, slack + 1)) if rng is not None else slack // 2


def resize_for_crop(height: int, width: int, size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) to resize to so that a `size` crop fits with the aspect ratio kept.

    The clip is scaled until it covers `size` on both sides, so the crop cuts
    away the longer side's excess instead of stretching the picture.
    """
    scale = max(size[0] / height, size[1] / width)
    return max(size[0], round(height * scale)), max(size[1], round(width * scale))


def crop(video: np.ndarray, size: tuple[int, int], rng: np.random.Generator | None) -> np.ndarray:
    """Crop [T, H, W, C] to `size` = (h, w): at random with `rng`, centred without."""
    top = random_offset(video.shape[1] - size[0], rng)
    left = random_offset(video.shape[2] - size[1], rng)
    return video[:, top : top + size[0], left : left + size[1]]


def flip_video(video: np.ndarray) -> np.ndarray:
    """Mirror [T, H, W, C] left-right (contiguous, ready for torch.from_numpy)."""
    return np.ascontiguousarray(video[:, :, ::-1])


def flip_caption(caption: str, pairs: Sequence[Sequence[str]] = DEFAULT_FLIP_PAIRS) -> str:
    """Swap each word pair in `caption`, keeping case: "Left" <-> "Right".

    Whole words only (plus "-ward(s)" and "-most" endings, so "leftward"
    becomes "rightward"), all at once so that left->right->left cannot happen.
    """
    swap: dict[str, str] = {}
    for a, b in pairs:
        swap[a.lower()], swap[b.lower()] = b.lower(), a.lower()
    if not swap or not caption:
        return caption
    words = "|".join(re.escape(w) for w in sorted(swap, key=len, reverse=True))
    pattern = re.compile(rf"\b({words})(?=(?:wards?|most)?\b)", re.IGNORECASE)
    return pattern.sub(lambda m: _same_case(m.group(1), swap[m.group(1).lower()]), caption)


def _same_case(original: str, replacement: str) -> str:
    if original.isupper() and len(original) > 1:
        return replacement.upper()
    if original[0].isupper():
        return replacement[0].upper() + replacement[1:]
    return replacement


def caption_choices(record: dict[str, Any], primary: str | None) -> list[str]:
    """Distinct non-empty captions of a clip, the primary one first."""
    texts = [primary, record.get("caption")]
    texts += [c.get("text") for c in record.get("captions") or [] if isinstance(c, dict)]
    seen: dict[str, None] = {}
    for text in texts:
        if isinstance(text, str) and text.strip():
            seen.setdefault(text.strip(), None)
    return list(seen)


def pick_caption(choices: list[str], rng: np.random.Generator | None) -> str:
    """Uniform over the stored captions with `rng` (rotation), else the primary ("" if none).

    Uniform, not by score: on a small dataset the point of rotation is that
    the model sees every phrasing of a clip over many epochs.
    """
    if not choices:
        return ""
    if rng is None:
        return choices[0]
    return choices[int(rng.integers(len(choices)))]


@dataclass(frozen=True)
class SampleConfig:
    """How a clip becomes a sample: the per-sample part of `--data.*` (checked here)."""

    num_frames: int = 8
    size: tuple[int, int] = (32, 32)  # (height, width)
    fps: float | None = None
    frame_stride: int | None = None
    span_s: Span = None
    stride_jitter: float = 0.0
    flip_prob: float = 0.5
    flip_pairs: tuple[tuple[str, str], ...] = DEFAULT_FLIP_PAIRS
    caption_rotation: bool = True
    use_weights: bool = True
    decode_cache_mb: float = 0.0

    def __post_init__(self) -> None:
        size = (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "flip_pairs", tuple((str(a), str(b)) for a, b in self.flip_pairs))
        _check(self.num_frames >= 1, "num_frames", "be at least 1", self.num_frames)
        _check(len(size) == 2 and min(size) >= 1, "size", "be a positive int or [h, w]", self.size)
        _check(self.fps is None or self.fps > 0, "fps", "be positive", self.fps)
        stride = self.frame_stride
        _check(stride is None or stride >= 1, "frame_stride", "be at least 1", stride)
        check_rate(self, lambda f: f"--data.{f}")
        _check(self.stride_jitter >= 0, "stride_jitter", "be >= 0", self.stride_jitter)
        _check(0.0 <= self.flip_prob <= 1.0, "flip_prob", "be in [0, 1]", self.flip_prob)
        _check(self.decode_cache_mb >= 0, "decode_cache_mb", "be >= 0", self.decode_cache_mb)


def _check(ok: bool, flag: str, must: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"--data.{flag} must {must}, got {value!r}")


class DecodedClips:
    """A byte-bounded LRU of decoded, resized clips: decode a clip once, sample it many times.

    Scarce data means many epochs over the same few hundred clips, and spreading a
    sample over its clip (`span_s`) decodes most of the clip every time; at the
    training size a clip is small (8 s at 24 fps, 57x32: 1 MB), so keeping it costs
    little. One per dataset copy (so per DataLoader worker, kept across epochs); oldest out first.
    """

    def __init__(self, budget_mb: float) -> None:
        self.budget = int(budget_mb * 2**20)
        self.used = 0
        self._clips: OrderedDict[tuple, np.ndarray] = OrderedDict()

    def frames(self, key: tuple, read_all: Callable[[], np.ndarray]) -> np.ndarray:
        """The clip's frames under `key`, from memory or from `read_all()` (then kept)."""
        if key in self._clips:
            self._clips.move_to_end(key)
            return self._clips[key]
        frames = read_all()
        if frames.nbytes <= self.budget:
            while self.used + frames.nbytes > self.budget:
                self.used -= self._clips.popitem(last=False)[1].nbytes
            self._clips[key] = frames
            self.used += frames.nbytes
        return frames


class CorruptSample(ValueError):
    """A sample that cannot be used; `reason` is the short name it is counted under."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def prepare_sample(
    raw: dict[str, Any],
    cfg: SampleConfig,
    rng: np.random.Generator | None,
    decoded: DecodedClips | None = None,
) -> dict[str, Any]:
    """Decode and augment one shard sample (`{"__key__", "mp4", "json", "txt"}` bytes).

    `rng` None means validation: centred frames and crop, primary caption, no
    flip. The video stays a uint8 numpy [T, H, W, 3]: 4x less than float to
    ship from a worker, and pickled through the pipe, which for clips this
    small costs less than torch's shared-memory hand-off (measured). `collate`
    converts. `decoded` keeps whole decoded clips for the next sample of the same clip
    (`--data.decode_cache_mb`). Raises CorruptSample.
    """
    record = parse_record(raw)
    if not raw.get("mp4"):
        raise CorruptSample("missing_mp4")
    primary = raw["txt"].decode("utf-8", "replace") if isinstance(raw.get("txt"), bytes) else None
    try:
        with Mp4Reader(raw["mp4"]) as reader:
            info = reader.info
            clip_fps, n_frames, stride = clip_timing(info, record, cfg)
            stride = jitter_stride(stride, cfg.stride_jitter, rng)
            indices, used = temporal_indices(n_frames, cfg.num_frames, stride, rng)
            scaled = resize_for_crop(info.height, info.width, cfg.size)
            if decoded is None:
                video = reader.read(indices, scaled)
            else:  # every frame once, then indexed; past the real end: the last frame
                every = decoded.frames((raw["__key__"], scaled), lambda: reader.read_all(scaled))
                video = every[np.minimum(indices, len(every) - 1)]
    except Exception as err:  # any decoder failure is the sample's fault, not the run's
        raise CorruptSample("decode_error", f"{type(err).__name__}: {err}") from err
    video = crop(video, cfg.size, rng)
    choices = caption_choices(record, primary)
    caption = pick_caption(choices, rng if cfg.caption_rotation else None)
    if rng is not None and cfg.flip_prob > 0 and rng.random() < cfg.flip_prob:
        video, caption = flip_video(video), flip_caption(caption, cfg.flip_pairs)
    weight = finite_number(record, "sample_weight", 1.0) if cfg.use_weights else 1.0
    return {
        "video": np.ascontiguousarray(video),
        "caption": caption,
        "fps": clip_fps / used,
        "motion_score": finite_number(record, "motion_score", math.nan),
        "clip_score": finite_number(record, "clip_score", math.nan),
        "aesthetic": finite_number(record, "aesthetic", math.nan),
        "weight": weight if weight >= 0 else 1.0,
        "key": raw["__key__"],
    }


def parse_record(raw: dict[str, Any]) -> dict[str, Any]:
    if "json" not in raw:
        return {}  # the mp4 alone is usable: its container knows fps and frame count
    try:
        record = json.loads(raw["json"])
    except (ValueError, UnicodeDecodeError) as err:
        raise CorruptSample("bad_json", str(err)) from err
    if not isinstance(record, dict):
        raise CorruptSample("bad_json", f"a {type(record).__name__}, not an object")
    return record


def finite_number(record: dict[str, Any], name: str, default: float) -> float:
    value = record.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return float(value)


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Samples -> batch: video float32 [B, C, T, H, W] in [-1, 1], per-clip fields as [B]."""
    # numpy, one pass per step: torch's multi-threaded elementwise ops spin their
    # thread pool in the main process, which costs the training step more CPU.
    video = np.stack([s["video"] for s in samples]).transpose(0, 4, 1, 2, 3)
    video = np.ascontiguousarray(video, dtype=np.float32)
    video *= 2.0 / 255.0
    video -= 1.0
    batch: dict[str, Any] = {"video": torch.from_numpy(video)}
    for name in ("fps", "motion_score", "clip_score", "aesthetic", "weight"):
        batch[name] = torch.tensor([s[name] for s in samples], dtype=torch.float32)
    batch["caption"] = [s["caption"] for s in samples]
    batch["key"] = [s["key"] for s in samples]
    return batch
