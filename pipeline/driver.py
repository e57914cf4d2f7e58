"""`clipmill curate`: the stages chained on Ray Data, streaming, one video per row.

    discover (driver) → probe (1:1) → dedup (driver) → split (1:1) → transcode (1:N clips)
    → finalize (1:1, atomic) → pack (driver)

Probing is cheap and its rows are small, so they are collected on the driver
to mark byte-identical duplicates and skip finished videos before any decode.
Splitting and transcoding then stream through Ray Data, one video per block.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.config import CurateConfig, StageResources
from pipeline.discover import expand_inputs
from pipeline.pack import invalidate, pack
from pipeline.probe import mark_duplicates, probe_video
from pipeline.staging import FinalizeStage, SplitStage, TranscodeStage, fingerprint, load_staged
from schemas import empty_video

log = logging.getLogger("clipmill")


class NoInputError(RuntimeError):
    """No input video was found (exit code 1)."""


class LocalRunner:
    """Runs the stages in this process, in order (`--ray.address none`, and unit tests)."""

    def map(self, rows: list[dict], fn: Callable, res: StageResources) -> list[dict]:
        return [fn(r) for r in rows]

    def stream(
        self, rows: list[dict], stages: list[tuple[type, tuple, StageResources]]
    ) -> Iterator[dict]:
        built = [cls(*args) for cls, args, _ in stages]
        for row in rows:
            for stage in built:
                row = stage(row)
            yield row


class RayRunner:
    """Runs the stages on Ray Data (local instance or a cluster)."""

    def __init__(self, address: str | None, num_cpus: int | None) -> None:
        import ray

        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is None:
                kwargs["num_cpus"] = num_cpus or os.cpu_count()
            ray.init(address=address, **kwargs)
        self.cpus = int(ray.cluster_resources().get("CPU", 1))

    def _pool(self, res: StageResources) -> int:
        return res.concurrency or max(1, int(self.cpus // max(res.num_cpus, 1e-3)))

    def map(self, rows: list[dict], fn: Callable, res: StageResources) -> list[dict]:
        import ray

        if not rows:
            return []
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        out = ds.map(fn, **res.ray_args()).take_all()
        return sorted(out, key=lambda r: r["order"])

    def stream(
        self, rows: list[dict], stages: list[tuple[type, tuple, StageResources]]
    ) -> Iterator[dict]:
        import ray

        if not rows:
            return iter(())
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        for cls, args, res in stages:
            # Callable classes run as actor pools: a model (TransNetV2) loads once per actor.
            ds = ds.map(
                cls, fn_constructor_args=args, concurrency=self._pool(res), **res.ray_args()
            )
        return ds.iter_rows()


def make_runner(cfg: CurateConfig) -> LocalRunner | RayRunner:
    if cfg.ray.address == "none":
        return LocalRunner()
    return RayRunner(cfg.ray.address, cfg.ray.num_cpus)


def _discover(inputs: list[str], out: Path) -> list[dict]:
    cands, missing = expand_inputs(inputs, exclude=out)
    rows = [
        {"path": c.path, "explicit": c.explicit, "order": i, "work_dir": str(out / "work")}
        for i, c in enumerate(cands)
    ]
    return rows + [
        {"path": m, "missing": True, "order": len(rows) + i} for i, m in enumerate(missing)
    ]


def curate(
    inputs: list[str],
    output: str | Path,
    cfg: CurateConfig,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the whole curation; returns summary.json's content."""
    say = progress or log.info
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    invalidate(out)
    work = out / "work"
    t0 = time.perf_counter()
    rows = _discover(inputs, out)
    missing = [r for r in rows if r.get("missing")]
    runner = make_runner(cfg)
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
    fp = fingerprint(cfg)
    staged = {
        v["video_id"]: load_staged(work, v["video_id"], fp) for v in videos if v["status"] == "ok"
    }
    todo = [
        {"video": json.dumps(v)}
        for v in videos
        if v["status"] == "ok" and staged[v["video_id"]] is None
    ]
    say(
        f"{len(videos)} videos ({sum(v['status'] == 'ok' for v in videos)} ok), "
        f"{len(todo)} to process, {len(staged) - len(todo)} already done"
    )
    stages = [
        # split: 1:1, one low-res decode per video; TransNetV2 (GPU-able) loads once per actor.
        (SplitStage, (cfg.split, str(work)), cfg.split.resources),
        # transcode: 1:N clips, one ffmpeg pass per video (x264 threads).
        (TranscodeStage, (cfg.transcode,), cfg.transcode.resources),
        # finalize: 1:1, hashes + thumbnails of small clips; cheap; its rename marks done.
        (FinalizeStage, (fp, cfg.shards.thumbnails), StageResources(num_cpus=0.25)),
    ]
    for done, row in enumerate(runner.stream(todo, stages), 1):
        say(f"[{done}/{len(todo)}] {row['video_id']} {row['status']} {row['n_clips']} clips")
    staged = {vid: load_staged(work, vid, fp) for vid in staged}
    summary = pack(out, videos, staged, cfg)
    (work / "last_run.json").write_text(
        json.dumps({"wall_s": round(time.perf_counter() - t0, 3), "processed": len(todo)})
    )
    return summary
