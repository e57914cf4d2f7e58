"""`clipmill curate`: the stages chained on Ray Data, streaming, one video per row.

    discover (driver) → probe (1:1) → dedup (driver) → split (1:1) → units (1:N, long videos)
    → transcode (1:N clips) → motion, technical, phash, text, clip (1:1, scores only)
    → finalize (1:1, atomic; a long video's last unit gathers the others)
    → pack (driver: thresholds, collection-wide dedup, weights, shards)

Probing is cheap and its rows are small, so they are collected on the driver
to mark byte-identical duplicates and skip finished videos before any decode.
Splitting and transcoding then stream through Ray Data, one video per block.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from pipeline.captions.stage import CaptionStage, VlmStage
from pipeline.config.curate import ConfigError, CurateConfig
from pipeline.config.resources import StageResources
from pipeline.console import Progress
from pipeline.discover import expand_inputs
from pipeline.pack.pack import invalidate, pack
from pipeline.report.page import write_report_quietly
from pipeline.review.overrides import cut_edits, read_overrides
from pipeline.runners import LocalRunner, RayRunner, Stage
from pipeline.stages.clip_embed import ClipStage, check_clip_config
from pipeline.stages.motion import MotionStage
from pipeline.stages.phash import PerceptualHashStage
from pipeline.stages.probe import mark_duplicates, probe_video
from pipeline.stages.technical import TechnicalStage
from pipeline.stages.text_overlay import TextStage
from pipeline.stages.transcode import check_codecs, codec_checks
from pipeline.staging import (
    FinalizeStage,
    RescoreStage,
    SplitStage,
    TranscodeStage,
    UnitsStage,
    fingerprint,
    load_staged,
    prepare_rescore,
    score_fingerprint,
)
from pipeline.staging_spans import SpansStage
from schemas import empty_video
from schemas.layout import video_dir, work_dir

log = logging.getLogger("clipmill")


class NoInputError(RuntimeError):
    """No input video was found (exit code 1)."""


def make_runner(cfg: CurateConfig) -> LocalRunner | RayRunner:
    if cfg.ray.address == "none":
        return LocalRunner()
    return RayRunner(cfg.ray.address, cfg.ray.num_cpus, cfg.ray.fuse)


def check_codecs_on_cluster(cfg: CurateConfig) -> None:
    """A GPU encoder or decoder that cannot run fails now, naming its flag, not per video:
    probed where its stage runs, as a Ray task with the stage's own resources (the head
    often has no GPU). On one machine `check_codecs` probes in this process (`_start`)."""
    import ray

    for probe, res in codec_checks(cfg):
        try:
            ray.get(ray.remote(_call).options(**res.ray_args()).remote(probe))
        except ray.exceptions.RayTaskError as err:  # the ConfigError itself, not Ray's wrapper
            if isinstance(err.cause, ConfigError):
                raise err.cause from None
            raise


def _call(fn: Callable[[], None]) -> None:
    fn()


def _start(
    cfg: CurateConfig, rows: list[dict]
) -> tuple[LocalRunner | RayRunner, Callable[[], list[dict]]]:
    """The runner, once the codecs are checked, and a call that gives the probed `rows`.

    probe: 1:1, hash + container facts + first frame. On a cluster, Ray tasks on the nodes
    (fractional CPUs). On this machine (a local Ray instance or none), threads here, started
    before `ray.init` so they run while it starts Ray's processes (2-3 s): a Ray dataset of
    probe tasks cost 2-2.5 s more than that. Hashing and PyAV's decode free the GIL.
    """
    if cfg.ray.address not in (None, "none"):
        runner = make_runner(cfg)
        check_codecs_on_cluster(cfg)
        return runner, partial(runner.map, rows, probe_video, cfg.probe.resources)
    check_codecs(cfg)  # the stages run on this machine: a failing codec stops it here
    probing = _probe_in_threads(rows)
    return make_runner(cfg), probing


def _probe_in_threads(rows: list[dict]) -> Callable[[], list[dict]]:
    """Start probing `rows` on threads; the returned call waits for them, in order."""
    pool = ThreadPoolExecutor(max_workers=max(1, min(len(rows), os.cpu_count() or 1)))
    futures = [pool.submit(probe_video, r) for r in rows]
    pool.shutdown(wait=False)  # the queued probes still run; no thread outlives them
    return lambda: [f.result() for f in futures]


def _discover(inputs: list[str], out: Path) -> list[dict]:
    cands, missing = expand_inputs(inputs, exclude=out)
    rows = [
        {"path": c.path, "explicit": c.explicit, "order": i, "work_dir": str(work_dir(out))}
        for i, c in enumerate(cands)
    ]
    return rows + [
        {"path": m, "missing": True, "order": len(rows) + i} for i, m in enumerate(missing)
    ]


def lowres_scorers(cfg: CurateConfig) -> list[Stage]:
    """Stages that score clips from the split's low-res samples (no decode of their own)."""
    f = cfg.filters
    stages: list[Stage] = []
    if f.motion.enabled:
        # motion: 1:1, Farneback on tiny frames; a fraction of a core, one actor.
        stages.append((MotionStage, (cfg,), f.motion.resources))
    if f.blank.enabled or f.blur.enabled:
        # technical: 1:1, blank/blur from three numbers per frame; nearly free.
        stages.append((TechnicalStage, (cfg,), f.blank.resources))
    if cfg.dedup.perceptual:
        # phash: 1:1, DCT hashes of a few tiny frames for pack-time dedup; nearly free.
        stages.append((PerceptualHashStage, (cfg,), cfg.dedup.resources))
    return stages


