"""How the driver's stages run: in this process, or as Ray Data actor pools.

A stage list is `(class, constructor arguments, StageResources)` triples. Runs of plain CPU
stages fuse into one actor (`ChainStage`); a stage that fans out (`fans_out`) is flat-mapped,
its rows one per block: in the actor of the CPU stages before it (`FanChainStage`), or as
tasks of its own.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from pipeline.config.resources import StageResources
from pipeline.console import stdin_from_devnull

Stage = tuple[type, tuple, StageResources]  # stage class, constructor arguments, resources


class LocalRunner:
    """Runs the stages in this process, in order (`--ray.address none`, and unit tests)."""

    def map(self, rows: list[dict], fn: Callable, res: StageResources) -> list[dict]:
        return [fn(r) for r in rows]

    def close(self) -> None:
        """Nothing to stop."""

    def stream(self, rows: list[dict], stages: list[Stage]) -> Iterator[dict]:
        if not rows:
            return  # no stage is built (models are not loaded) for nothing
        built = [cls(*args) for cls, args, _ in stages]
        for row in rows:
            yield from _through(row, built)


def _through(row: dict, built: list[Callable]) -> Iterator[dict]:
    """`row` through the stages in order; a stage that fans out sends each of its rows on."""
    for i, stage in enumerate(built):
        if fans_out(stage):
            for part in stage(row):
                yield from _through(part, built[i + 1 :])
            return
        row = stage(row)
    yield row


def fans_out(stage: Any) -> bool:
    """A 1:N stage (`UnitsStage`): flat-mapped, its rows one per block."""
    return bool(getattr(stage, "fans_out", False))


def runs_as_task(cls: type) -> bool:
    """A fan-out on its own (first, or after a placed stage) runs as Ray tasks: no actor
    holds CPUs for it between rows. One fused after CPU stages runs in their actor."""
    return fans_out(cls) and not issubclass(cls, ChainStage)


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


class FanChainStage(ChainStage):
    """CPU stages, then a fan-out, in one actor (flat-mapped).

    Run as a task of its own, a fan-out after the split (`UnitsStage`) started a Ray worker
    for most rows (Ray ends an idle worker beyond the CPUs' count after a second): 0.5-1.4 s
    each, between a video's split and its transcode.
    """

    fans_out = True

    def __init__(self, specs: list[tuple[type, tuple]]) -> None:
        *head, (fan, args) = specs
        super().__init__(head)
        self.fan = fan(*args)

    def __call__(self, row: dict[str, Any]) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.fan(super().__call__(row))


def fuse_cpu_stages(stages: list[Stage]) -> list[Stage]:
    """Merge runs of consecutive plain-CPU stages into ChainStages; a fan-out right after
    such a run ends it, in the same actor (`FanChainStage`).

    A placed stage (GPUs, custom resources, [min, max] bounds, own_pool) keeps its own
    pool: fused, its placement would apply to its neighbours too, or be lost.
    """
    out: list[Stage] = []
    run: list[Stage] = []

    def flush(cls: type = ChainStage) -> None:
        if len(run) == 1 and cls is ChainStage:
            out.append(run[0])
        elif run:
            memory = [r.memory for _, _, r in run if r.memory]
            res = StageResources(
                num_cpus=max(r.num_cpus for _, _, r in run),
                memory=max(memory) if memory else None,  # one stage at a time per actor
                max_task_retries=max(r.max_task_retries for _, _, r in run),
            )
            out.append((cls, ([(c, a) for c, a, _ in run],), res))
        run.clear()

    for stage in stages:
        if fans_out(stage[0]) and run and not stage[2].placed:
            run.append(stage)
            flush(FanChainStage)
        elif stage[2].placed or fans_out(stage[0]):
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

        self.started = not ray.is_initialized()
        if self.started:
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is None:
                kwargs["num_cpus"] = num_cpus or os.cpu_count()
            with stdin_from_devnull():  # Ray's processes must not hold the person's terminal
                ray.init(address=address, **kwargs)
        self.cpus = int(ray.cluster_resources().get("CPU", 1))

    def close(self) -> None:
        """Shut down the Ray instance this runner started; one it joined runs on."""
        import ray

        if self.started:
            ray.shutdown()

    def _actor_args(self, stages: list[Stage]) -> list[dict[str, Any]]:
        """Ray arguments of each stage's actor pool (`StageResources.actor_args`).

        Ray Data keeps an idle actor's CPUs. If the first actors of all stages cannot
        fit at once, a downstream pool that started first can starve an upstream one
        for ever (seen with eight stages on two cores). So on a small cluster each
        stage's CPU request is scaled down until every pool's first actors (its minimum)
        and a fan-out's task fit; the OS shares the cores.
        """
        need = sum(
            res.num_cpus * (1 if runs_as_task(c) else res.pool_size(self.cpus)[0])
            for c, _, res in stages
        )
        scale = min(1.0, self.cpus / need) if need else 1.0
        return [
            {"num_cpus": res.num_cpus * scale}
            if runs_as_task(c)
            else res.actor_args(self.cpus, scale)
            for c, _, res in stages
        ]

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
        from ray.data.context import AutoscalingConfig

        if not rows:
            return iter(())
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        if self.fuse:
            stages = fuse_cpu_stages(stages)
        if any(fans_out(cls) for cls, _, _ in stages):
            # Every row its own block, the fanned-out ones too: an actor takes a whole block,
            # so a video's units in one block would run on one worker, one after the other.
            # (A `repartition` would do it as a task asking for a whole CPU the pools hold.)
            ds.context.target_max_block_size = 1
        # A pool grows once every actor is busy (utilisation 1.0 with one row in flight per
        # actor, `StageResources.actor_args`); Ray Data's 1.75 would need rows queued on
        # busy actors, so such a pool would never grow.
        ds.context.autoscaling_config = AutoscalingConfig(actor_pool_util_upscaling_threshold=1.0)
        for (cls, args, res), ray_args in zip(stages, self._actor_args(stages), strict=True):
            if runs_as_task(cls):
                ds = ds.flat_map(cls(*args), **ray_args)  # a task: splitting a row is free
                continue
            # Callable classes run as actor pools: a model (TransNetV2) loads once per actor.
            retries, how = res.actor_retries(), "flat_map" if fans_out(cls) else "map"
            ds = map_with_retries(ds, cls, retries, how, fn_constructor_args=args, **ray_args)
        return ds.iter_rows()


def map_with_retries(
    ds: Any, fn: Callable, retries: dict[str, int], how: str = "map", **named: Any
) -> Any:
    """`ds.map(fn, **named)` (or `how`: "flat_map") with Ray's retry options, without the
    warning they raise.

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
        return getattr(ds, how)(fn, **named, **retries)
