"""Stage 3 (1:N per video): one ffmpeg pass writes every candidate clip as its own mp4.

Row in:  a split video record with `clips` (source frames and seconds).
Row out: the record with each clip's output facts (fps, n_frames, width,
         height) or an error; the mp4 files lie in `clip_dir/{clip_id}.mp4`.

The source is decoded once: keyframes are forced at every clip boundary and
the segment muxer cuts there (frame-exact, measured as fast as a single-file
encode). Frames of no wanted clip (trimmed margins, rejected rows) are dropped by a
`select` before the scale and the encoder (20-25% less CPU on a video with a fifth of
it rejected, RESULTS.md), and the encode stops after the last wanted frame. With
`--transcode.keep_audio` every frame is encoded, so the audio stays in step, and the
segments between clips are deleted.

Frame mapping of ffmpeg's `fps` filter (checked on a frame-numbered video):
output frame k shows the last source frame whose time is < (k + 0.5) / fps.
So a clip [t_s, t_e) maps to output frames [floor(t_s·fps − ½) + 1, floor(t_e·fps − ½) + 1).

The encoder is libx264 (CPU) or h264_nvenc (GPU) and the decode optionally NVDEC
(`--transcode.hwaccel cuda`); the filters between them run on the CPU either way.
`check_codecs` tries a GPU codec once at start, so a machine without one fails in one
line naming the flag instead of failing every video.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import accumulate
from pathlib import Path
from typing import Any, NamedTuple

from pipeline.config.base import check
from pipeline.config.curate import CurateConfig, StageResources, TranscodeConfig
from pipeline.ffmpeg import codec_problem, hwaccel_args, hwaccel_problem, run_ffmpeg

# x264's preset names onto NVENC's p1 (fastest) .. p7 (best); each encoder's default
# (x264 medium, NVENC p4) meets the other's.
NVENC_PRESETS = {
    "ultrafast": "p1",
    "superfast": "p2",
    "veryfast": "p3",
    "faster": "p3",
    "fast": "p4",
    "medium": "p4",
    "slow": "p5",
    "slower": "p6",
    "veryslow": "p7",
}


# Input seeks of an encode unit land this far before its first frame: the frame the
# fps filter shows there may be an earlier source frame (a VFR gap, a lower output rate).
SEEK_MARGIN_S = 2.0


@dataclass(frozen=True)
class Window:
    """Output frames [first, first + frames) of one encode unit (`--transcode.chunk_s`);
    `zero_s` is the source's first timestamp, the zero of the output timeline."""

    first: int
    frames: int
    zero_s: float


def output_frame(t: float, fps: float) -> int:
    """First output frame at or after source time t (see the module docstring)."""
    return math.floor(t * fps - 0.5 + 1e-9) + 1


