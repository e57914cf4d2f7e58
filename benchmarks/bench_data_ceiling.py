"""What the trainer shows the model: the shapes checker on the training samples themselves.

A model cannot learn a direction its samples do not show. This draws training samples exactly
as `clipmill train fit` would (the DataModule with the given size and temporal sampling, random
crops, no flips) from a `clipmill demo` output's curated shards, and scores each one against
its own caption with `clipmill evaluate`'s checker. The result is the ceiling of the data: a
square crop of 16:9 footage, for instance, often cuts the moving shape out of frame.

    python benchmarks/bench_data_ceiling.py --demo /tmp/d --size 32 --span clip
    python benchmarks/bench_data_ceiling.py --demo /tmp/d --size 32,56 --fps 6

Prints one markdown row: colour / shape / direction / all three / persistence, in percent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.synthetic.checker import check_video  # noqa: E402
from pipeline.synthetic.evaluate import ATTRIBUTES, parse_prompt  # noqa: E402
from train.data.module import VideoDataModule  # noqa: E402
from train.module import to_uint8  # noqa: E402


def score_videos(videos: torch.Tensor, captions: list[str]) -> dict[str, float]:
    """Hit counts of collated videos `[B, C, T, H, W]` in [-1, 1] against their captions."""
    hits = dict.fromkeys([*ATTRIBUTES, "all_three", "persistence", "n"], 0.0)
    for frames, caption in zip(to_uint8(videos).numpy(), captions, strict=True):
        want = parse_prompt(caption)
        if want is None:  # a caption outside the world's vocabulary: nothing to check
            continue
        got = check_video(frames)
        right = [got[a] == w for a, w in zip(ATTRIBUTES, want, strict=True)]
        for attribute, ok in zip(ATTRIBUTES, right, strict=True):
            hits[attribute] += ok
        hits["all_three"] += all(right)
        hits["persistence"] += got["persistence"]
        hits["n"] += 1
    return hits


def percent(hits: dict[str, float]) -> dict[str, float]:
    """Counts from `score_videos` as percentages of the videos scored (and that count)."""
    return {k: 100 * v / max(hits["n"], 1) for k, v in hits.items() if k != "n"} | {"n": hits["n"]}


def score_samples(dm: VideoDataModule, n: int) -> dict[str, float]:
    """Percent of `n` training samples whose pixels show what their caption names."""
    total: dict[str, float] = {}
    for batch in dm.train_dataloader():
        hits = score_videos(batch["video"], batch["caption"])
        total = {k: total.get(k, 0.0) + v for k, v in hits.items()}
        if total["n"] >= n:
            break
    return percent(total)


def add_data_args(p: argparse.ArgumentParser) -> None:
    """The flags that pick the training samples (as the `--data.*` flags of train fit)."""
    p.add_argument("--demo", type=Path, required=True, help="a `clipmill demo` output folder")
    p.add_argument("--size", default="32", help="crop: N or H,W (as --data.size)")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--span", help="seconds or 'clip' (as --data.span_s)")
    rate.add_argument("--fps", type=float, default=None, help="as --data.fps (default 6)")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)


def training_data(args: argparse.Namespace, batch_size: int = 16) -> VideoDataModule:
    """The DataModule `clipmill train fit` would build from these flags, set up (no flips)."""
    size = tuple(int(s) for s in args.size.split(","))
    span = args.span if args.span in (None, "clip") else float(args.span)
    dm = VideoDataModule(
        shards=str(args.demo / "curated" / "shards" / "*.tar"),
        num_frames=args.frames,
        size=size if len(size) == 2 else size[0],
        fps=None if span is not None else (args.fps or 6.0),
        span_s=span,
        decode_cache_mb=256,
        batch_size=batch_size,
        num_workers=0,
        flip_prob=0.0,
        seed=args.seed,
    )
    dm.setup("fit")
    return dm


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_args(p)
    p.add_argument("--samples", type=int, default=320)
    args = p.parse_args()
    row = score_samples(training_data(args), args.samples)
    cells = " | ".join(f"{row[k]:.0f}%" for k in (*ATTRIBUTES, "all_three", "persistence"))
    print(f"| {args.size} | {args.span or f'{args.fps or 6.0:g} fps'} | {cells} | {row['n']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
