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
    from pipeline.synthetic.synth import synthesize

    root = tmp_path_factory.mktemp("raw")
    synthesize(root, 4, seed=0)
    return root, json.loads((root / "truth.json").read_text())


@pytest.fixture(scope="session")
def bad_inputs(tmp_path_factory) -> dict[str, Path]:
    from pipeline.synthetic.synth import make_bad_inputs

    return make_bad_inputs(tmp_path_factory.mktemp("bad"))


@pytest.fixture(scope="session")
def ray_local():
    """One real local Ray for every test that needs it, shut down at the end."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


# Every junk kind, a repeat inside one video (video_000 shot 4 = shot 1) and across videos
# (video_001 shot 0 = video_000 shot 3, video_002 shot 1 = video_001 shot 3); 43.5 s in all.
JUNK = dict(
    videos=3,
    seed=43,
    min_shot_s=2.5,
    max_shot_s=3.5,
    shots_per_video=(4, 5),
    long_shot=False,
    dissolve_prob=0.15,
    black_prob=0.15,
    static_prob=0.1,
    flat_prob=0.1,
    blurry_prob=0.1,
    ad_prob=0.1,
    sign_prob=0.1,
    repeat_prob=0.25,
)


@pytest.fixture(scope="session")
def junk_raw(tmp_path_factory) -> tuple[Path, list[dict]]:
    """Synthetic footage with junk shots (static, flat, blurry, ad, sign, repeats) + truth."""
    from pipeline.synthetic.synth import synthesize

    root = tmp_path_factory.mktemp("junk_raw")
    args = dict(JUNK)
    return root, synthesize(root, args.pop("videos"), args.pop("seed"), **args)


@pytest.fixture(scope="session")
def junk_curated(junk_raw, tmp_path_factory) -> tuple[Path, dict, list[dict]]:
    """`junk_raw` curated in-process with every filter at its default, plus CLIP with the
    tiny random model (auto would skip it without weights): (out, summary, truth)."""
    from pipeline.config.curate import build_config
    from pipeline.driver import curate

    out = tmp_path_factory.mktemp("junk_out")
    summary = curate(
        [str(junk_raw[0])],
        out,
        build_config({"ray": {"address": "none"}, "clip": {"enabled": True}}),
    )
    return out, summary, junk_raw[1]


@pytest.fixture(scope="session")
def truth_kind():
    """`label_of(clip, truth)` (below), for tests that compare clips with the junk truth."""
    return label_of


def label_of(clip: dict, truth: list[dict]) -> tuple[str, dict, int]:
    """(label, shot, shot index) of the truth shot a curated clip starts in; the label is the
    kind, or "sign" / "repeat" for an ordinary shot with that overlay or that origin."""
    entry = next(t for t in truth if clip["source_path"].endswith(t["file"]))
    index, shot = next(
        (i, s)
        for i, s in enumerate(entry["shots"])
        if s["start_frame"] <= clip["start_frame"] < s["end_frame"]
    )
    label = shot["kind"]
    if shot.get("overlay"):
        label = shot["overlay"]
    elif shot.get("repeat_of"):
        label = "repeat"
    return label, shot, index
