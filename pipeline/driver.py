"""`clipmill curate`: the stages chained on Ray Data, streaming, one video per row.

    discover (driver) → probe (1:1) → dedup (driver) → split (1:1) → transcode (1:N clips)
    → motion, technical, phash, text, clip (1:1, scores only) → finalize (1:1, atomic)
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
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.captions.stage import CaptionStage, VlmStage
from pipeline.config.curate import ConfigError, CurateConfig
from pipeline.config.resources import StageResources
from pipeline.console import Progress, stdin_from_devnull
from pipeline.discover import expand_inputs
from pipeline.pack.pack import invalidate, pack
from pipeline.report.page import write_report_quietly
from pipeline.review.overrides import cut_edits, read_overrides
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
    fingerprint,
    load_staged,
    prepare_rescore,
    score_fingerprint,
)
from schemas import empty_video
from schemas.layout import video_dir, work_dir

log = logging.getLogger("clipmill")
Stage = tuple[type, tuple, StageResources]  # stage class, constructor arguments, resources


class NoInputError(RuntimeError):
    """No input video was found (exit code 1)."""


class LocalRunner:
    """Runs the stages in this process, in order (`--ray.address none`, and unit tests)."""

    def map(self, rows: list[dict], fn: Callable, res: StageResources) -> list[dict]:
        return [fn(r) for r in rows]

    def stream(self, rows: list[dict], stages: list[Stage]) -> Iterator[dict]:
        if not rows:
            return  # no stage is built (models are not loaded) for nothing
        built = [cls(*args) for cls, args, _ in stages]
        for row in rows:
            for stage in built:
                row = stage(row)
            yield row


class ChainStage:
    """Several CPU stages run one after the other inside one actor.

    Each Ray Data actor pool costs start-up time and a reserved CPU; on a laptop
    nine pools of a few actors each spend more time waiting than working. Fused,
    every actor takes a whole video through the CPU stages, and the pool is as
    wide as the machine.
    """

    def __init__(self, specs: list[tuple[type, tuple]]) -> None:
        self.stages = [cls(*args) for cls, args in specs]

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        for stage in self.stages:
            row = stage(row)
        return row


def fuse_cpu_stages(stages: list[Stage]) -> list[Stage]:
    """Merge runs of consecutive plain-CPU stages into ChainStages.

    A placed stage (GPUs, custom resources, [min, max] bounds, own_pool) keeps its own
    pool: fused, its placement would apply to its neighbours too, or be lost.
    """
    out: list[Stage] = []
    run: list[Stage] = []

    def flush() -> None:
        if len(run) == 1:
            out.append(run[0])
        elif run:
            memory = [r.memory for _, _, r in run if r.memory]
            res = StageResources(
                num_cpus=max(r.num_cpus for _, _, r in run),
                memory=max(memory) if memory else None,  # one stage at a time per actor
                max_task_retries=max(r.max_task_retries for _, _, r in run),
            )
            out.append((ChainStage, ([(c, a) for c, a, _ in run],), res))
        run.clear()

    for stage in stages:
        if stage[2].placed:
            flush()
            out.append(stage)
        else:
            run.append(stage)
    flush()
    return out


class RayRunner:
    """Runs the stages on Ray Data (local instance or a cluster)."""

    def __init__(self, address: str | None, num_cpus: int | None, fuse: bool = True) -> None:
        self.fuse = fuse
        import ray

        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is None:
                kwargs["num_cpus"] = num_cpus or os.cpu_count()
            with stdin_from_devnull():  # Ray's processes must not hold the person's terminal
                ray.init(address=address, **kwargs)
        self.cpus = int(ray.cluster_resources().get("CPU", 1))

    def _actor_args(self, stages: list[Stage]) -> list[dict[str, Any]]:
        """Ray arguments of each stage's actor pool (`StageResources.actor_args`).

        Ray Data keeps an idle actor's CPUs. If the first actors of all stages cannot
        fit at once, a downstream pool that started first can starve an upstream one
        for ever (seen with eight stages on two cores). So on a small cluster each
        stage's CPU request is scaled down until one actor of every stage fits; the OS
        shares the cores.
        """
        need = sum(res.num_cpus for _, _, res in stages)
        scale = min(1.0, self.cpus / need) if need else 1.0
        return [res.actor_args(self.cpus, scale) for _, _, res in stages]

    def map(self, rows: list[dict], fn: Callable, res: StageResources) -> list[dict]:
        import ray

        if not rows:
            return []
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        # A plain function runs as Ray tasks (Ray Data's default compute).
        out = map_with_retries(ds, fn, res.task_retries(), **res.ray_args()).take_all()
        return sorted(out, key=lambda r: r["order"])

    def stream(self, rows: list[dict], stages: list[Stage]) -> Iterator[dict]:
        import ray

        if not rows:
            return iter(())
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        if self.fuse:
            stages = fuse_cpu_stages(stages)
        for (cls, args, res), ray_args in zip(stages, self._actor_args(stages), strict=True):
            # Callable classes run as actor pools: a model (TransNetV2) loads once per actor.
            retries = res.actor_retries()
            ds = map_with_retries(ds, cls, retries, fn_constructor_args=args, **ray_args)
        return ds.iter_rows()


def map_with_retries(ds: Any, fn: Callable, retries: dict[str, int], **named: Any) -> Any:
    """`ds.map(fn, **named)` with Ray's retry options, without the warning they raise.

    Ray 2.60's `Dataset.map` names no retry parameter: max_retries, max_restarts and
    max_task_retries only pass through `**ray_remote_args`, which warns "deprecated and will
    be removed in Ray 2.64". Ray Data's own default retries for ever, so a video that kills
    every worker it reaches (a poison file) would hang the run: the options stay, and only
    that warning is silenced. Revisit on upgrading to Ray 2.64.
    """
    from ray.util.annotations import RayDeprecationWarning

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="`ray_remote_args` is deprecated", category=RayDeprecationWarning
        )
        return ds.map(fn, **named, **retries)


def make_runner(cfg: CurateConfig) -> LocalRunner | RayRunner:
    if cfg.ray.address == "none":
        return LocalRunner()
    return RayRunner(cfg.ray.address, cfg.ray.num_cpus, cfg.ray.fuse)


def check_codecs_where_they_run(runner: LocalRunner | RayRunner, cfg: CurateConfig) -> None:
    """A GPU encoder or decoder that cannot run fails now, naming its flag, not per video.

    Probed where its stage runs: in this process for in-process and local-Ray runs, and on
    a cluster as a Ray task with the stage's own resources (the head often has no GPU).
    """
    if not isinstance(runner, RayRunner) or cfg.ray.address is None:
        check_codecs(cfg)
        return
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


def video_stages(cfg: CurateConfig, work: Path) -> list[Stage]:
    """The stages one unfinished video goes through, in order, split to finalize."""
    return [
        # split: 1:1, one low-res decode per video; TransNetV2 (GPU-able) loads once per actor.
        (SplitStage, (cfg.split, str(work)), cfg.split.resources),
        # transcode: 1:N clips, one ffmpeg pass per video (x264 threads).
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
) -> dict[str, Any]:
    """Run the whole curation; returns summary.json's content.

    `progress` sees every finished video: a `Progress` (the CLI's console), or a callable
    given one plain line per message and video (default: the `clipmill` logger at INFO).
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
    runner = make_runner(cfg)
    check_codecs_where_they_run(runner, cfg)
    # probe: 1:1, hash + container facts + first frame; cheap, so fractional CPUs.
    probed = runner.map([r for r in rows if not r.get("missing")], probe_video, cfg.probe.resources)
    videos = [v for v in probed if v["status"] != "ignored"]
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
    fp = fingerprint(cfg)
    staged = {
        v["video_id"]: load_staged(work, v["video_id"], fp) for v in videos if v["status"] == "ok"
    }
    summary = pack(out, videos, staged, cfg)
    write_report_quietly(out)  # report.html: the human view; its failure costs one log line
    run = {"wall_s": round(time.perf_counter() - t0, 3), **counts}
    (work / "last_run.json").write_text(json.dumps(run))
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
    stages = video_stages(cfg, work)
    # The progress counts footage: the probed duration of each video, not its clips.
    footage = {v["video_id"]: v.get("duration_s") or 0.0 for v in videos if v["status"] == "ok"}
    show.start(len(pending), sum(footage[v["video_id"]] for v in pending))
    for row in runner.stream([{"video": json.dumps(v)} for v in pending], stages):
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
