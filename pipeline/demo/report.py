"""The human side of `clipmill demo`: the loss curve (drawn with PIL, no matplotlib
needed) and `report.md`, which says plainly what the numbers show."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from pipeline.synthetic.evaluate import markdown_table

LINE_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44)]


def loss_curve(run: Path) -> list[tuple[int, float]]:
    """(step, train loss) from the CSVLogger's metrics.csv under `run` (empty if none)."""
    points = []
    for path in sorted(run.glob("logs/version_*/metrics.csv")):
        with path.open(encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row.get("train/loss"):
                    points.append((int(row["step"]), float(row["train/loss"])))
    return points


def plot_losses(curves: dict[str, list[tuple[int, float]]], path: Path) -> Path | None:
    """A plain PNG of the loss curves, one colour per run; None if there is nothing to draw."""
    curves = {k: v for k, v in curves.items() if len(v) >= 2}
    if not curves:
        return None
    w, h, pad = 640, 360, 48
    image = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(image)
    steps = [s for c in curves.values() for s, _ in c]
    losses = [v for c in curves.values() for _, v in c]
    s0, s1 = min(steps), max(max(steps), min(steps) + 1)
    l0, l1 = min(losses), max(max(losses), min(losses) + 1e-6)

    def xy(step: float, loss: float) -> tuple[float, float]:
        x = pad + (step - s0) / (s1 - s0) * (w - 2 * pad)
        return x, h - pad - (loss - l0) / (l1 - l0) * (h - 2 * pad)

    draw.rectangle([pad, pad, w - pad, h - pad], outline=(180, 180, 180))
    draw.text((pad, 8), "train loss (rectified flow, velocity MSE) vs step", fill="black")
    draw.text((pad, h - pad + 6), f"step {s0}", fill="black")
    draw.text((w - pad - 60, h - pad + 6), f"step {s1}", fill="black")
    draw.text((4, pad - 12), f"{l1:.3f}", fill="black")
    draw.text((4, h - pad - 4), f"{l0:.3f}", fill="black")
    for i, (name, points) in enumerate(curves.items()):
        colour = LINE_COLOURS[i % len(LINE_COLOURS)]
        draw.line([xy(s, v) for s, v in points], fill=colour, width=2)
        draw.text((w - pad - 120, pad + 6 + 14 * i), name, fill=colour)
    image.save(path)
    return path


def _data_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    clips, secs = report["curation"].get("clips", {}), report["curation"].get("seconds", {})
    if clips:
        lines.append(
            f"- curated: {clips.get('kept')} of {clips.get('candidates')} candidate clips kept, "
            f"{secs.get('kept', 0):.0f} s of {secs.get('input', 0):.0f} s of raw footage"
        )
    if report.get("rejected_by_reason"):
        reasons = ", ".join(f"{k} {v}" for k, v in report["rejected_by_reason"].items())
        lines.append(f"- rejected clips by reason: {reasons}")
    if clips:
        lines.append(
            "- every clip, kept or not, with its reasons and a preview: "
            "`clipmill report curated/` writes `curated/report.html`"
        )
    if report.get("naive"):
        lines.append(
            f"- naive: {report['naive']['chunks']} fixed 4-s chunks of "
            f"{report['naive']['videos']} files, first-cue captions, nothing filtered"
        )
    if report.get("latent"):
        lines.append(
            "- latent: the curated clips through a tiny video autoencoder trained on them "
            "(configs/train/vae_tiny.yaml), cached once (`clipmill cache`), then a latent DiT "
            "(configs/train/latent_tiny.yaml, 9 frames) for the same steps"
        )
    return lines


def truth_strips(folder: Path, count: int = 6) -> Path:
    """`folder/grid.png`: `count` of the ground-truth clips in `folder` (from
    `render_truth_clips`) drawn like the samples' grid, for comparison by eye."""
    from train.data.video_io import decode_mp4
    from train.filmstrip import filmstrip

    items = json.loads((folder / "samples.json").read_text(encoding="utf-8"))
    picked = items[:: max(1, len(items) // count)][:count]
    clips = np.stack([decode_mp4((folder / item["file"]).read_bytes()) for item in picked])
    path = folder / "grid.png"
    Image.fromarray(filmstrip(clips, [item["prompt"] for item in picked])).save(path)
    return path


def write_markdown(report: dict[str, Any], path: Path) -> None:
    """report.md: what was run, the table, the data, the pictures, the timings."""
    cfg, rows = report["config"], report["rows"]
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in report["seconds"].items())
    per_run = [
        f"- {name}: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in r["seconds"].items() if k != "evaluate")
        + (f" ({r['threads']} torch thread(s))" if "threads" in r else "")
        for name, r in rows.items()
        if "seconds" in r
    ]
    text = [
        f"# clipmill demo — preset `{report['preset']}`",
        "",
        f"Synthetic raw footage ({cfg['videos']} videos at {cfg['width']}x{cfg['height']}: "
        "coloured shapes moving over dark textures, with junk and held-out combinations never "
        f"filmed) was curated, a tiny text-to-video DiT was trained for {cfg['steps']} steps at "
        "32x32, 8 frames, "
        "and one video per (colour, shape, direction) prompt (60) was sampled and read back by the "
        "checker (`clipmill evaluate`). Chance is 20% colour, 33% shape, 25% direction, 1.7% all "
        "three. `heldout` rows are combinations the model never saw, only their words; "
        "`paraphrase` rows are seen combinations prompted in words no training caption uses "
        '("a crimson disc drifting leftward"), a test of the pretrained text encoder.',
        "",
        markdown_table(rows),
        "The `ground truth (checker)` row scores synth's own clips at the training size: it is "
        "what a perfect model would get, and shows that the checker can be trusted.",
        "",
        "## Data",
        *_data_lines(report),
        "",
        "## Samples and loss",
        "Each row is one prompt's video, its frames left to right. What the checker expects "
        "looks like this (ground-truth clips at the training size):",
        "",
        "![ground truth](checker_truth/grid.png)"
        if (path.parent / "checker_truth" / "grid.png").exists()
        else "(no ground-truth strips)",
        "",
        *[f"![{n} samples](samples_{n}/grid.png)" for n in rows if n != "ground truth (checker)"],
        "",
        "![loss](loss.png)" if (path.parent / "loss.png").exists() else "(no loss curve logged)",
        "",
        "## Time (2 CPU cores unless noted)",
        f"- {timing}",
        *per_run,
        "",
    ]
    path.write_text("\n".join(text), encoding="utf-8")
