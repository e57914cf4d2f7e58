"""The ground truth of a planned video: its `truth.json` entry, its cuts and its `.srt`.

The format is in `pipeline.synthetic.synth`'s module doc. The keys of pans, flashes and
fades (`pans`, `flashes`, `fades`) are written only when their flag is on, so footage made
without them keeps its bytes, `truth.json` included; read them with `.get(key, [])`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.synthetic.config import SynthConfig
from pipeline.synthetic.shots import fade_parts, plan_pan
from pipeline.synthetic.world import Segment, dissolve_frames


def truth_entry(name: str, segments: Sequence[Segment], cfg: SynthConfig) -> dict[str, Any]:
    """The ground truth of one video: one entry of `truth.json`."""
    n_frames = segments[-1].end
    return {
        "file": f"{name}.mp4",
        "srt": f"{name}.srt",
        "fps": cfg.fps,
        "n_frames": n_frames,
        "duration_s": n_frames / cfg.fps,
        "width": cfg.width,
        "height": cfg.height,
        "shots": [_shot_truth(seg) for seg in segments],
        "cuts": cuts_of(segments),
        **_transition_truth(segments, cfg),
    }


def _shot_truth(seg: Segment) -> dict[str, Any]:
    spec = seg.spec if seg.kind == "shot" else None  # junk is not described
    repeat = seg.repeat_of
    caption = spec.caption if spec else None
    if seg.kind == "pan" and seg.spec is not None:
        caption = plan_pan(seg.spec.seed).caption  # a pan has a caption but no shape
    return {
        "start_frame": seg.start,
        "end_frame": seg.end,
        "kind": seg.kind,
        "caption": caption,
        "colour": spec.colour if spec else None,
        "shape": spec.shape if spec else None,
        "direction": spec.direction if spec else None,
        "overlay": seg.overlay,
        "repeat_of": {"file": repeat[0], "shot": repeat[1]} if repeat else None,
        "sidecar_caption": seg.sidecar,
    }


def _transition_truth(segments: Sequence[Segment], cfg: SynthConfig) -> dict[str, Any]:
    """`pans`, `flashes` and `fades`, each only when its flag is on (even if none was drawn)."""
    extra: dict[str, Any] = {}
    indexed = list(enumerate(segments))
    if cfg.pan_prob > 0:
        extra["pans"] = [_pan_truth(i, seg) for i, seg in indexed if seg.kind == "pan"]
    if cfg.flash_prob > 0:
        extra["flashes"] = [
            {"kind": "flash", "shot": i, "frames": [seg.start + t for t in seg.flash.frames()]}
            for i, seg in indexed
            if seg.flash is not None
        ]
    if cfg.fade_prob > 0:
        ramp = dissolve_frames(cfg.fps)
        extra["fades"] = [_fade_truth(seg, ramp) for seg in segments if seg.kind == "fade"]
    return extra


def _pan_truth(index: int, seg: Segment) -> dict[str, Any]:
    assert seg.spec is not None, "a pan is seeded by its spec"
    plan = plan_pan(seg.spec.seed)
    return {
        "kind": "pan",
        "shot": index,
        "start_frame": seg.start,
        "end_frame": seg.end,
        "scene": plan.scene,
        "velocity_px_s": list(plan.velocity_px_s),
        "faint_shape": plan.faint_shape,
    }


def _fade_truth(seg: Segment, ramp: int) -> dict[str, Any]:
    black_start, black_end = fade_parts(seg.start, seg.end, ramp)
    return {
        "kind": "fade",
        "start_frame": seg.start,
        "end_frame": seg.end,
        "black_start": black_start,
        "black_end": black_end,
    }


def flash_frames(entry: dict[str, Any]) -> list[int]:
    """Every flash frame of a `truth.json` entry, in order (none without `--flash-prob`)."""
    return sorted(f for flash in entry.get("flashes", []) for f in flash["frames"])


def cuts_of(segments: Sequence[Segment]) -> list[dict[str, Any]]:
    """Every transition. Frames [start_frame, end_frame) belong to no shot: empty for a
    hard cut (at `frame`, the first frame after it), the cross-fade of a dissolve, or the
    fade out, black and fade in of a fade (`frame` is the middle of either). A clip [s, e)
    is cut-free iff e <= start_frame or s >= end_frame for every cut (with start_frame =
    end_frame = frame for hard cuts). Flashes are not cuts: they are inside a shot."""
    cuts = []
    for prev, seg in zip(segments, segments[1:], strict=False):
        if seg.kind in ("dissolve", "fade"):
            middle = (seg.start + seg.end) // 2
            cuts.append(dict(frame=middle, kind=seg.kind, start_frame=seg.start, end_frame=seg.end))
        elif prev.kind not in ("dissolve", "fade"):  # the shot after one starts at its end
            cuts.append(
                dict(frame=seg.start, kind="hard", start_frame=seg.start, end_frame=seg.start)
            )
    return cuts


def to_srt(shots: Sequence[dict[str, Any]], fps: float) -> str:
    """One SubRip cue per "shot" or "pan" segment, carrying its caption."""
    cues = []
    for seg in (s for s in shots if s["kind"] in ("shot", "pan")):
        start, end = _srt_time(seg["start_frame"] / fps), _srt_time(seg["end_frame"] / fps)
        text = seg.get("sidecar_caption") or seg["caption"]
        cues.append(f"{len(cues) + 1}\n{start} --> {end}\n{text}\n")
    return "\n".join(cues)


def _srt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{ms:03d}"
