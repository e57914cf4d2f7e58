"""`clipmill demo --preset smoke --ablate naive --latent`: the whole chain stays wired (synth
-> curate -> train -> sample -> evaluate, with the naive row and the latent path's row beside
the curated one), everything lands under --output. The naive chunking is tested apart."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from PIL import Image

from pipeline.cli import main as clipmill
from pipeline.demo.naive import naive_shards
from pipeline.demo.presets import PRESETS
from pipeline.demo.rows import fit_argv
from pipeline.synthetic.synth import synthesize
from pipeline.synthetic.vocab import load_holdout
from train.cli import train_main

HOLDOUT = Path(__file__).parents[3] / "configs" / "world" / "holdout.yaml"
LOSS_WINDOW = 3  # logged losses averaged at each end of a training curve


@pytest.mark.slow
def test_smoke_demo_writes_a_scored_report(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    cwd_before = set(os.listdir())
    argv = ["demo", "--output", str(out), "--preset", "smoke", "--ablate", "naive", "--latent"]
    assert clipmill(argv) == 0
    assert set(os.listdir()) == cwd_before  # nothing written outside --output
    report = json.loads((out / "report.json").read_text())
    assert list(report["rows"]) == ["ground truth (checker)", "curated", "naive", "latent"]
    for name, row in report["rows"].items():
        assert row["groups"]["all"]["n"] == 60 and row["groups"]["heldout"]["n"] == 12, name
    assert report["rows"]["ground truth (checker)"]["groups"]["all"]["all_three"] >= 0.99
    assert report["rows"]["curated"]["groups"]["paraphrase"]["n"] == 20
    # Two rows train side by side on half the cores each (one each on CI's two).
    threads = {report["rows"][n]["threads"] for n in ("curated", "naive")}
    assert threads == {max(1, (os.cpu_count() or 1) // 2)}
    for name in ("curated", "naive", "latent"):
        index = json.loads((out / f"samples_{name}" / "samples.json").read_text())
        assert len(index) == 80 and all(
            (out / f"samples_{name}" / i["file"]).exists() for i in index
        )
        assert Image.open(out / f"samples_{name}" / "grid.png").size[0] > 32
        # Training learns: the smoke preset logs every one of its steps, and the mean of the
        # last few logged losses is below the mean of the first few.
        steps, losses = zip(*report["rows"][name]["loss"], strict=True)
        assert list(steps) == sorted(set(steps)) and len(losses) >= 2 * LOSS_WINDOW, name
        first, last = losses[:LOSS_WINDOW], losses[-LOSS_WINDOW:]
        assert sum(last) < sum(first), (name, losses)
    held = set(load_holdout(HOLDOUT))
    truth = json.loads((out / "raw" / "truth.json").read_text())
    filmed = {(s["colour"], s["shape"], s["direction"]) for e in truth for s in e["shots"]}
    assert not filmed & held
    assert report["curation"]["clips"]["kept"] >= 1 and report["naive"]["chunks"] >= 1
    md = (out / "report.md").read_text()
    assert "| curated | heldout | 12 |" in md and "| naive | seen | 48 |" in md
    assert Image.open(out / "loss.png").size == (640, 360)
    assert "report in" in capsys.readouterr().out
    # The curation's page is left to `clipmill report` (its previews cost the demo's clock),
    # and the report says how to make it.
    assert not (out / "curated" / "report.html").exists()
    assert not (out / "curated" / "work" / "previews").exists()
    assert "`clipmill report curated/`" in md
    # The latent row went through a trained autoencoder and a cache of the curated clips.
    cache = json.loads((out / "cache" / "cache.json").read_text())
    assert cache["counts"]["clips"] == report["curation"]["clips"]["kept"]
    assert (out / "run_vae" / "checkpoints" / "last.ckpt").exists()


def test_naive_chunks_are_fixed_4s_windows_captioned_by_their_first_cue(tmp_path: Path) -> None:
    import tarfile

    truth = synthesize(tmp_path / "raw", 1, seed=2, width=64, height=36, duration_s=9.0)
    counts = naive_shards(tmp_path / "raw", tmp_path / "naive", short_side=32)
    assert counts == {"videos": 1, "chunks": 2}  # 9 s -> two whole 4-s chunks, the rest dropped
    with tarfile.open(next((tmp_path / "naive" / "shards").glob("*.tar"))) as tar:
        names = sorted(tar.getnames())
        texts = [tar.extractfile(n).read().decode() for n in names if n.endswith(".txt")]
    assert [n.rsplit(".", 1)[1] for n in names[:3]] == ["json", "mp4", "txt"]
    shots = [s for s in truth[0]["shots"] if s["kind"] == "shot"]
    for chunk, text in enumerate(texts):
        start = chunk * 96
        first = next(s for s in shots if s["end_frame"] > start)
        assert text == first["caption"]


def test_unknown_preset_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        clipmill(["demo", "--output", str(tmp_path), "--preset", "huge"])
    assert exc.value.code == 2


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_presets_training_row_parses_with_its_model(name, tmp_path: Path, capsys) -> None:
    """A preset's extra training flags reach the model: a renamed or mistyped flag in
    `presets.py` would otherwise surface only at the end of a 10-minute `make demo`."""
    preset = PRESETS[name]
    argv = fit_argv(tmp_path / "run", ["--data.shards", "x"], preset)
    assert train_main([*argv, "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    dit = printed["model"]["dit"]
    flags = dict(zip(preset.train[::2], preset.train[1::2], strict=True))
    for flag, value in flags.items():
        if flag.startswith("--model.dit."):
            # parsed as the command line parses it, so "[2,2,2]" matches the list [2, 2, 2]
            assert dit[flag.removeprefix("--model.dit.")] == yaml.safe_load(value)
    assert printed["trainer"]["max_steps"] == preset.steps


@pytest.mark.parametrize("name", ["default", "bench"])
def test_the_demo_films_its_presets_shape_size(name, tmp_path: Path, monkeypatch) -> None:
    """A preset's shape size (`make demo`'s is larger than synth's default) reaches
    `synthesize`, not only the preset."""
    import pipeline.demo.demo as demo

    seen: dict = {}
    monkeypatch.setattr(demo, "synthesize", lambda raw, *a, **kw: seen.update(kw))
    demo.synth_footage(tmp_path, name)
    assert seen["shape_size"] == PRESETS[name].shape_size