def output_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """Even output size keeping aspect; never upscales."""
    if short_side and min(width, height) > short_side:
        scale = short_side / min(width, height)
        width, height = width * scale, height * scale
    return max(2, int(width) // 2 * 2), max(2, int(height) // 2 * 2)


def ffmpeg_args(
    src: str,
    pattern: str,
    bounds: list[int],
    fps: float,
    size: tuple[int, int],
    cfg: TranscodeConfig,
    source_start_s: float | None = None,
    window: Window | None = None,
    keep: Selection | None = None,
) -> list[str]:
    """Arguments of one segmenting encode; `bounds` are output frames where segments start
    (counted from the window's first frame when there is one; with `keep`, in the stream
    of kept frames). `keep`: the only output frames to encode (`plan_segments`).

    `source_start_s` (set by the split on a damaged video) is the timestamp of the source's
    first frame: the first frame the decoder yields may come later when the start is broken,
    so the timeline is pinned to the source's own zero instead of the first decoded frame.
    A `window` encodes only its frames: the input seeks to just before them, the timeline
    keeps the source's zero, and the fps filter starts at the window's first output frame,
    so each frame is the one the whole-video encode shows there (tests/.../test_transcode).
    """
    w, h = size
    zero, copyts = "setpts=PTS-STARTPTS,", []
    if source_start_s is not None:
        zero, copyts = f"setpts=PTS-{source_start_s!r}/TB,", ["-copyts"]
    fps_filter = f"fps={fps!r}" + (":start_time=0" if copyts else "")
    frames: list[str] = []
    if window is not None:
        seek = max(0.0, window.first / fps - SEEK_MARGIN_S)
        zero, copyts = f"setpts=PTS-{window.zero_s!r}/TB,", ["-copyts", "-ss", f"{seek:.6f}"]
        fps_filter = f"fps={fps!r}:start_time={window.first / fps!r},setpts=PTS-STARTPTS"
        frames = ["-frames:v", str(window.frames)]
    if keep:  # re-timed to a gapless stream, so the keyframes and segments count kept frames
        fps_filter += f",select='{keep.expr}',setpts=N/FRAME_RATE/TB"
        frames = ["-frames:v", str(keep.frames)]
    vf = f"{zero}{fps_filter},scale={w}:{h}:flags=bicubic,setsar=1,format=yuv420p"
    keys = ",".join(f"{(k - 0.25) / fps:.6f}" for k in bounds)
    args = [*copyts, *hwaccel_args(cfg.hwaccel), "-i", src, "-map", "0:v:0", *frames]
    args += ["-map", "0:a:0?", "-c:a", "aac"] if cfg.keep_audio else ["-an"]
    args += [
        "-sn",
        "-dn",
        "-map_metadata",
        "-1",
        "-map_chapters",
        "-1",
        "-vf",
        vf,
        *encoder_args(cfg, fps),
        "-flags",
        "+bitexact",
        "-fflags",
        "+bitexact",
        "-f",
        "segment",
        "-reset_timestamps",
        "1",
        "-segment_format",
        "mp4",
        "-segment_format_options",
        "movflags=+faststart",
    ]
    args += ["-force_key_frames", keys, "-segment_frames", ",".join(map(str, bounds))]
    return [*args, pattern]


def encoder_args(cfg: TranscodeConfig, fps: float) -> list[str]:
    """The video encoder's options: `--transcode.encoder` with quality, speed and keyframes."""
    if cfg.encoder == "h264_nvenc":
        return nvenc_args(cfg, fps)
    return [
        "-c:v",
        "libx264",
        "-preset",
        cfg.preset,
        "-crf",
        str(cfg.crf),
        "-threads",
        str(cfg.threads),
        "-pix_fmt",
        "yuv420p",
        *_keyint(fps, cfg.keyframe_interval_s),
    ]


def nvenc_args(cfg: TranscodeConfig, fps: float) -> list[str]:
    """NVENC options that stand in for x264's: the same quality knob, keyframes and format.

    - `-rc vbr -cq CRF -b:v 0`: constant quality; without `-b:v 0` NVENC's 2 Mb/s default
      target would cap the quality.
    - `-forced-idr 1`: a forced keyframe (every clip boundary) is an IDR, as x264's are, so
      every segment the muxer cuts there decodes on its own. NVENC's are plain I-frames otherwise.
    - `-bf 3`: B-frames, as x264's presets use; an IDR closes its GOP, so none reaches
      across a clip boundary.
    - `-g`: the same keyframe interval (NVENC's default is 250 frames, as x264's).
    `-threads` is left out: the GPU encodes, and NVENC takes no threads.
    """
    return [
        "-c:v",
        "h264_nvenc",
        "-preset",
        NVENC_PRESETS[cfg.preset],
        "-tune",
        "hq",
        "-rc",
        "vbr",
        "-cq",
        str(cfg.crf),
        "-b:v",
        "0",
        "-bf",
        "3",
        "-forced-idr",
        "1",
        "-pix_fmt",
        "yuv420p",
        *_keyint(fps, cfg.keyframe_interval_s),
    ]


def _keyint(fps: float, seconds: float | None) -> list[str]:
    return [] if seconds is None else ["-g", str(max(1, round(fps * seconds)))]


def codec_checks(cfg: CurateConfig) -> list[tuple[Callable[[], None], StageResources]]:
    """The start-time probes `cfg` asks for, each with the resources of the stage it serves
    (so a cluster can run it where that stage runs). The defaults (libx264, no hwaccel) need
    none. Each raises ConfigError naming its flag."""
    checks: list[tuple[Callable[[], None], StageResources]] = []
    split, tc = cfg.split, cfg.transcode
    if split.hwaccel != "none":
        checks.append((partial(check_decode, split.hwaccel, "split.hwaccel"), split.resources))
    if tc.encoder != "libx264" or tc.hwaccel != "none":
        checks.append((partial(check_transcode_codecs, tc), tc.resources))
    return checks


def check_codecs(cfg: CurateConfig) -> None:
    """Raise ConfigError naming the flag when a GPU encoder or decoder asked for cannot run
    on this machine. Once per run, before any work (each probe is cached in this process)."""
    for probe, _ in codec_checks(cfg):
        probe()


def check_transcode_codecs(cfg: TranscodeConfig) -> None:
    """`--transcode.encoder` and `--transcode.hwaccel` work here, or ConfigError."""
    if cfg.encoder != "libx264":
        # The run's own options, so an option this GPU or driver refuses fails here too.
        problem = codec_problem(tuple(encoder_args(cfg, 25.0)))
        check(problem is None, "transcode.encoder", f"{cfg.encoder} is not usable here: {problem}")
    check_decode(cfg.hwaccel, "transcode.hwaccel")


def check_decode(hwaccel: str, flag: str) -> None:
    """`--{flag} {hwaccel}` decodes H.264 here, or ConfigError naming the flag."""
    if hwaccel != "none":
        problem = hwaccel_problem(hwaccel)
        check(problem is None, flag, f"{hwaccel} is not usable here: {problem}")


# An argument longer than 128 KiB cannot be passed to a process (Linux's MAX_ARG_STRLEN);
# an encode with more ranges than fit (about 2,500 clips: 40 minutes cut every second,
# with `--transcode.chunk_s null`) encodes every frame instead.
MAX_SELECT_CHARS = 100_000


class Selection(NamedTuple):
    """The output frames an encode keeps: a `select` expression, and how many it passes."""

    expr: str
    frames: int


def _select(keep: list[tuple[int, int]]) -> str:
    """A `select` expression passing output frames n in any [a, b) of `keep` (in order,
    apart). A balanced tree of ifs: ffmpeg's parser refuses a chain of over 100 terms,
    and each frame is looked up in log2(ranges) steps."""
    if len(keep) == 1:
        a, b = keep[0]
        return f"between(n,{a},{b - 1})"
    mid = len(keep) // 2
    return f"if(lt(n,{keep[mid][0]}),{_select(keep[:mid])},{_select(keep[mid:])})"


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Touching ranges as one: a run of adjacent clips is one range to select."""
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and merged[-1][1] == a:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


def plan_segments(
    clips: list[dict], fps: float, origin: int = 0, select: bool = True
) -> tuple[list[int], dict[int, dict], Selection | None]:
    """Segment start frames, which segment index holds which wanted clip, and (`select`)
    the output frames to encode, each range counted from `origin` (the encode's first
    output frame). With `select` only the clips' frames are encoded, so the segments are
    the clips in order and start in the stream of kept frames; without, every frame from
    `origin` is, and the segments between clips are left over."""
    spans = []
    for c in clips:
        a, b = output_frame(c["start_s"], fps), output_frame(c["end_s"], fps)
        c["n_frames"] = b - a
        if b > a:
            spans.append((a - origin, b - origin, c))
    expr = _select(_merged([(a, b) for a, b, _ in spans])) if select and spans else ""
    if expr and len(expr) <= MAX_SELECT_CHARS:
        # The last end too: never reached (the encode stops there), it keeps the
        # muxer's list from being empty when there is one clip.
        ends = list(accumulate(b - a for a, b, _ in spans))
        return ends, {i: c for i, (_, _, c) in enumerate(spans)}, Selection(expr, ends[-1])
    starts = sorted({x for a, b, _ in spans for x in (a, b)} - {0})
    index = {f: i + 1 for i, f in enumerate(starts)}  # segment i starts at starts[i-1]
    return starts, {0 if a == 0 else index[a]: c for a, _, c in spans}, None


def encode_units(clips: list[dict], chunk_s: float) -> list[list[dict]]:
    """A video's clips in consecutive groups, each encoded on its own (1 group: the video).

    A group starts at the first wanted clip that begins `chunk_s` or more after the group's
    first wanted clip; rejected clips stay with the group they fall in. The groups depend on
    the clips and `chunk_s` alone, never on how many workers there are, so the bytes of a
    video's clips are the same on one worker or many (x264 carries its rate control across
    forced keyframes: an encode that starts elsewhere gives other bytes).
    """
    units: list[list[dict]] = [[]]
    start = None
    for c in clips:
        if not c["reject_reasons"]:
            if start is None:
                start = c["start_s"]
            elif c["start_s"] - start >= chunk_s - 1e-9:
                units.append([])
                start = c["start_s"]
        units[-1].append(c)
    return units


def unit_window(wanted: list[dict], fps: float, zero_s: float) -> Window:
    """The output frames an encode unit's wanted clips span, from the first to the last."""
    first = min(output_frame(c["start_s"], fps) for c in wanted)
    end = max(output_frame(c["end_s"], fps) for c in wanted)
    return Window(first, max(1, end - first), zero_s)


