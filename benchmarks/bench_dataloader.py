"""Data loader throughput (samples/s) at the tiny training config.

The loader must never be the bottleneck: its rate should be at least 3x what
the training step consumes (pass that rate as --consume to get the ratio).
Without --shards it writes its own: clips shaped like curation's output
(24 fps, a few seconds, textured moving shapes, x264 crf 23) in shards made by
the curation's ShardWriter.

    python benchmarks/bench_dataloader.py                      # 320x180, 4 s clips
    python benchmarks/bench_dataloader.py --width 640 --height 360 --gop 24
    python benchmarks/bench_dataloader.py --shards 'out/shards/*.tar' --consume 46

Prints one markdown table row: command, machine, loader samples/s (wall clock),
CPU ms per sample (what the rate could be on idle cores), ratio to --consume.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._measure import machine  # noqa: E402
from schemas.shards import ShardWriter  # noqa: E402
from train.data.augment import SampleConfig, prepare_sample  # noqa: E402
from train.data.datasets import make_dataset
from train.data.loaders import VideoLoader  # noqa: E402
from train.data.shards import iter_tar_samples
from train.data.video_io import encode_mp4  # noqa: E402


def render_clip(rng: np.random.Generator, frames: int, height: int, width: int) -> np.ndarray:
    """A lit gradient with two textured squares drifting across it (compresses like footage)."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack(
        [xx * 200 // width, yy * 200 // height, (xx + yy) * 100 // (width + height)], -1
    )
    texture = rng.integers(0, 40, (height // 8 + 1, width // 8 + 1, 3)).repeat(8, 0).repeat(8, 1)
    side = height // 4
    video = np.empty((frames, height, width, 3), np.uint8)
    starts = rng.integers(0, [height - side, width - side], size=(2, 2))
    speeds = rng.integers(-4, 5, size=(2, 2))
    for i in range(frames):
        frame = base + texture[:height, :width] // 2
        for (y0, x0), (vy, vx) in zip(starts, speeds, strict=True):
            y = int(y0 + vy * i) % (height - side)
            x = int(x0 + vx * i) % (width - side)
            frame[y : y + side, x : x + side] = texture[:side, :side] * 5
        video[i] = np.clip(frame, 0, 255)
    return video


def write_bench_shards(out: Path, args: argparse.Namespace) -> str:
    rng = np.random.default_rng(0)
    with ShardWriter(out, max_samples=args.clips_per_shard) as writer:
        for i in range(args.clips):
            video = render_clip(rng, args.clip_frames, args.height, args.width)
            key = f"{i:016x}_0000000_{args.clip_frames:07d}"
            caption = "shapes moving left"
            meta = {
                "clip_id": key,
                "fps": 24.0,
                "n_frames": args.clip_frames,
                "width": args.width,
                "height": args.height,
                "caption": caption,
                "captions": [{"text": caption, "source": "vlm", "score": 1.0}],
            }
            mp4 = encode_mp4(video, 24.0, crf=23, gop=args.gop)
            writer.write(key, {"mp4": mp4, "txt": meta["caption"], "json": meta})
    return str(out / "*.tar")


def cpu_ms_per_sample(shards: str, cfg: SampleConfig, n: int = 48) -> float:
    """CPU time to decode and augment one sample (in this process).

    CPU time, not wall time, so that it holds on a machine busy with other
    work: `cores * 1000 / ms` is what the workers can deliver at best.
    """
    dataset = make_dataset(shards, cfg, mode="epoch", rank=0, world_size=1)
    raws = [r for url in dataset.urls for r in iter_tar_samples(url)][:n]
    rng = np.random.default_rng(0)
    start = time.process_time()
    for _ in range(3):
        for raw in raws:
            prepare_sample(raw, cfg, rng)
    return 1000 * (time.process_time() - start) / (3 * len(raws))


def loader_rate(shards: str, cfg: SampleConfig, args: argparse.Namespace) -> float:
    dataset = make_dataset(shards, cfg, mode="resampled", rank=0, world_size=1)
    size = args.batch_size * args.batches
    loader = VideoLoader(dataset, args.batch_size, args.num_workers, epoch_size=size * 2)
    batches = iter(loader)
    next(batches)  # worker start-up and the shuffle buffer's first fill are not throughput
    start = time.perf_counter()
    for _ in range(args.batches):
        next(batches)
    return args.batch_size * args.batches / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", help="existing shards (glob/brace); default: write some")
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--clips-per-shard", type=int, default=16)
    parser.add_argument("--clip-frames", type=int, default=96, help="frames per clip (24 fps)")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument(
        "--gop", type=int, default=24, help="x264 keyframe interval (24 = curate's default 1 s)"
    )
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--fps", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--consume", type=float, help="training step's samples/s, for the ratio")
    args = parser.parse_args(argv)
    cfg = SampleConfig(num_frames=args.num_frames, size=(args.size, args.size), fps=args.fps)
    with tempfile.TemporaryDirectory() as tmp:
        shards = args.shards or write_bench_shards(Path(tmp), args)
        ms = cpu_ms_per_sample(shards, cfg)
        rate = loader_rate(shards, cfg, args)
    ratio = f"{rate / args.consume:.1f}x" if args.consume else "-"
    command = "python benchmarks/bench_dataloader.py " + shlex.join(argv or sys.argv[1:])
    cores = args.num_workers or 1
    capacity = f"{ms:.1f} CPU ms/sample (<= {cores * 1000 / ms:.0f}/s on {cores} cores)"
    print(f"| `{command.strip()}` | {machine()} | {rate:.0f} samples/s | {capacity} | {ratio} |")
    print(json.dumps({"samples_per_s": rate, "cpu_ms_per_sample": ms, "ratio": ratio}))


if __name__ == "__main__":
    main()
