"""`clipmill evaluate`: score generated shapes-world videos against their prompts.

A diffusion model that "trains" proves nothing; this makes its samples checkable.
Each video's prompt names a (colour, shape, direction); `checker` reads the
same three back from the pixels. Reported per attribute, all three together,
object persistence (share of frames with an object) and track smoothness, for
seen and held-out combinations apart (`configs/world/holdout.yaml`).

The checker's own accuracy comes first: `render_truth_clips` films every
combination with the real synth renderer and encoder, and the checker must score
>= 99% there (tests/pipeline/synthetic/test_evaluate.py) or its numbers would mean nothing.

Input: `--samples DIR` as `clipmill sample` writes it: `samples.json`
(`[{"file", "prompt"}]`), or else `prompts.txt` whose line i is `NNN_*.mp4` with NNN = i.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import av
import numpy as np

from pipeline.synthetic.checker import check_video
from pipeline.synthetic.config import SHAPE_SIZE
from pipeline.synthetic.vocab import COLOURS, DIRECTIONS, SHAPES, Combo, all_combos, load_holdout
from pipeline.synthetic.world import ShotRenderer, ShotSpec

ATTRIBUTES = ("colour", "shape", "direction")
PROMPT = "a {colour} {shape} moving {direction}"


# Words no training caption uses, for prompts that test the text encoder's generalisation
# ("a crimson disc drifting leftward"); the checker maps them back to the vocabulary.
SYNONYMS: dict[str, str] = {
    "crimson": "red", "scarlet": "red", "emerald": "green", "lime": "green", "azure": "blue",
    "cobalt": "blue", "golden": "yellow", "lemon": "yellow", "ivory": "white", "snowy": "white",
    "disc": "circle", "disk": "circle", "box": "square", "block": "square",
    "wedge": "triangle", "pyramid": "triangle", "leftward": "left", "leftwards": "left",
    "rightward": "right", "rightwards": "right", "upward": "up", "upwards": "up",
    "downward": "down", "downwards": "down",
}  # fmt: skip
PARAPHRASE = "a {colour} {shape} drifting {direction}"


def is_paraphrase(text: str) -> bool:
    return any(w in SYNONYMS for w in re.findall(r"[a-z]+", text.lower()))


def parse_prompt(text: str) -> Combo | None:
    """The (colour, shape, direction) a prompt names, or None if it misses one."""
    words = [SYNONYMS.get(w, w) for w in re.findall(r"[a-z]+", text.lower())]
    found = [
        next((w for w in words if w in vocab), None) for vocab in (COLOURS, SHAPES, DIRECTIONS)
    ]
    return (found[0], found[1], found[2]) if all(found) else None


def load_samples(folder: Path) -> list[tuple[Path, str]]:
    """(video path, prompt) pairs of a samples folder; raises ValueError naming `--samples`."""
    index = folder / "samples.json"
    if index.exists():
        items = json.loads(index.read_text(encoding="utf-8"))
        return [(folder / item["file"], str(item["prompt"])) for item in items]
    prompts_file = folder / "prompts.txt"
    if not prompts_file.exists():
        raise ValueError(f"--samples {folder}: no samples.json or prompts.txt")
    prompts = [
        p.strip() for p in prompts_file.read_text(encoding="utf-8").splitlines() if p.strip()
    ]
    videos = {int(p.name[:3]): p for p in folder.glob("[0-9][0-9][0-9]_*.mp4")}
    return [(videos.get(i, folder / f"{i:03d}_missing.mp4"), p) for i, p in enumerate(prompts)]


def read_frames(path: Path) -> np.ndarray:
    """All frames of a video as RGB uint8 [T, H, W, 3]."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    if not frames:
        raise ValueError("no frames")
    return np.stack(frames)


