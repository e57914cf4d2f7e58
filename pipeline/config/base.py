"""What every config section shares: the error type, the check helper, field kinds.

The bottom of `pipeline.config`: every other config module imports it and it imports none,
so the sections (`resources`, `scores`, `captions`, `curate`) never form a cycle.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the flag."""


def check(ok: bool, flag: str, why: str) -> None:
    if not ok:
        raise ConfigError(f"--{flag} {why}")


def pack_time(default: Any) -> Any:
    """A field read only when packing (a threshold, a dedup or weight rule).

    Changing it never re-runs a stage: `clipmill pack OUT --section.field v` re-applies it
    to the stored scores. Every other field of a scoring section shapes the scores.
    """
    return field(default=default, metadata={"pack_time": True})


def added(default: Any) -> Any:
    """A field that shapes the output but came after outputs existed. At its default it is
    left out of the staging fingerprints, so those outputs keep their hash and resume."""
    return field(default=default, metadata={"added": True})


def runtime(default: Any) -> Any:
    """A field that changes how a stage runs (device, batch), not what it computes."""
    return field(default=default, metadata={"runtime": True})
