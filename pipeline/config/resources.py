"""Where and how wide each stage runs on Ray: the `resources` field of every stage section.

Every stage section (`split`, `transcode`, `filters.text`, `clip`, `caption.vlm`, …) has a
`resources` field of this type, so `--clip.resources.num_gpus 0.25` or
`--transcode.resources.custom '{"cpu_big": 1}'` places one stage without touching the others.
`ray_args`/`actor_args` turn it into the arguments of Ray Data's `Dataset.map` (actor pools
for the callable-class stages, tasks for plain functions), `task_retries`/`actor_retries` into
Ray's retry options; `RayRunner` in `pipeline.driver` applies them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.config.base import check

# Names Ray reserves; a custom resource must not shadow them (the flag would silently do nothing).
_RESERVED = ("CPU", "GPU", "memory", "object_store_memory")


def _whole_above_one(x: float) -> bool:
    """Ray schedules fractions of one unit only: 0.25 or 3 are fine, 1.5 is not."""
    return x <= 1 or float(x).is_integer()


@dataclass(frozen=True)
class StageResources:
    """How Ray runs one stage: per-actor CPUs/GPUs/custom resources, pool bounds, retries."""

    num_cpus: float = 1.0
    """Logical CPUs per actor (fractions allowed); scaled down on a machine too small for
    one actor of every pool (see `RayRunner`)."""
    num_gpus: float = 0.0
    """GPUs per actor; a fraction (0.25) packs several actors onto one GPU."""
    concurrency: int | tuple[int, int] | None = None
    """Actor-pool bounds: N grows from one actor up to N; [min, max] autoscales between
    them ([N, N]: fixed); None: up to as many as the cluster's CPUs allow. A [min, max]
    stage keeps its own pool (never fused with its CPU neighbours)."""
    custom: dict[str, float] = field(default_factory=dict)
    """Custom Ray resources per actor, e.g. {"node2": 1} to run only on nodes started with
    `ray start --resources '{"node2": 1}'`. A stage with any keeps its own pool."""
    own_pool: bool = False
    """Never fuse this stage with its CPU neighbours (`--ray.fuse`): every fused actor builds
    every member stage, so a model stage fused in would load its model in every actor and
    its `concurrency` would cap nothing. On for CLIP and the VLM."""
    memory: int | None = None
    """Bytes of RAM Ray reserves per actor when scheduling (not a limit); None: none."""
    max_task_retries: int = 3
    """Times a video is re-run when the worker holding it dies (SIGKILL, OOM, lost node);
    the actor is restarted. -1 retries for ever. Stages are idempotent, so a retried
    video is neither lost nor doubled; a stage's own exceptions are data, never retried."""

    def __post_init__(self) -> None:
        # YAML and JSON give lists; the field is a tuple so the config stays comparable.
        if isinstance(self.concurrency, list):
            object.__setattr__(self, "concurrency", tuple(self.concurrency))

    def check(self, section: str) -> None:
        """Raise ConfigError naming `--{section}.<field>` for the first bad value."""
        check(self.num_cpus > 0, f"{section}.num_cpus", f"must be > 0, got {self.num_cpus}")
        check(
            self.num_gpus >= 0 and _whole_above_one(self.num_gpus),
            f"{section}.num_gpus",
            f"must be a fraction in [0, 1] or a whole number, got {self.num_gpus}",
        )
        self._check_concurrency(section)
        check(isinstance(self.own_pool, bool), f"{section}.own_pool", "must be true or false")
        for name, amount in self.custom.items():
            check(
                isinstance(name, str) and bool(name) and name not in _RESERVED,
                f"{section}.custom",
                f"names a custom resource, not one of {_RESERVED}: got {name!r}",
            )
            check(
                amount > 0 and _whole_above_one(amount),
                f"{section}.custom",
                f"{name!r} must be > 0, a fraction <= 1 or a whole number, got {amount}",
            )
        check(
            self.memory is None or self.memory > 0,
            f"{section}.memory",
            f"must be > 0 bytes, got {self.memory}",
        )
        check(
            self.max_task_retries >= -1,
            f"{section}.max_task_retries",
            f"must be >= -1, got {self.max_task_retries}",
        )

    def _check_concurrency(self, section: str) -> None:
        c, flag = self.concurrency, f"{section}.concurrency"
        if c is None:
            return
        if isinstance(c, tuple):
            check(
                len(c) == 2 and all(isinstance(x, int) for x in c) and 1 <= c[0] <= c[1],
                flag,
                f"must be N or [min, max] with 1 <= min <= max, got {list(c)}",
            )
        else:
            check(isinstance(c, int) and c >= 1, flag, f"must be >= 1, got {c}")

    @property
    def placed(self) -> bool:
        """True when this stage asks for more than plain CPUs, so it needs its own pool."""
        return (
            self.own_pool
            or self.num_gpus > 0
            or bool(self.custom)
            or isinstance(self.concurrency, tuple)
        )

    def ray_args(self) -> dict[str, Any]:
        """Named resource arguments of `Dataset.map` (shared by task and actor stages)."""
        args: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.num_gpus:
            args["num_gpus"] = self.num_gpus
        if self.custom:
            args["resources"] = dict(self.custom)
        if self.memory:
            args["memory"] = self.memory
        return args

    def pool_size(self, cluster_cpus: int) -> tuple[int, int]:
        """[min, max] actors of this stage's pool; the pool starts at min.

        Unless bounds are given, a pool starts at one actor and grows (to N, or to the
        cluster's CPUs): a pool that starts wide can hold idle CPUs a pool upstream needs.
        """
        c = self.concurrency
        if isinstance(c, tuple):
            return c
        return (1, c or max(1, int(cluster_cpus // max(self.num_cpus, 1e-3))))

    def actor_args(self, cluster_cpus: int, cpu_scale: float = 1.0) -> dict[str, Any]:
        """Named `Dataset.map` arguments for a callable-class stage: an actor pool."""
        from ray.data import ActorPoolStrategy  # only the Ray runner gets here

        lo, hi = self.pool_size(cluster_cpus)
        # One row at a time per actor: a row is a whole video (or unit), seconds to minutes
        # of work. Ray Data's default queues a second row on a busy actor, where it stays
        # even once another actor is free (seen: a video's two encode units one after the
        # other on one actor while the pool's second actor started idle).
        pool = ActorPoolStrategy(min_size=lo, max_size=hi, max_tasks_in_flight_per_actor=1)
        return {**self.ray_args(), "num_cpus": self.num_cpus * cpu_scale, "compute": pool}

    def task_retries(self) -> dict[str, int]:
        """Ray's retry options for a plain-function stage (tasks): re-run on worker death.

        Ray Data has no named parameter for them; `RayRunner` passes them through the
        deprecated `**ray_remote_args` (see `pipeline.runners.map_with_retries`).
        """
        return {"max_retries": self.max_task_retries}

    def actor_retries(self) -> dict[str, int]:
        """Ray's retry options for an actor-pool stage, passed like `task_retries`.

        A killed actor comes back (-1: always) and its in-flight videos run again, at most
        `max_task_retries` times: a video that kills every worker it reaches is given up.
        """
        return {"max_restarts": -1, "max_task_retries": self.max_task_retries}
