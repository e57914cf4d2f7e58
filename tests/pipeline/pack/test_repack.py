"""`clipmill pack`: thresholds re-applied to stored scores, shards rewritten, no model run."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest
import webdataset as wds

import pipeline.stages.clip_embed
import pipeline.stages.text_overlay
from pipeline.cli import main
from pipeline.config.curate import build_config
from pipeline.driver import curate


def _keys(out) -> set[str]:
    summary = json.loads((out / "summary.json").read_text())
    urls = [str(out / "shards" / s) for s in summary["shards"]]
    return {s["__key__"] for s in wds.WebDataset(urls, shardshuffle=False)}


@pytest.fixture
def copy(junk_curated, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(junk_curated[0], out)
    return out


def test_pack_reapplies_a_threshold_and_the_shards_follow(
    copy, junk_curated, monkeypatch, capsys, truth_kind
):
    truth = junk_curated[2]

    def no_model(*args, **kwargs):
        raise AssertionError("pack must not load a model")

    monkeypatch.setattr(pipeline.stages.clip_embed.ClipStage, "__init__", no_model)
    monkeypatch.setattr(pipeline.stages.text_overlay.TextStage, "__init__", no_model)
    before = _keys(copy)
    blurry = {
        c["clip_id"]
        for c in pq.read_table(copy / "clips.parquet").to_pylist()
        if c["reject_reasons"] == ["blurry"]
    }
    assert blurry
    assert main(["pack", str(copy), "--filters.blur.min_sharpness", "null"]) == 0
    assert "packed:" in capsys.readouterr().out
    after = _keys(copy)
    assert after == before | blurry  # re-admitted from staging, mp4s and all
    clips = {c["clip_id"]: c for c in pq.read_table(copy / "clips.parquet").to_pylist()}
    assert all(clips[k]["kept"] and truth_kind(clips[k], truth)[0] == "blurry" for k in blurry)
    summary = json.loads((copy / "summary.json").read_text())
    assert summary["config"]["filters"]["blur"]["min_sharpness"] is None
    # Tightening works the same way, from the new baseline.
    assert main(["pack", str(copy), "--filters.text.max_area", "0.005"]) == 0
    signs = {k for k, c in clips.items() if c["text_area"] and c["text_area"] > 0.005}
    assert signs and not (_keys(copy) & signs)


def test_pack_refuses_settings_that_change_clips_or_scores(copy, capsys):
    before = (copy / "summary.json").read_bytes()
    for flag, value in (("--split.max_clip_s", "3"), ("--clip.frames", "2")):
        assert main(["pack", str(copy), flag, value]) == 2
        err = capsys.readouterr().err
        assert flag in err and "clipmill curate" in err
    assert (copy / "summary.json").read_bytes() == before
    assert main(["pack", str(copy.parent / "nothing")]) == 1


def test_curate_again_with_new_clip_settings_rescores_only(copy, junk_raw):
    old = {c["clip_id"]: c for c in pq.read_table(copy / "clips.parquet").to_pylist()}
    cfg = build_config({"ray": {"address": "none"}, "clip": {"enabled": True, "frames": 2}})
    curate([str(junk_raw[0])], copy, cfg)
    run = json.loads((copy / "work" / "last_run.json").read_text())
    assert run["processed"] == 0 and run["rescored"] == 3
    new = {c["clip_id"]: c for c in pq.read_table(copy / "clips.parquet").to_pylist()}
    assert new.keys() == old.keys()
    for k, c in new.items():
        assert c["motion_score"] == old[k]["motion_score"] and c["text"] == old[k]["text"]
    emb = pq.read_table(copy / "embeddings.parquet").to_pylist()
    assert emb and len(emb[0]["embedding"]) == 64


def test_pack_keeps_error_and_duplicate_video_rows(junk_raw, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(junk_raw[0] / "video_002.mp4", src / name)
    (src / "broken.mp4").write_bytes(b"")
    out = tmp_path / "out"
    curate([str(src)], out, build_config({"ray": {"address": "none"}, "clip": {"enabled": False}}))
    before = pq.read_table(out / "videos.parquet").to_pylist()
    assert main(["pack", str(out), "--filters.text.max_area", "null"]) == 0
    after = pq.read_table(out / "videos.parquet").to_pylist()
    assert [v["status"] for v in after] == [v["status"] for v in before]
    assert sorted(v["status"] for v in after) == ["duplicate", "error", "ok"]
    clips = pq.read_table(out / "clips.parquet").to_pylist()
    ad = [c for c in clips if (c["text_area"] or 0) > 0.1]
    assert ad and all("text_overlay" not in c["reject_reasons"] for c in ad)
