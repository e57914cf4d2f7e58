"""Shared fixtures: synthetic footage with ground truth, one local Ray for the session."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Collection
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


@pytest.fixture(scope="session")
def digest_tree() -> Callable[..., dict[str, str]]:
    """`digest_tree(out, skip=())` (below), for tests that compare whole output folders."""
    return tree_digest


def tree_digest(out: Path, skip: Collection[str] = ()) -> dict[str, str]:
    """sha256 of every file under `out` by relative path, leaving out the resumable scratch
    folder (`work/`) and any file whose name is in `skip`."""
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and "work" not in p.parts and p.name not in skip
    }


@pytest.fixture(scope="session")
def tiny_clip_reference():
    """clipmill-tiny rebuilt with open_clip alone (its seeded random weights: open_clip's init
    under torch seed 0), for checking CLIP scores against an independent computation.

    Returns `(text, clip)`: `text(texts)` -> unit text embeddings [N, D]; `clip(frames)` ->
    the unit mean of a clip's unit frame embeddings [D] (frames: RGB uint8 arrays)."""
    import numpy as np
    import open_clip
    import torch
    from PIL import Image

    from pipeline.config.scores import TINY_CLIP
    from pipeline.stages.clip_embed import register_tiny

    register_tiny()  # only makes the name known to open_clip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, _, preprocess = open_clip.create_model_and_transforms(TINY_CLIP)
    model.eval()
    tokenizer = open_clip.get_tokenizer(TINY_CLIP)

    def unit(x: torch.Tensor) -> np.ndarray:
        return torch.nn.functional.normalize(x.float(), dim=-1).numpy()

    def text(texts: list[str]) -> np.ndarray:
        with torch.no_grad():
            return unit(model.encode_text(tokenizer(texts)))

    def clip(frames) -> np.ndarray:
        batch = torch.stack([preprocess(Image.fromarray(np.asarray(f))) for f in frames])
        with torch.no_grad():
            mean = unit(model.encode_image(batch)).mean(axis=0)
        return mean / np.linalg.norm(mean)

    return text, clip
