"""What every config section shares: the error type, the check helper, stage resources.

Apart from `pipeline.config` so the scoring sections (`pipeline.score_config`) can use it
without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the flag."""


def _check(ok: bool, flag: str, why: str) -> None:
    if not ok:
        raise ConfigError(f"--{flag} {why}")


@dataclass(frozen=True)
class StageResources:
    """How Ray runs one stage: per-task CPUs/GPUs, pool size, rows per batch."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    concurrency: int | None = None
    """Actor-pool size for model stages (None: as many as the CPUs allow)."""

    def check(self, section: str) -> None:
        _check(self.num_cpus > 0, f"{section}.num_cpus", f"must be > 0, got {self.num_cpus}")
        _check(self.num_gpus >= 0, f"{section}.num_gpus", f"must be >= 0, got {self.num_gpus}")
        _check(
            self.concurrency is None or self.concurrency >= 1,
            f"{section}.concurrency",
            f"must be >= 1, got {self.concurrency}",
        )

    def ray_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.num_gpus:
            args["num_gpus"] = self.num_gpus
        return args


def pack_time(default: Any) -> Any:
    """A field read only when packing (a threshold, a dedup or weight rule).

    Changing it never re-runs a stage: `clipmill pack OUT --section.field v` re-applies it
    to the stored scores. Every other field of a scoring section shapes the scores.
    """
    return field(default=default, metadata={"pack_time": True})


def runtime(default: Any) -> Any:
    """A field that changes how a stage runs (device, batch), not what it computes."""
    return field(default=default, metadata={"runtime": True})
