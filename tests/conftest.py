"""Shared fixtures: synthetic footage with ground truth, one local Ray for the session."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def synth_raw(tmp_path_factory) -> tuple[Path, list[dict]]:
    """Four short synthetic videos (hard cuts, dissolves, black gaps, a long shot) + truth."""
    from pipeline.synth import synthesize

    root = tmp_path_factory.mktemp("raw")
    synthesize(root, 4, seed=0)
    return root, json.loads((root / "truth.json").read_text())


@pytest.fixture(scope="session")
def bad_inputs(tmp_path_factory) -> dict[str, Path]:
    from pipeline.synth import make_bad_inputs

    return make_bad_inputs(tmp_path_factory.mktemp("bad"))


@pytest.fixture(scope="session")
def ray_local():
    """One real local Ray for every test that needs it, shut down at the end."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
