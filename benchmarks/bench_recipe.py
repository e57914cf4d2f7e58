"""Which training recipe learns the shapes world: paired runs on one curated dataset.

Reuses a `clipmill demo` output folder (its curated shards and eval prompts), trains each
variant with the demo's own row (`pipeline.demo.rows.train_and_sample`: same steps, seed,
batch and sampling as `make demo`, only the named flags differ), samples every eval
prompt and scores it with the checker. One variant at a time, so timings compare.

    clipmill demo --output /tmp/d --preset default            # once: synth + curate + baseline
    python benchmarks/bench_recipe.py --demo /tmp/d --steps 500 \
        --variant 'fps6=' --variant 'clip=@span_s=clip' \
        --variant 'clip_fps2=@span_s=clip | --micro fps=2' --variant 'deep4=--model.dit.depth 4'

Prints a markdown table (seen-combination colour / shape / direction / all three /
persistence, train seconds) and writes DEMO/recipe_<name>.json per variant. A second training
seed moved all three by up to 19 points (RESULTS.md, seventh runs), so compare variants over
several: `--seeds 0,1,2` runs each once per seed (`recipe_<name>_s<seed>`) and adds a row of
means with each column's range.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import machine  # noqa: E402

from pipeline.demo.presets import PRESETS  # noqa: E402
from pipeline.demo.rows import train_and_sample  # noqa: E402

COLUMNS = ("colour", "shape", "direction", "all_three", "persistence")


def parse_variant(text: str) -> tuple[str, list[str], dict]:
    """'name=flags' -> (name, train flags, preset fields); preset fields are `@field=value`;
    words after a lone `|` are `clipmill sample` flags (the preset's `sample`)."""
    name, _, flags = text.partition("=")
    args, fields = [], {}
    words = shlex.split(flags)
    if "|" in words:
        cut = words.index("|")
        words, fields["sample"] = words[:cut], tuple(words[cut + 1 :])
    for word in words:
        if word.startswith("@"):
            key, _, value = word[1:].partition("=")
            fields[key] = None if value == "none" else _number(value)
        else:
            args.append(word)
    return name, args, fields


def variant_row(demo: Path, preset_name: str, text: str, steps: int | None = None):
    """(name, preset, data args) of a variant on a demo folder's curated shards: the preset
    with the variant's train flags and fields; `@steps`, else `steps`, else the preset's."""
    name, flags, fields = parse_variant(text)
    preset = PRESETS[preset_name]
    fields["steps"] = fields.get("steps") or steps or preset.steps
    preset = dataclasses.replace(preset, train=(*preset.train, *flags), **fields)
    return name, preset, ["--data.shards", str(demo / "curated" / "shards" / "*.tar")]


def _number(value: str) -> float | int | str:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def run_variant(demo: Path, preset_name: str, text: str, steps: int | None, seed: int | None):
    """Train, sample and check one variant (with `--seed_everything seed` when given); its row."""
    name, preset, shards = variant_row(demo, preset_name, text, steps)
    if seed is not None:
        name = f"{name}_s{seed}"
        preset = dataclasses.replace(preset, train=(*preset.train, "--seed_everything", str(seed)))
    report = train_and_sample(f"recipe_{name}", shards, demo, preset)
    (demo / f"recipe_{name}.json").write_text(json.dumps(report, indent=1) + "\n")
    seen = report["groups"]["seen"]
    cells = " | ".join(f"{100 * seen[c]:.0f}%" for c in COLUMNS)
    _, flags, fields = parse_variant(text)
    fields = {**fields, "steps": preset.steps}
    spec = " ".join(flags + [f"@{k}={v}" for k, v in fields.items()])
    print(f"| {name} | `{spec}` | {cells} | {report['seconds']['train']:.0f} |", flush=True)
    return seen


def spread_row(name: str, seens: list[dict]) -> str:
    """A variant over its seeds: mean (min-max) of each column."""
    cells = []
    for c in COLUMNS:
        values = [100 * s[c] for s in seens]
        cells.append(f"{statistics.mean(values):.0f}% ({min(values):.0f}-{max(values):.0f})")
    return f"| {name}: mean of {len(seens)} seeds | | " + " | ".join(cells) + " | |"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--demo", type=Path, required=True, help="a `clipmill demo` output folder")
    p.add_argument("--preset", default="default")
    p.add_argument("--steps", type=int, help="training steps (default: the preset's)")
    p.add_argument("--variant", action="append", required=True, help="'name=flags'")
    p.add_argument(
        "--seeds",
        help="comma-separated training seeds: each variant once per seed, then a mean row "
        "(default: the config's own seed, one run)",
    )
    args = p.parse_args()
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [None]
    print(f"machine: {machine()}")
    print("| variant | flags | " + " | ".join(COLUMNS) + " | train s |")
    print("|---|---|" + "---|" * (len(COLUMNS) + 1))
    for text in args.variant:
        seens = [run_variant(args.demo, args.preset, text, args.steps, s) for s in seeds]
        if len(seens) > 1:
            print(spread_row(parse_variant(text)[0], seens), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