def score_video(path: Path, prompt: str, holdout: set[Combo]) -> dict[str, Any] | None:
    """One row of the report, or None if the prompt names no combination (not scorable)."""
    combo = parse_prompt(prompt)
    if combo is None:
        return None
    row: dict[str, Any] = {"file": path.name, "prompt": prompt, "heldout": combo in holdout,
                           "paraphrase": is_paraphrase(prompt)}  # fmt: skip
    row["want"] = dict(zip(ATTRIBUTES, combo, strict=True))
    try:
        got = check_video(read_frames(path))
    except Exception as err:  # a broken sample is a failed sample, not a failed run
        print(f"clipmill evaluate: {path.name}: {type(err).__name__}: {err}", file=sys.stderr)
        got = {"colour": "error", "shape": "error", "direction": "error", "persistence": 0.0,
               "track_residual": None}  # fmt: skip
    row["got"] = got
    row["correct"] = {a: got[a] == row["want"][a] for a in ATTRIBUTES}
    row["all_three"] = all(row["correct"].values())
    return row


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracies (0-1), mean persistence and mean track residual of some rows."""
    if not rows:
        return {"n": 0}
    out: dict[str, Any] = {"n": len(rows)}
    for attr in ATTRIBUTES:
        out[attr] = float(np.mean([r["correct"][attr] for r in rows]))
    out["all_three"] = float(np.mean([r["all_three"] for r in rows]))
    out["persistence"] = float(np.mean([r["got"]["persistence"] for r in rows]))
    residuals = [r["got"]["track_residual"] for r in rows if r["got"]["track_residual"] is not None]
    out["track_residual"] = float(np.mean(residuals)) if residuals else None
    return out


def evaluate(samples: Path, holdout: tuple[Combo, ...] = ()) -> dict[str, Any]:
    """The report of a samples folder: {"groups": {"all", "seen", "heldout"}, "videos": rows}."""
    held = set(holdout)
    rows = []
    for path, prompt in load_samples(samples):
        row = score_video(path, prompt, held)
        if row is None:
            print(f"clipmill evaluate: {path.name}: prompt {prompt!r} names no combination",
                  file=sys.stderr)  # fmt: skip
            continue
        rows.append(row)
    plain = [r for r in rows if not r["paraphrase"]]
    groups = {
        "all": summarize(plain),
        "seen": summarize([r for r in plain if not r["heldout"]]),
        "heldout": summarize([r for r in plain if r["heldout"]]),
        "paraphrase": summarize([r for r in rows if r["paraphrase"] and not r["heldout"]]),
    }
    return {"samples": str(samples), "holdout": [list(c) for c in holdout], "groups": groups,
            "videos": rows}  # fmt: skip


def markdown_table(reports: dict[str, dict[str, Any]]) -> str:
    """One row per (run, group): accuracies in %, persistence in %, residual in % of the frame."""
    cols = ["run", "combos", "n", *ATTRIBUTES, "all three", "persistence", "track residual"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name, report in reports.items():
        for group in ("seen", "heldout", "all", "paraphrase"):
            g = report["groups"].get(group, {"n": 0})
            if not g["n"]:
                continue
            res = "-" if g["track_residual"] is None else f"{100 * g['track_residual']:.1f}%"
            cells = [f"{100 * g[k]:.0f}%" for k in (*ATTRIBUTES, "all_three", "persistence")]
            lines.append(f"| {name} | {group} | {g['n']} | " + " | ".join(cells) + f" | {res} |")
    return "\n".join(lines) + "\n"


def render_truth_clips(
    output: Path,
    size: int,
    n_frames: int,
    seed: int = 0,
    combos: list[Combo] | None = None,
    shape_size: float = SHAPE_SIZE,
) -> Path:
    """Film each combination as one clip through synth's renderer and encoder (the checker's
    ground truth), its shape `shape_size` of the side; writes `NNN_<combo>.mp4` +
    `samples.json` into `output` and returns it."""
    from pipeline.synthetic.synth import encode_frames  # synth imports this module's neighbours

    output.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    items = []
    for i, (colour, shape, direction) in enumerate(combos or all_combos()):
        prompt = PROMPT.format(colour=colour, shape=shape, direction=direction)
        spec = ShotSpec(
            colour, shape, direction, prompt, float(rng.random()), int(rng.integers(2**62))
        )
        shot = ShotRenderer(spec, size, size, n_frames, shape_size=shape_size)
        name = f"{i:03d}_{colour}_{shape}_{direction}.mp4"
        encode_frames(output / name, (shot.frame(t) for t in range(n_frames)), size, size, 8.0)
        items.append({"file": name, "prompt": prompt})
    (output / "samples.json").write_text(json.dumps(items, indent=1) + "\n", encoding="utf-8")
    return output


def eval_prompts(paraphrases: int = 0, holdout: tuple[Combo, ...] = ()) -> list[str]:
    """One prompt per combination, in vocabulary order: what the demo samples; then
    `paraphrases` prompts of seen combinations in words no training caption uses."""
    prompts = [PROMPT.format(colour=c, shape=s, direction=d) for c, s, d in all_combos()]
    seen = [c for c in all_combos() if c not in set(holdout)]
    words: dict[str, list[str]] = {}
    for word, canonical in SYNONYMS.items():
        words.setdefault(canonical, []).append(word)
    rng = np.random.default_rng(0)
    for i in rng.permutation(len(seen))[:paraphrases]:
        c, s, d = (words[w][int(rng.integers(len(words[w])))] for w in seen[i])
        prompt = PARAPHRASE.format(colour=c, shape=s, direction=d)
        prompts.append(prompt.replace("a ", "an ", 1) if c[0] in "aeiou" else prompt)
    return prompts


def write_report(report: dict[str, Any], path: Path, name: str = "samples") -> None:
    """`path` (JSON) and the same stem `.md` (the table)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    path.with_suffix(".md").write_text(markdown_table({name: report}), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """`clipmill evaluate --samples DIR [--holdout FILE] [--output report.json]`."""
    parser = argparse.ArgumentParser(
        prog="clipmill evaluate",
        description="Score shapes-world samples: colour, shape, direction, persistence.",
    )
    parser.add_argument("--samples", type=Path, required=True, help="what `clipmill sample` wrote")
    parser.add_argument("--holdout", type=Path, help="held-out combinations (configs/world/)")
    parser.add_argument("--output", type=Path, help="report JSON (default: SAMPLES/eval.json)")
    args = parser.parse_args(argv)
    try:
        holdout = load_holdout(args.holdout) if args.holdout else ()
        report = evaluate(args.samples, holdout)
    except (ValueError, OSError) as err:
        print(f"clipmill evaluate: error: {err}", file=sys.stderr)
        return 2
    out = args.output or args.samples / "eval.json"
    write_report(report, out)
    print(markdown_table({"samples": report}), end="")
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0
