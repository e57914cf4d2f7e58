"""Synthetic raw footage with exact ground truth, for tests, the demo and benchmarks.

Real footage has no labels; this has every cut, dissolve, black gap, fade, flash, pan
and caption written down (`truth.json`, one `.srt` per video), so the splitter, filters and
captioner can be scored exactly. The same arguments give the same bytes: every
random draw comes from a per-video seed, and x264 runs with fixed options and a
fixed thread count (its output depends on the thread count).

Frames are rendered one at a time and streamed to the encoder, so a 30-minute
720p video costs one frame of memory plus two shot backgrounds.

`truth.json` is a list with one entry per video:
  {"file", "srt", "fps", "n_frames", "duration_s", "width", "height",
   "shots": [{"start_frame", "end_frame" (exclusive), "kind": "shot"|"black"|"dissolve"
              (|"static"|"flat"|"blurry"|"ad": junk, see `junk`; |"pan"|"fade": `shots`),
              "caption",   # None unless "shot" or "pan"
              "colour", "shape", "direction",   # None unless "shot"
              "overlay": None|"sign", "repeat_of": None|{"file", "shot": index in its shots},
              "sidecar_caption": None|str (the .srt's wrong text of a "miscaption" shot)}],
   "cuts": [{"frame", "kind": "hard"|"dissolve"|"fade", "start_frame", "end_frame"}],
   # Only with --pan-prob, --flash-prob, --fade-prob > 0 (read them with .get(key, [])):
   "pans": [{"kind": "pan", "shot": index in shots, "start_frame", "end_frame",
             "scene", "velocity_px_s": [vx, vy] (content motion, x right, y down),
             "faint_shape": bool}],
   "flashes": [{"kind": "flash", "shot": index in shots, "frames": [frame, ...]}],
   "fades": [{"kind": "fade", "start_frame", "end_frame", "black_start", "black_end"}]}
`shots` tiles [0, n_frames) in order; `cuts` is explained in `truth.cuts_of`. A fade is
fade out [start_frame, black_start), black, fade in [black_end, end_frame); flash frames
lie inside their "shot" and are not cuts.
With `--holdout configs/world/holdout.yaml` no shot shows a held-out (colour, shape,
direction): those are kept for scoring generalisation (`pipeline.synthetic.evaluate`).

`make_bad_inputs` writes the nasty files (broken, exotic, misnamed) that
curation must survive without crashing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from pipeline.ffmpeg import run_ffmpeg
from pipeline.synthetic.config import SHAPE_SIZE, SynthConfig
from pipeline.synthetic.damage import SHOTS as DAMAGE_SHOTS
from pipeline.synthetic.damage import make_damaged
from pipeline.synthetic.junk import JUNK_KINDS
from pipeline.synthetic.truth import to_srt, truth_entry
from pipeline.synthetic.vocab import load_holdout
from pipeline.synthetic.world import ShotRenderer, ShotSpec, plan_video, render_segments

# Fixed so output bytes do not depend on the machine: x264's frame threading is
# deterministic for a given thread count, but threads=auto follows the core count.
X264_OPTIONS: dict[str, str] = {"preset": "veryfast", "crf": "18", "threads": "2"}
# Bad inputs: small and short, but long enough (36 frames) for a splitter to yield a clip.
BAD_SIZE, BAD_FRAMES, BAD_FPS = (192, 108), 36, 24.0
DAMAGE_SEED = 17  # the clean original of the damaged bad inputs
WEIRD_NAME = 'we\'ird "name" $(x) ü 🎬;&.mp4'
# Tried in order; the first that writes a file PyAV can decode wins.
AV1_ENCODERS: tuple[tuple[str, ...], ...] = (
    ("libsvtav1", "-preset", "12"),
    ("libaom-av1", "-cpu-used", "8", "-row-mt", "0"),
    ("librav1e", "-speed", "10"),
)


def synthesize(output: Path, videos: int, seed: int, **options: Any) -> list[dict[str, Any]]:
    """Write `video_XXX.mp4` + `.srt` and `truth.json` into `output`; return the truth.

    `options` are SynthConfig fields (width, fps, shots_per_video, dissolve_prob, the
    junk probabilities, pan_prob, flash_prob, fade_prob, …). With `duration_s`, every
    video is filled with shots to exactly that length (benchmark inputs); otherwise each
    has `shots_per_video` shots (inclusive).
    """
    for key in ("shots_per_video", "pan_s"):  # JSON and YAML give lists
        if key in options:
            options[key] = tuple(options[key])
    if "holdout" in options:
        options["holdout"] = tuple(tuple(c) for c in options["holdout"])
    return synthesize_config(Path(output), SynthConfig(videos=videos, seed=seed, **options))


def synthesize_config(output: Path, cfg: SynthConfig) -> list[dict[str, Any]]:
    """`synthesize` for an already validated config."""
    output.mkdir(parents=True, exist_ok=True)
    truth = []
    pool: list = []  # plain shots planned so far: what a repeat may copy
    for index in range(cfg.videos):
        # Seeded per video, so video 3 is the same whether 5 or 50 videos are made.
        rng = np.random.default_rng([cfg.seed, index])
        name = f"video_{index:03d}"
        long_shot = cfg.long_shot and index == 0
        segments = plan_video(rng, cfg, long_shot, pool, f"{name}.mp4")
        frames = render_segments(segments, cfg.width, cfg.height, cfg.fps, cfg.shape_size)
        encode_frames(output / f"{name}.mp4", frames, cfg.width, cfg.height, cfg.fps)
        entry = truth_entry(name, segments, cfg)
        (output / entry["srt"]).write_text(to_srt(entry["shots"], cfg.fps), encoding="utf-8")
        truth.append(entry)
    (output / "truth.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    return truth


def encode_frames(
    path: Path,
    frames: Iterable[np.ndarray],
    width: int,
    height: int,
    fps: float,
    *,
    pix_fmt: str = "yuv420p",
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
) -> int:
    """Encode RGB frames with libx264 (fixed options); return the frame count.

    `pts` in `time_base` units gives irregular timestamps (variable frame rate).
    The mp4 muxer puts the moov atom at the end (no faststart), like a camera.
    """
    count = 0
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps_fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = dict(X264_OPTIONS)
        if time_base is not None:
            stream.time_base = time_base
            stream.codec_context.time_base = time_base
        for rgb in frames:
            frame = _to_video_frame(rgb, pix_fmt)
            frame.pts = pts[count] if pts is not None else count
            container.mux(stream.encode(frame))
            count += 1
        container.mux(stream.encode(None))
    return count


def _to_video_frame(rgb: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """OpenCV's BT.601 limited-range I420 is ~5x faster than PyAV's swscale path at 720p
    (the same values within one code level); other formats go through swscale."""
    if pix_fmt == "yuv420p":
        return av.VideoFrame.from_ndarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), format=pix_fmt)
    return av.VideoFrame.from_ndarray(rgb, format="rgb24")


def fps_fraction(fps: float) -> Fraction:
    """24.0 -> 24, 29.97002997 -> 30000/1001: the rational rate containers store."""
    return Fraction(fps).limit_denominator(1001)


def make_bad_inputs(output: Path) -> dict[str, Path]:
    """Write the nasty inputs curation must survive; return {short name: path}.

    Broken files (`zero_byte`, `truncated`, `random_bytes`, `png_as_mp4`,
    `audio_only`) must become `videos.parquet` rows with a reason; exotic but valid
    ones (`odd_dims`, `rotated`, `vfr`, `ten_bit`, `hevc_mkv`, `vp9_webm`,
    `av1_mkv`, `prores_mov`, `weird_name`) must yield clips; `text_file` must be
    ignored. `av1_mkv` is left out (with a warning) if no AV1 encoder works.
    `damaged_mid` (clean shots around one damaged stretch) and `damaged_throughout`
    have their damaged frames, measured by decoding, in `truth.json` (`synthetic.damage`).
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    width, height = BAD_SIZE
    made: dict[str, Path] = {}
    base = output / "base_h264.mp4"
    _moving_square(base, width, height)
    made["zero_byte"] = _write_bytes(output / "zero_byte.mp4", b"")
    # PyAV writes the moov atom last, so the first half holds only media data.
    data = base.read_bytes()
    made["truncated"] = _write_bytes(output / "truncated.mp4", data[: len(data) // 2])
    noise = np.random.default_rng(1234).bytes(64 * 1024)
    made["random_bytes"] = _write_bytes(output / "random_bytes.mp4", noise)
    made["png_as_mp4"] = _write_png(output / "png_image.mp4", width, height)
    audio = ["-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac"]
    made["audio_only"] = _ffmpeg_to(output / "audio_only.mp4", audio)
    made["odd_dims"] = _moving_square(output / "odd_dims.mp4", 321, 179, pix_fmt="yuv444p")
    rotate = ["-display_rotation", "90", "-i", str(base), "-c", "copy"]
    made["rotated"] = _ffmpeg_to(output / "rotated.mp4", rotate)
    made["vfr"] = _moving_square(output / "vfr.mp4", width, height, vfr=True)
    made["ten_bit"] = _moving_square(output / "ten_bit.mp4", width, height, pix_fmt="yuv420p10le")
    variants = {
        "hevc_mkv": ("hevc.mkv", ["-c:v", "libx265", "-x265-params", "log-level=error"]),
        "vp9_webm": (
            "vp9.webm",
            ["-c:v", "libvpx-vp9", "-crf", "40", "-b:v", "0", "-cpu-used", "8"],
        ),
        "prores_mov": ("prores.mov", ["-c:v", "prores_ks", "-profile:v", "0"]),
    }
    for key, (name, codec) in variants.items():
        made[key] = _ffmpeg_to(output / name, ["-i", str(base), *codec, "-threads", "1"])
    av1 = _first_working_av1(output / "av1.mkv", base)
    if av1 is not None:
        made["av1_mkv"] = av1
    made["weird_name"] = Path(shutil.copyfile(base, output / WEIRD_NAME))
    note = "Shot list for the shoot on Tuesday. Not a video: curation ignores this.\n"
    made["text_file"] = _write_bytes(output / "notes.txt", note.encode())
    scratch = output / ".damage_scratch"
    clean = synthesize(scratch, 1, DAMAGE_SEED, **DAMAGE_SHOTS)[0]
    damaged, truth = make_damaged(output, scratch / clean["file"], clean)
    shutil.rmtree(scratch)
    made.update(damaged)
    (output / "truth.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    base.unlink()
    return made


def _moving_square(
    path: Path, width: int, height: int, *, pix_fmt: str = "yuv420p", vfr: bool = False
) -> Path:
    """A 1.5 s shot of a white square moving right; `vfr` gives irregular 25-55 ms steps."""
    spec = ShotSpec("white", "square", "right", "a white square moving right", 0.6, 7)
    shot = ShotRenderer(spec, width, height, BAD_FRAMES)
    frames = (shot.frame(t) for t in range(BAD_FRAMES))
    if not vfr:
        encode_frames(path, frames, width, height, BAD_FPS, pix_fmt=pix_fmt)
        return path
    steps = np.random.default_rng(5).integers(25, 56, size=BAD_FRAMES)
    pts = [0, *np.cumsum(steps[:-1]).tolist()]
    encode_frames(path, frames, width, height, BAD_FPS, pts=pts, time_base=Fraction(1, 1000))
    return path


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _write_png(path: Path, width: int, height: int) -> Path:
    """A real PNG (one rendered frame) under a video's name."""
    spec = ShotSpec("red", "circle", "left", "a red circle moving left", 0.1, 3)
    rgb = ShotRenderer(spec, width, height, 1).frame(0)
    ok, encoded = cv2.imencode(".png", rgb[..., ::-1])
    assert ok, "OpenCV always encodes a uint8 image as PNG"
    return _write_bytes(path, encoded.tobytes())


def _ffmpeg_to(path: Path, args: list[str]) -> Path:
    """Run ffmpeg with `args` writing `path`; bitexact so reruns give the same container."""
    run_ffmpeg(["-y", *args, "-fflags", "+bitexact", str(path)], timeout=120)
    return path


def _first_working_av1(path: Path, base: Path) -> Path | None:
    """Encode `base` to AV1 with the first encoder whose output PyAV decodes."""
    for encoder, *opts in AV1_ENCODERS:
        try:
            _ffmpeg_to(path, ["-i", str(base), "-c:v", encoder, *opts, "-pix_fmt", "yuv420p"])
            with av.open(str(path)) as container:
                next(container.decode(video=0))
            return path
        except (RuntimeError, av.error.FFmpegError, StopIteration):
            path.unlink(missing_ok=True)
    warnings.warn("no AV1 encoder worked: av1_mkv left out of the bad inputs", stacklevel=2)
    return None


def main(argv: list[str] | None = None) -> int:
    """`clipmill synth`: write synthetic footage (or, with --bad-inputs, nasty files)."""
    parser = argparse.ArgumentParser(
        prog="clipmill synth", description="Synthetic raw footage with exact ground truth."
    )
    parser.add_argument("--output", type=Path, required=True, help="folder to write into")
    parser.add_argument("--videos", type=int, default=20, help="number of videos")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--fps", type=float, default=24.0)
    parser.add_argument("--min-shot-s", type=float, default=1.0)
    parser.add_argument("--max-shot-s", type=float, default=6.0)
    parser.add_argument(
        "--duration-s", type=float, default=None, help="fill each video to this length"
    )
    for kind in JUNK_KINDS:
        parser.add_argument(f"--{kind}-prob", type=float, default=0.0, help=f"{kind} junk shots")
    _add_transition_flags(parser)
    parser.add_argument(
        "--holdout", type=Path, help="YAML of held-out combinations never filmed (configs/world/)"
    )
    parser.add_argument(
        "--shape-size", type=float, default=SHAPE_SIZE,
        help=f"the shape's side as a fraction of the frame's short side (default {SHAPE_SIZE})",
    )  # fmt: skip
    parser.add_argument(
        "--bad-inputs", action="store_true", help="write robustness-test files instead"
    )
    args = parser.parse_args(argv)
    began = time.perf_counter()
    if args.bad_inputs:
        made = make_bad_inputs(args.output)
        print(
            f"wrote {len(made)} bad inputs to {args.output} in {time.perf_counter() - began:.1f} s"
        )
        return 0
    try:
        junk = {f"{kind}_prob": getattr(args, f"{kind}_prob") for kind in JUNK_KINDS}
        holdout = load_holdout(args.holdout) if args.holdout else ()
        cfg = SynthConfig(
            args.videos, args.seed, args.width, args.height, args.fps,
            args.min_shot_s, args.max_shot_s, duration_s=args.duration_s, **junk,
            holdout=holdout, pan_prob=args.pan_prob, pan_s=tuple(args.pan_s),
            flash_prob=args.flash_prob, fade_prob=args.fade_prob, shape_size=args.shape_size,
        )  # fmt: skip
    except ValueError as err:
        print(f"clipmill synth: error: {err}", file=sys.stderr)
        return 2
    truth = synthesize_config(args.output, cfg)
    frames = sum(v["n_frames"] for v in truth)
    shots = sum(s["kind"] in ("shot", "pan") for v in truth for s in v["shots"])
    cuts = sum(len(v["cuts"]) for v in truth)
    print(
        f"wrote {len(truth)} videos ({frames} frames, {frames / cfg.fps:.1f} s, {shots} shots, "
        f"{cuts} cuts) to {args.output} in {time.perf_counter() - began:.1f} s; "
        f"config {json.dumps(asdict(cfg))}"
    )
    return 0


def _add_transition_flags(parser: argparse.ArgumentParser) -> None:
    """The shot kinds that test transition detection (`pipeline.synthetic.shots`)."""
    parser.add_argument(
        "--pan-prob", type=float, default=0.0,
        help="per-shot probability of a slow pan over soft, low-contrast content (kind pan)",
    )  # fmt: skip
    parser.add_argument(
        "--pan-s", type=float, nargs=2, default=(20.0, 60.0), metavar=("LO", "HI"),
        help="length of a pan shot in seconds, drawn in [LO, HI] (default 20 60)",
    )  # fmt: skip
    parser.add_argument(
        "--flash-prob", type=float, default=0.0,
        help="per-shot probability of 1-3 flash frames inside an ordinary shot (not cuts)",
    )  # fmt: skip
    parser.add_argument(
        "--fade-prob", type=float, default=0.0,
        help="per-transition probability of a fade through black (cut kind fade)",
    )  # fmt: skip
