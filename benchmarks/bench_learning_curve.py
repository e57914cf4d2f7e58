"""How many steps does `make demo`'s recipe need? The same row at several step counts.

Each step count is a whole run of the demo's own training row (`pipeline.demo.rows.
train_and_sample`: the recipe, seed, batch, warm-up and cosine schedule of that length, then
sampling and the checker), so a point of the curve is what a `make demo` of that many steps
would report. Meant for a GPU, where the runs go side by side (`--parallel`); on the 2-core
CPU a 500-step point is `make demo` itself.

    python benchmarks/bench_learning_curve.py --demo /tmp/d48 --steps 500,2000,6000 \
        --parallel 3 --variant 'clip=@span_s=clip --data.decode_cache_mb 256' \
        --json curve.json

A machine without the text encoder's weights (the GPU box: nothing can be fetched there and
the 88 MB MiniLM does not travel) takes the caption states computed elsewhere:
`--save-text-states F` here (the real encoder, every caption of the shards and eval
prompts), `--text-states F` there; a caption missing from F stops the run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import machine  # noqa: E402
from bench_recipe import COLUMNS, parse_variant, variant_row  # noqa: E402

from train.data.augment import caption_choices, parse_record  # noqa: E402
from train.data.shards import expand_shards, iter_tar_samples  # noqa: E402


def captions(demo: Path) -> list[str]:
    """Every caption training or sampling can ask the encoder for: each shard sample's
    choices as the trainer reads them, the eval prompts, and "" (caption dropout, CFG's null)."""
    found = {""}
    for url in expand_shards(str(demo / "curated" / "shards")):
        for raw in iter_tar_samples(url):
            primary = raw["txt"].decode("utf-8", "replace") if "txt" in raw else None
            found.update(caption_choices(parse_record(raw), primary))
    prompts = (demo / "eval_prompts.txt").read_text(encoding="utf-8").splitlines()
    found.update(p.strip() for p in prompts)
    return sorted(found)


def save_text_states(demo: Path, path: Path) -> None:
    """Caption -> token states of the default (bundled MiniLM) encoder, as a torch file."""
    import torch

    from train.models.text import TextEncoderSpec, build_text_encoder

    enc = build_text_encoder(TextEncoderSpec())
    texts = captions(demo)
    states, mask = enc(texts)
    rows = {t: s[: int(m.sum())].clone() for t, s, m in zip(texts, states, mask, strict=True)}
    torch.save({"encoder_id": enc.encoder_id, "dim": enc.dim, "states": rows}, path)
    print(f"{len(rows)} captions -> {path}")


def use_text_states(path: Path) -> None:
    """Make `train.module` build a lookup of precomputed states instead of the encoder."""
    import torch

    import train.module
    from train.models.text import TextEncoder

    saved = torch.load(path, weights_only=True)

    class Lookup(TextEncoder):
        """The encoder's own caption cache, filled from the file; nothing else is known."""

        def __init__(self) -> None:
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)  # .device
            self.dim, self.encoder_id = int(saved["dim"]), str(saved["encoder_id"])
            self.cache_size = len(saved["states"])
            self.__dict__["_cache"] = OrderedDict(saved["states"])

        def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
            raise KeyError(f"no saved text states for {texts[:3]}")

    def build(spec: object) -> TextEncoder:
        return Lookup().requires_grad_(False).eval()

    train.module.build_text_encoder = build


def one_run(name: str, demo: Path, preset_name: str, text: str, steps: int, states: Path | None):
    """One point: train `steps` with the variant `text`, sample, check (in its own process)."""
    from pipeline.demo.rows import train_and_sample

    if states is not None:
        use_text_states(states)
    _, preset, shards = variant_row(demo, preset_name, text, steps)
    return train_and_sample(name, shards, demo, preset)


def accelerator() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"


def row(name: str, steps: int, report: dict) -> str:
    """One markdown row: seen figures, held-out all three, train seconds, last logged loss."""
    seen, held = report["groups"]["seen"], report["groups"]["heldout"]
    cells = " | ".join(f"{100 * seen[c]:.0f}%" for c in COLUMNS)
    loss = report["loss"][-1][1] if report.get("loss") else float("nan")
    train_s = report["seconds"]["train"]
    tail = f"{100 * held['all_three']:.0f}% | {train_s:.0f} | {loss:.3f}"
    return f"| {name} | {steps} | {cells} | {tail} |"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--demo", type=Path, required=True, help="a `clipmill demo` output folder")
    p.add_argument("--preset", default="default")
    p.add_argument("--steps", default="500,2000,6000", help="comma-separated step counts")
    p.add_argument("--variant", action="append", default=[], help="'name=flags' (bench_recipe)")
    p.add_argument("--parallel", type=int, default=1, help="runs side by side")
    p.add_argument("--text-states", type=Path, help="saved caption states instead of MiniLM")
    p.add_argument("--save-text-states", type=Path, help="write them for --text-states; exit")
    p.add_argument("--json", type=Path, help="write every run's report here")
    args = p.parse_args()
    if args.save_text_states:
        save_text_states(args.demo, args.save_text_states)
        return 0
    variants = args.variant or ["default="]
    steps = [int(s) for s in args.steps.split(",")]
    jobs = {}  # a variant with its own @steps=N runs at N only
    for v in variants:
        name, _, fields = parse_variant(v)
        for n in [fields["steps"]] if "steps" in fields else steps:
            jobs[f"curve_{name}_{n}"] = (v, int(n))
    print(f"machine: {machine()}; {accelerator()}")
    context = multiprocessing.get_context("spawn")
    print("| run | steps | " + " | ".join(COLUMNS) + " | held-out all three | train s | loss |")
    print("|---|---|" + "---|" * (len(COLUMNS) + 3), flush=True)
    reports = {}
    with ProcessPoolExecutor(max(1, args.parallel), context) as pool:
        futures = {
            pool.submit(one_run, name, args.demo, args.preset, v, n, args.text_states): name
            for name, (v, n) in jobs.items()
        }
        for future in as_completed(futures):  # a row as each run ends: long runs may be cut
            name = futures[future]
            reports[name] = report = future.result()
            print(row(name, jobs[name][1], report), flush=True)
            if args.json:
                args.json.write_text(json.dumps(reports, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
