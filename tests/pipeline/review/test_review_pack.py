"""From a click to the dataset: review's actions land in overrides.jsonl, pack applies
them (and keeps applying them), and a split re-cuts only its video on curate's resume."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import webdataset as wds

from pipeline.cli import main
from pipeline.config.curate import build_config
from pipeline.driver import curate
from pipeline.review.overrides import Manifest, append_override, read_overrides, validate
from schemas import validate_clip


def _rows(out) -> dict[str, dict]:
    return {c["clip_id"]: c for c in pq.read_table(out / "clips.parquet").to_pylist()}


def _samples(out) -> dict[str, dict]:
    summary = json.loads((out / "summary.json").read_text())
    urls = [str(out / "shards" / s) for s in summary["shards"]]
    return {s["__key__"]: s for s in wds.WebDataset(urls, shardshuffle=False)}


def test_reject_caption_keep_via_http_are_applied_by_pack_and_survive_a_repack(
    curated, review_server, post, capsys
):
    rows = _rows(curated)
    kept = [k for k, c in rows.items() if c["kept"]]
    blurry = next(k for k, c in rows.items() if c["reject_reasons"] == ["blurry"])
    gone, recaptioned = kept[0], kept[1]
    url = review_server(curated)
    for body in (
        {"clip_id": gone, "action": "reject", "value": None},
        {"clip_id": recaptioned, "action": "caption", "value": "a person wrote this"},
        {"clip_id": blurry, "action": "keep", "value": None},
    ):
        assert post(url, body)[0] == 200, body
    assert [e["action"] for e in read_overrides(curated)] == ["reject", "caption", "keep"]
    before = _samples(curated)
    assert gone in before and blurry not in before

    assert main(["pack", str(curated)]) == 0
    assert "pending cut edits" not in capsys.readouterr().out
    for repack in ([], ["--filters.text.max_area", "0.5"]):  # and again, other thresholds
        if repack:
            assert main(["pack", str(curated), *repack]) == 0
        samples, rows = _samples(curated), _rows(curated)
        assert gone not in samples and blurry in samples
        assert samples[recaptioned]["txt"] == b"a person wrote this"
        record = json.loads(samples[recaptioned]["json"])
        validate_clip(record)
        assert record["override"] == ["caption"] and record["caption"] == "a person wrote this"
        assert (rows[gone]["kept"], rows[gone]["reject_reasons"]) == (False, ["manual"])
        assert rows[gone]["override"] == ["reject"]
        assert rows[blurry]["kept"] and rows[blurry]["override"] == ["keep"]
        assert rows[blurry]["sample_weight"] is not None  # weights re-made over the kept set
        summary = json.loads((curated / "summary.json").read_text())
        assert summary["overrides"]["applied"] == 3
        assert summary["clips"]["rejected_by_reason"]["manual"] == 1


def test_a_split_recuts_only_its_video_on_curate_resume(curated, junk_raw, capsys):
    rows = _rows(curated)
    target = max((c for c in rows.values() if c["kept"]), key=lambda c: c["duration_s"])
    frame = (target["start_frame"] + target["end_frame"]) // 2
    value = validate(curated, Manifest.load(curated), target["clip_id"], "split", frame)
    append_override(curated, target["clip_id"], "split", value)
    other = next(c for c in rows.values() if c["kept"] and c["video_id"] != target["video_id"])
    append_override(curated, other["clip_id"], "reject", None)  # curate's own pack applies it
    videos = {v["video_id"]: v for v in pq.read_table(curated / "videos.parquet").to_pylist()}
    records = {
        vid: (curated / "work" / "videos" / vid / "record.json").read_bytes()
        for vid, v in videos.items()
        if v["status"] == "ok"
    }

    assert main(["pack", str(curated)]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("pending cut edits") and "1 video" in line
    assert videos[target["video_id"]]["source_path"] in line

    cfg = build_config({"ray": {"address": "none"}, "clip": {"enabled": True}})
    curate([str(junk_raw[0])], curated, cfg)
    run = json.loads((curated / "work" / "last_run.json").read_text())
    assert (run["processed"], run["rescored"]) == (1, 0)
    for vid, before in records.items():
        after = (curated / "work" / "videos" / vid / "record.json").read_bytes()
        assert (after == before) == (vid != target["video_id"]), vid
    trim = round(0.1 * videos[target["video_id"]]["fps"])  # --split.trim_s at each cut
    mine = [c for c in _rows(curated).values() if c["video_id"] == target["video_id"]]
    assert target["clip_id"] not in {c["clip_id"] for c in mine}
    assert any(c["end_frame"] == frame - trim for c in mine)
    assert any(c["start_frame"] == frame + trim for c in mine)
    untouched = {k for k, c in rows.items() if c["video_id"] != target["video_id"]}
    assert untouched <= set(_rows(curated))  # every other video's clips as they were
    assert _rows(curated)[other["clip_id"]]["reject_reasons"] == ["manual"]

    assert main(["pack", str(curated)]) == 0
    assert "pending cut edits" not in capsys.readouterr().out
    curate([str(junk_raw[0])], curated, cfg)  # the edit is done: nothing to re-cut
    assert json.loads((curated / "work" / "last_run.json").read_text())["processed"] == 0
