"""What every config section shares: the error type, the check helper, stage resources.

Apart from `pipeline.config` so the scoring sections (`pipeline.score_config`) can use it
without an import cycle.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the flag."""


def _check(ok: bool, flag: str, why: str) -> None:
    if not ok:
        raise ConfigError(f"--{flag} {why}")


def pack_time(default: Any) -> Any:
    """A field read only when packing (a threshold, a dedup or weight rule).

    Changing it never re-runs a stage: `clipmill pack OUT --section.field v` re-applies it
    to the stored scores. Every other field of a scoring section shapes the scores.
    """
    return field(default=default, metadata={"pack_time": True})


def runtime(default: Any) -> Any:
    """A field that changes how a stage runs (device, batch), not what it computes."""
    return field(default=default, metadata={"runtime": True})


def __getattr__(name: str) -> Any:
    # StageResources lives in pipeline.resources_config, which imports this module; a lazy
    # re-export keeps `from pipeline.config_base import StageResources` working without a cycle.
    if name == "StageResources":
        from pipeline.resources_config import StageResources

        return StageResources
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
