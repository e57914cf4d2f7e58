"""The `clipmill` console script: one subcommand per job.

Training subcommands import `train` lazily, so curation never pays for
Lightning. Exit codes: 0 finished (bad files are data), 2 usage or
configuration error (the message names the flag), 1 no input video found.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

USAGE = """usage: clipmill {curate,pack,report,review,synth,train,sample,cache,evaluate,demo} ...

  curate   raw footage -> WebDataset shards + Parquet manifest
  pack     re-apply thresholds/dedup/weights and OUT/overrides.jsonl to a curated output
           (no model runs); --val.fraction F writes shards/train/ and shards/val/
  report   (re)write OUT/report.html from the manifests: totals, score histograms, what-if,
           previews of kept and rejected clips (self-contained, opens from disk)
  review   serve OUT's report on 127.0.0.1 with keep/reject/caption/split/join controls
  synth    synthetic raw footage with ground truth
  train    fit/validate a text-to-video model (LightningCLI): the DiT from scratch, or
           fine-tune Wan/LTX-Video/CogVideoX (configs/train/*_lora.yaml); `train plan`
           shows the fine-tuning buckets
  sample   generate videos from prompts with a checkpoint
  evaluate score shapes-world samples (colour, shape, direction, persistence)
  demo     synth -> curate -> train -> sample -> evaluate, with a report
  cache    encode augmented views + caption states once, for latent training
"""


def _fail(prog: str, message: str) -> int:
    text = " ".join(line.strip() for line in str(message).strip().splitlines() if line.strip())
    print(f"{prog}: error: {text}", file=sys.stderr)
    return 2


def curate_parser():
    from jsonargparse import ActionConfigFile, ArgumentParser

    from pipeline.config.curate import SECTIONS

    parser = ArgumentParser(
        prog="clipmill curate",
        exit_on_error=False,
        description="Curate raw footage into clean clips, shards and manifests.",
    )
    parser.add_argument("--config", action=ActionConfigFile, help="YAML with any of the options")
    parser.add_argument("inputs", nargs="+", help="files, folders, globs, list files, fsspec URLs")
    parser.add_argument(
        "--output", required=True, help="output folder (nothing is written outside)"
    )
    parser.add_argument("--quiet", action="store_true", help="no per-video progress lines")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="Ray's and other libraries' logs on the console too (else in OUT/work/curate.log)",
    )
    for name, cls in SECTIONS.items():
        parser.add_class_arguments(cls, name)
    return parser


def curate_main(argv: list[str]) -> int:
    from jsonargparse import ArgumentError

    from pipeline.config.curate import SECTIONS, ConfigError, CurateConfig

    prog = "clipmill curate"
    parser = curate_parser()
    try:
        ns = parser.parse_args(argv)
        built = parser.instantiate(ns)
        cfg = CurateConfig(**{k: built[k] for k in SECTIONS})
    except (ArgumentError, ConfigError, ValueError, TypeError) as exc:
        return _fail(prog, str(exc))
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    from pathlib import Path

    from pipeline.console import curate_console
    from pipeline.driver import NoInputError, curate
    from schemas.layout import work_dir

    try:
        with curate_console(work_dir(Path(ns.output)), ns.verbose, ns.quiet) as progress:
            summary = curate(list(ns.inputs), ns.output, cfg, progress=progress)
    except NoInputError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:  # found when the models are checked, before any work
        return _fail(prog, str(exc))
    secs = summary["seconds"]
    print(
        f"done: {summary['clips']['kept']}/{summary['clips']['candidates']} clips kept, "
        f"{secs['kept']:.1f}s of {secs['input']:.1f}s, {len(summary['shards'])} shards "
        f"-> {ns.output}"
    )
    return 0


def _lazy(module: str, func: str) -> Callable[[list[str]], int]:
    def run(argv: list[str]) -> int:
        mod = __import__(module, fromlist=[func])
        return int(getattr(mod, func)(argv) or 0)

    return run


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "curate": curate_main,
    "pack": _lazy("pipeline.pack.repack", "pack_main"),
    "report": _lazy("pipeline.report.cli", "report_main"),
    "review": _lazy("pipeline.review.server", "review_main"),
    "synth": _lazy("pipeline.synthetic.synth", "main"),
    "train": _lazy("train.cli", "train_main"),
    "sample": _lazy("train.cli", "sample_main"),
    "evaluate": _lazy("pipeline.synthetic.evaluate", "main"),
    "demo": _lazy("pipeline.demo.demo", "main"),
    "cache": _lazy("train.cache.cli", "cache_main"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command = COMMANDS.get(argv[0])
    if command is None:
        return _fail("clipmill", f"unknown command {argv[0]!r}; one of {', '.join(COMMANDS)}")
    return command(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
