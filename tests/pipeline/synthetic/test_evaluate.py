"""The shapes checker and `clipmill evaluate`: right on ground-truth synth clips at small and
large sizes (else its numbers mean nothing), wrong where the video is wrong, robust to bad files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main as clipmill
from pipeline.synthetic.checker import check_video
from pipeline.synthetic.evaluate import (
    eval_prompts,
    evaluate,
    is_paraphrase,
    load_samples,
    parse_prompt,
    render_truth_clips,
)
from pipeline.synthetic.synth import encode_frames
from pipeline.synthetic.vocab import CAPTION_TEMPLATES, all_combos, load_holdout
from pipeline.synthetic.world import ShotRenderer, ShotSpec

HOLDOUT = Path(__file__).parents[3] / "configs" / "world" / "holdout.yaml"


# 32 px is the trainer's size; 0.45 is `make demo`'s shape size (its footage's and its
# ground-truth row's), 0.3 everyone else's.
@pytest.fixture(
    scope="module",
    params=[(32, 8, 0.3), (32, 8, 0.45), (128, 8, 0.3)],
    ids=["32px", "32px-big-shapes", "128px"],
)
def truth_clips(request, tmp_path_factory) -> Path:
    size, frames, shape_size = request.param
    folder = tmp_path_factory.mktemp(f"truth{size}")
    return render_truth_clips(folder, size, frames, seed=size, shape_size=shape_size)


def test_checker_scores_at_least_99_percent_on_ground_truth(truth_clips: Path) -> None:
    report = evaluate(truth_clips, load_holdout(HOLDOUT))
    groups = report["groups"]
    assert groups["all"]["n"] == 60 and groups["heldout"]["n"] == 12 and groups["seen"]["n"] == 48
    for key in ("colour", "shape", "direction", "all_three", "persistence"):
        assert groups["all"][key] >= 0.99, (key, groups["all"])
    assert groups["all"]["track_residual"] < 0.02  # steady synth paths are straight lines


def test_a_wrong_prompt_is_scored_wrong_on_exactly_that_attribute(truth_clips: Path, tmp_path):
    items = json.loads((truth_clips / "samples.json").read_text())[:8]
    truth = [parse_prompt(item["prompt"]) for item in items]
    swap = {"red": "green", "circle": "square", "left": "right", "up": "down"}
    for item in items:
        shutil.copy(truth_clips / item["file"], tmp_path / item["file"])
        item["prompt"] = " ".join(swap.get(w, w) for w in item["prompt"].split())
    (tmp_path / "samples.json").write_text(json.dumps(items))
    rows = evaluate(tmp_path)["videos"]
    for row, real in zip(rows, truth, strict=True):
        want = tuple(row["want"][a] for a in ("colour", "shape", "direction"))
        assert [row["correct"][a] for a in row["want"]] == [
            w == r for w, r in zip(want, real, strict=True)
        ]
    assert sum(not r["all_three"] for r in rows) >= 4


def test_blank_and_static_videos_have_no_object_or_no_direction(tmp_path: Path) -> None:
    dark = np.full((8, 32, 32, 3), 40, np.uint8)
    assert check_video(dark)["persistence"] == 0.0 and check_video(dark)["direction"] == "none"
    # An untrained model's samples: dark colour noise with a few bright pixels.
    noise = np.random.default_rng(0).gamma(2.0, 25.0, (8, 32, 32, 3)).clip(0, 255).astype(np.uint8)
    assert check_video(noise)["persistence"] <= 0.125
    spec = ShotSpec("yellow", "square", "up", "", 0.3, 11)
    still = ShotRenderer(spec, 64, 64, 8).frame(0)
    got = check_video(np.stack([still] * 8))
    assert got["persistence"] == 1.0 and got["direction"] == "none"
    assert (got["colour"], got["shape"]) == ("yellow", "square")


def test_prompts_parse_to_combinations_and_paraphrases_too() -> None:
    assert parse_prompt("a red circle moving left") == ("red", "circle", "left")
    assert parse_prompt("a triangle in white sliding up") == ("white", "triangle", "up")
    assert parse_prompt("a crimson disc drifting leftward") == ("red", "circle", "left")
    assert parse_prompt("a red blob wandering about") is None
    assert len({parse_prompt(f"a {c} {s} moving {d}") for c, s, d in all_combos()}) == 60
    held = load_holdout(HOLDOUT)
    prompts = eval_prompts(20, held)
    assert prompts[:60] == [f"a {c} {s} moving {d}" for c, s, d in all_combos()]
    extra = prompts[60:]
    assert len(set(extra)) == 20 and all(is_paraphrase(p) for p in extra)
    assert not {parse_prompt(p) for p in extra} & set(held)
    # No paraphrase word is in any training caption template.
    assert not any(is_paraphrase(t) for t in CAPTION_TEMPLATES)


def test_cli_reads_prompts_txt_and_survives_a_broken_video(tmp_path: Path, capsys) -> None:
    spec = ShotSpec("blue", "triangle", "down", "", 0.6, 3)
    shot = ShotRenderer(spec, 48, 48, 8)
    encode_frames(tmp_path / "000_a.mp4", (shot.frame(t) for t in range(8)), 48, 48, 8.0)
    (tmp_path / "001_b.mp4").write_bytes(b"not a video")
    (tmp_path / "prompts.txt").write_text("a blue triangle moving down\na red circle moving up\n")
    assert [p.name for p, _ in load_samples(tmp_path)] == ["000_a.mp4", "001_b.mp4"]
    out = tmp_path / "out" / "report.json"
    assert clipmill(["evaluate", "--samples", str(tmp_path), "--output", str(out)]) == 0
    captured = capsys.readouterr()
    assert "001_b.mp4" in captured.err and len(captured.err.strip().splitlines()) == 1
    report = json.loads(out.read_text())
    assert [r["all_three"] for r in report["videos"]] == [True, False]
    assert "| samples | seen | 2 |" in out.with_suffix(".md").read_text()
    assert clipmill(["evaluate", "--samples", str(tmp_path / "nope")]) == 2