def mp4_scorers(cfg: CurateConfig) -> list[Stage]:
    """Stages that score clips from their mp4s (frames decoded once, shared)."""
    stages: list[Stage] = []
    if cfg.filters.text.enabled:
        # text: 1:1, OCR on 1-3 frames per clip; ONNX on one core per actor.
        stages.append((TextStage, (cfg,), cfg.filters.text.resources))
    if cfg.clip.enabled:
        # clip: 1:1, K frames per clip batched through open_clip; set num_gpus on a GPU node.
        stages.append((ClipStage, (cfg,), cfg.clip.resources))
    if "vlm" in cfg.caption.sources:
        # vlm: 1:1, a few frames per clip through a VLM, batched; its own pool (num_gpus).
        stages.append((VlmStage, (cfg.caption,), cfg.caption.vlm.resources))
    # caption: 1:1, sidecars + ranking (+ CLIP text tower); after CLIP, whose embeddings it reads.
    stages.append((CaptionStage, (cfg.caption, cfg.clip), cfg.caption.resources))
    return stages


def _any_long(durations: list[float | None] | None, seconds: float | None) -> bool:
    """Whether some video may be longer than `seconds` (an unknown duration may)."""
    if seconds is None:
        return False
    return durations is None or any(d is None or d > seconds for d in durations)


def _spans_apply(cfg: CurateConfig, durations: list[float | None] | None) -> bool:
    chunk_s = cfg.split.chunk_s
    return _any_long(durations, None if chunk_s is None else 1.5 * chunk_s)


def span_stages(
    cfg: CurateConfig, work: Path, durations: list[float | None] | None = None
) -> list[Stage]:
    """The fan-out of long videos into analysis spans, when `--split.chunk_s` can apply
    (`SpansStage` leaves a video shorter than 1.5 chunk_s whole)."""
    if not _spans_apply(cfg, durations):
        return []
    # spans: 1:N, a long video as one row per analysis span; reads its timestamps (seconds).
    return [(SpansStage, (cfg.split, str(work)), StageResources(num_cpus=0.25))]


def unit_stages(cfg: CurateConfig, durations: list[float | None] | None = None) -> list[Stage]:
    """The fan-out of long videos into encode units, when `--transcode.chunk_s` can apply;
    also where the rows of analysis spans that another span joined are dropped.

    Left out when every video is too short to make two units (or spans), so the CPU stages
    of such a run stay fused in one pool, as before (`fuse_cpu_stages`). The probed
    durations are the container's word: half of chunk_s leaves room for one that is short
    of the frames, and an unknown duration counts as long. Out or in, a video's units are
    the same.
    """
    tc = cfg.transcode
    units = tc.chunked and _any_long(durations, tc.chunk_s / 2)
    if not units and not _spans_apply(cfg, durations):
        return []
    # units: 1:N, a video longer than chunk_s as one row per encode unit; a cheap task.
    return [(UnitsStage, (tc,), StageResources(num_cpus=0.25))]


def video_stages(
    cfg: CurateConfig, work: Path, durations: list[float | None] | None = None
) -> list[Stage]:
    """The stages one unfinished video goes through, in order, split to finalize;
    `durations` (the probed ones of the videos to process) may leave out `unit_stages`."""
    return [
        *span_stages(cfg, work, durations),
        # split: 1:1, one low-res decode per video (or span); TransNetV2 (GPU-able) loads once
        # per actor.
        (SplitStage, (cfg.split, str(work)), cfg.split.resources),
        *unit_stages(cfg, durations),
        # transcode: 1:N clips, one ffmpeg pass per video or unit (x264 threads).
        (TranscodeStage, (cfg.transcode,), cfg.transcode.resources),
        *lowres_scorers(cfg),
        *mp4_scorers(cfg),
        # finalize: 1:1, hashes + thumbnails of small clips; cheap; its rename marks done.
        (
            FinalizeStage,
            (fingerprint(cfg), score_fingerprint(cfg), cfg.shards.thumbnails),
            StageResources(num_cpus=0.25),
        ),
    ]