def transcode_video(video: dict[str, Any], cfg: TranscodeConfig, clip_dir: Path) -> None:
    """Encode the video's clips without reject reasons into clip_dir; mark failures on rows.

    A row with `unit` (one encode unit of a long video, `encode_units`) encodes only its
    window of the source and records what it did in `unit["encode"]`.
    """
    wanted = [c for c in video["clips"] if not c["reject_reasons"]]
    if not wanted:
        return
    fps = float(cfg.fps or video["fps"])
    size = output_size(video["width"], video["height"], cfg.short_side)
    unit = video.get("unit")
    window = unit_window(wanted, fps, unit["zero_s"]) if unit else None
    origin = window.first if window else 0
    bounds, by_segment, keep = plan_segments(wanted, fps, origin, not cfg.keep_audio)
    if not by_segment:  # every clip is under one output frame: nothing to decode for
        for c in wanted:
            _fail(c, "transcode: clip shorter than one output frame")
        return
    seg_dir = clip_dir / (f"segments-{unit['index']}" if unit else "segments")
    shutil.rmtree(seg_dir, ignore_errors=True)
    seg_dir.mkdir(parents=True)
    t0 = time.perf_counter()
    try:
        run_ffmpeg(
            ffmpeg_args(
                video["local_path"],
                str(seg_dir / "%06d.mp4"),
                bounds,
                fps,
                size,
                cfg,
                video.get("source_start_s"),
                window,
                keep,
            )
        )
    except Exception as exc:  # noqa: BLE001 - an encode failure is data on the clip rows
        for c in wanted:
            _fail(c, f"transcode: {exc}")
        shutil.rmtree(seg_dir, ignore_errors=True)
        return
    if unit:  # provenance in the staged record: which worker encoded what, how fast
        seconds = round(time.perf_counter() - t0, 3)
        unit["encode"] = {"first": window.first, "frames": window.frames, "seconds": seconds}
        unit["encode"]["worker"] = f"{os.uname().nodename}:{os.getpid()}"
    for seg, clip in by_segment.items():
        path = seg_dir / f"{seg:06d}.mp4"
        if not path.exists():
            _fail(clip, f"transcode: segment {seg} missing")
            continue
        os.replace(path, clip_dir / f"{clip['clip_id']}.mp4")
        clip.update(fps=fps, width=size[0], height=size[1])
    for c in wanted:
        if c.get("n_frames", 0) <= 0 and "error" not in c["reject_reasons"]:
            _fail(c, "transcode: clip shorter than one output frame")
    shutil.rmtree(seg_dir, ignore_errors=True)


def _fail(clip: dict, message: str) -> None:
    clip["reject_reasons"] = [*clip["reject_reasons"], "error"]
    clip["errors"] = message[:300]
