"""Curation: raw footage in, WebDataset shards and a manifest that explains every second out.

The spine, at this level, runs one `clipmill curate`:

    cli.py        the `clipmill` command (curate here; other subcommands by name, lazily)
    discover.py   inputs (files, folders, globs, lists, URLs) -> the videos to probe
    driver.py     the stages chained on Ray Data (or in-process), one video per row
    staging.py    a video's work folder under OUT/work/: what makes a run resumable
    ffmpeg.py     the ffmpeg binary (imageio-ffmpeg's, or the system's) and how to run it

A video flows through the subpackages in this order:

    config/     the frozen dataclasses of every section (`--section.field` flags), checked
                at start: base (errors, field kinds) <- resources <- scores, captions <- curate
    stages/     one file per stage: probe -> split (detectors, lowres, damage) -> transcode ->
                scorers (motion, technical, phash, text_overlay, clip_embed; frames decodes
                the sampled frames once; base holds the per-clip loop they share)
    captions/   the caption sources and their stage (after scoring, before finalize)
    pack/       after every video: thresholds -> reasons (decide), collection-wide dedup
                (dedup, neighbours), sample weights (weights), a person's overrides, the
                leakage-safe train/val split (valsplit), shards and manifests (pack);
                `clipmill pack` re-applies them to a finished run (repack)

Beside the flow, not part of it:

    report/     OUT/report.html (`clipmill report`, and at the end of curate and pack): totals,
                score histograms with thresholds, what-if curves, previews of every clip
    review/     `clipmill review` (a local server for the report with controls) and
                OUT/overrides.jsonl, the corrections that pack and curate apply

    synthetic/  the shapes world with exact ground truth (`clipmill synth`), its shape
                checker and `clipmill evaluate`: footage and scores for tests and benchmarks
    demo/       `clipmill demo`: synth -> curate -> train -> sample -> evaluate; the one
                place that drives both halves (and so the only one that imports `train`)

What crosses to training (the record schemas, the shard writer, the staging layout)
lives in `schemas/`; this package never imports `train` outside `demo/`.
"""