def curate(
    inputs: list[str],
    output: str | Path,
    cfg: CurateConfig,
    progress: Progress | Callable[[str], None] | None = None,
    page: bool = True,
) -> dict[str, Any]:
    """Run the whole curation; returns summary.json's content.

    `progress` sees every finished video: a `Progress` (the CLI's console), or a callable
    given one plain line per message and video (default: the `clipmill` logger at INFO).
    `page` False leaves report.html and its clip previews to `clipmill report OUT`.
    """
    show = progress if isinstance(progress, Progress) else Progress.lines(progress or log.info)
    check_clip_config(cfg)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    invalidate(out)
    work = work_dir(out)
    t0 = time.perf_counter()
    rows = _discover(inputs, out)
    missing = [r for r in rows if r.get("missing")]
    runner, probed = _start(cfg, [r for r in rows if not r.get("missing")])
    videos = [v for v in probed() if v["status"] != "ignored"]
    videos += [
        empty_video(
            source_path=r["path"], status="error", order=r["order"], error="input not found"
        )
        for r in missing
    ]
    if not any(v["status"] == "ok" for v in videos):
        raise NoInputError(f"no input video found in {inputs} ({len(videos)} unreadable)")
    mark_duplicates(videos)
    # A person's split/join edits (OUT/overrides.jsonl) travel with their video to split.
    edits = cut_edits(read_overrides(out))
    for v in videos:
        if v["status"] == "ok" and edits.get(v["video_id"]):
            v["cut_edits"] = edits[v["video_id"]]
    counts = _process(runner, videos, cfg, work, show)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # Packing and the page need no Ray: a local instance shuts down (1-2 s) meanwhile.
        packing = pool.submit(_pack_and_page, out, videos, cfg, page)
        runner.close()
        summary = packing.result()
    run = {"wall_s": round(time.perf_counter() - t0, 3), **counts}
    (work / "last_run.json").write_text(json.dumps(run))
    return summary


def _pack_and_page(
    out: Path, videos: list[dict[str, Any]], cfg: CurateConfig, page: bool
) -> dict[str, Any]:
    """Shards, manifest and summary from the staged videos; then report.html, if `page`."""
    fp = fingerprint(cfg)
    staged = {
        v["video_id"]: load_staged(work_dir(out), v["video_id"], fp)
        for v in videos
        if v["status"] == "ok"
    }
    summary = pack(out, videos, staged, cfg)
    if page:
        write_report_quietly(out)  # report.html: the human view; its failure costs one log line
    return summary


def _process(
    runner: LocalRunner | RayRunner,
    videos: list[dict[str, Any]],
    cfg: CurateConfig,
    work: Path,
    show: Progress,
) -> dict[str, int]:
    """Stream every unfinished video through the stages, re-score stale finished ones."""
    fp, sfp = fingerprint(cfg), score_fingerprint(cfg)
    staged = {
        v["video_id"]: load_staged(work, v["video_id"], fp) for v in videos if v["status"] == "ok"
    }
    for v in videos:  # cut with other edits than the person's latest: only that video again
        rec = staged.get(v["video_id"]) if v["status"] == "ok" else None
        if rec is not None and rec.get("cut_edits") != v.get("cut_edits"):
            staged[v["video_id"]] = None
    pending = [v for v in videos if v["status"] == "ok" and not staged[v["video_id"]]]
    stale = {
        vid: rec
        for vid, rec in staged.items()
        if rec is not None and rec.get("score_fingerprint") != sfp
    }
    rescore = [
        {"video": json.dumps(prepare_rescore(rec, video_dir(work, vid), cfg))}
        for vid, rec in stale.items()
    ]
    show.note(
        f"{len(videos)} videos ({sum(v['status'] == 'ok' for v in videos)} ok), "
        f"{len(pending)} to process, "
        f"{len(rescore)} to re-score, {len(staged) - len(pending)} already done"
    )
    stages = video_stages(cfg, work, [v.get("duration_s") for v in pending])
    # The progress counts footage: the probed duration of each video, not its clips.
    footage = {v["video_id"]: v.get("duration_s") or 0.0 for v in videos if v["status"] == "ok"}
    show.start(len(pending), sum(footage[v["video_id"]] for v in pending))
    done: set[str] = set()
    for row in runner.stream([{"video": json.dumps(v)} for v in pending], stages):
        # A unit of a long video that is not its last, or a unit Ray re-ran after its video
        # was finished, is no video done.
        if not row["final"] or row["video_id"] in done:
            continue
        done.add(row["video_id"])
        show.video(
            row["video_id"], row["status"], footage.get(row["video_id"], 0.0), row["n_clips"]
        )
    show.finish()
    # rescore: 1:1, text/CLIP settings changed on a finished video: only those stages re-run.
    again = [*mp4_scorers(cfg), (RescoreStage, (sfp,), StageResources(num_cpus=0.25))]
    show.start(len(rescore), sum(footage[vid] for vid in stale), verb="re-scored")
    for row in runner.stream(rescore, again):
        vid = row["video_id"]
        show.video(vid, row["status"], footage.get(vid, 0.0), len(stale[vid]["clips"]))
    show.finish()
    return {"processed": len(pending), "rescored": len(rescore)}
