"""End to end: `curate` on synthetic footage — output contract, determinism, bad input, Ray."""

from __future__ import annotations

import hashlib
import json
import shutil

import pyarrow.parquet as pq
import pytest
import webdataset as wds

from pipeline.config.curate import build_config
from pipeline.driver import NoInputError, curate
from schemas import REJECT_REASONS, validate_clip

LOCAL = {"ray": {"address": "none"}}


@pytest.fixture(scope="module")
def curated(synth_raw, tmp_path_factory):
    root, truth = synth_raw
    out = tmp_path_factory.mktemp("curated")
    summary = curate([str(root)], out, build_config(LOCAL))
    return out, summary, truth


def test_output_layout_and_manifests(curated):
    out, summary, truth = curated
    assert {p.name for p in out.iterdir()} >= {
        "clips.parquet",
        "videos.parquet",
        "shards",
        "summary.json",
        "work",
    }
    videos = pq.read_table(out / "videos.parquet").to_pylist()
    assert len(videos) == len(truth) and all(v["status"] == "ok" for v in videos)
    clips = pq.read_table(out / "clips.parquet").to_pylist()
    for c in clips:
        assert c["clip_id"] == f"{c['video_id']}_{c['start_frame']:07d}_{c['end_frame']:07d}"
        assert set(c["reject_reasons"]) <= set(REJECT_REASONS)
        assert c["kept"] == (not c["reject_reasons"])
        if c["kept"]:
            assert c["shard"] and len(c["sha256"]) == 64 and c["width"] % 2 == 0
    for v in videos:
        mine = [c for c in clips if c["video_id"] == v["video_id"]]
        assert v["n_clips"] == len(mine) and v["n_kept"] == sum(c["kept"] for c in mine)
    secs = summary["seconds"]
    accounted = secs["kept"] + sum(secs["rejected_by_reason"].values()) + secs["trimmed_at_cuts"]
    assert accounted == pytest.approx(secs["input"], abs=0.01)
    assert secs["trimmed_at_cuts"] < 0.1 * secs["input"]


def test_shards_read_back_with_webdataset_and_validate(curated):
    out, summary, _ = curated
    kept = {c["clip_id"]: c for c in pq.read_table(out / "clips.parquet").to_pylist() if c["kept"]}
    urls = [str(out / "shards" / s) for s in summary["shards"]]
    seen = {}
    for sample in wds.WebDataset(urls, shardshuffle=False):
        record = json.loads(sample["json"])
        validate_clip(record)
        assert hashlib.sha256(sample["mp4"]).hexdigest() == record["sha256"]
        assert sample["jpg"][:2] == b"\xff\xd8"
        seen[sample["__key__"]] = record
    assert seen.keys() == kept.keys()
    for key, record in seen.items():
        assert record["shard"] == kept[key]["shard"]


def test_rerun_is_byte_identical_and_skips_finished_videos(
    curated, synth_raw, tmp_path, digest_tree
):
    out, _, _ = curated
    before = digest_tree(out)
    again = tmp_path / "again"
    shutil.copytree(out, again)
    curate([str(synth_raw[0])], again, build_config(LOCAL))
    assert json.loads((again / "work" / "last_run.json").read_text())["processed"] == 0
    assert digest_tree(again) == before


def test_changed_settings_redo_staged_videos(curated, synth_raw, tmp_path):
    out, _, _ = curated
    again = tmp_path / "again"
    shutil.copytree(out, again)
    curate([str(synth_raw[0])], again, build_config({**LOCAL, "split": {"max_clip_s": 3.0}}))
    assert json.loads((again / "work" / "last_run.json").read_text())["processed"] > 0
    clips = pq.read_table(again / "clips.parquet").to_pylist()
    assert all(c["duration_s"] <= 3.0 + 1e-6 for c in clips if c["kept"])


def test_byte_identical_copies_collapse_to_one_video(synth_raw, tmp_path):
    root, truth = synth_raw
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(root / truth[0]["file"], src / "a.mp4")
    shutil.copy(root / truth[0]["file"], src / "b copy.mp4")
    curate([str(src)], tmp_path / "out", build_config(LOCAL))
    videos = pq.read_table(tmp_path / "out" / "videos.parquet").to_pylist()
    assert [v["status"] for v in videos] == ["ok", "duplicate"]
    assert videos[1]["duplicate_of"] == str(src / "a.mp4")
    assert videos[0]["video_id"] == videos[1]["video_id"]


def test_no_video_found_raises(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(NoInputError):
        curate([str(tmp_path)], tmp_path / "out", build_config(LOCAL))


def test_output_inside_input_folder_is_not_ingested(synth_raw, tmp_path):
    root, truth = synth_raw
    src = tmp_path / "footage"
    src.mkdir()
    shutil.copy(root / truth[1]["file"], src / "v.mp4")
    for _ in range(2):
        curate([str(src)], src / "out", build_config(LOCAL))
    assert len(pq.read_table(src / "out" / "videos.parquet")) == 1


def test_real_local_ray_gives_the_same_output(curated, synth_raw, ray_local, tmp_path, digest_tree):
    out, _, _ = curated
    curate([str(synth_raw[0])], tmp_path / "ray", build_config({}))
    ours, local = digest_tree(tmp_path / "ray"), digest_tree(out)
    # summary.json records the runner (config.ray) — everything else is identical.
    assert ours.pop("summary.json") and local.pop("summary.json")
    assert ours == local
    a, b = (json.loads((d / "summary.json").read_text()) for d in (tmp_path / "ray", out))
    a["config"].pop("ray"), b["config"].pop("ray")
    assert a == b


CHUNKED = {"transcode": {"chunk_s": 8.0}}
# Rows of clips.parquet that an encode, not the cutting, decides.
ENCODED = ("sha256", "shard")


@pytest.fixture(scope="module")
def long_curated(tmp_path_factory):
    """One 40-s video curated in-process whole and in 8-s encode units: (raw, whole, units)."""
    from pipeline.synthetic.synth import synthesize

    raw = tmp_path_factory.mktemp("long_raw")
    synthesize(raw, 1, seed=3, duration_s=40.0)
    outs = []
    for name, chunk in (("whole", None), ("units", 8.0)):
        out = tmp_path_factory.mktemp(name)
        curate([str(raw)], out, build_config({**LOCAL, "transcode": {"chunk_s": chunk}}))
        outs.append(out)
    return raw, *outs


def _cut_rows(out):
    rows = pq.read_table(out / "clips.parquet").to_pylist()
    return [{k: v for k, v in r.items() if k not in ENCODED} for r in rows]


def test_a_long_video_in_encode_units_keeps_every_clip_and_its_frames(
    long_curated, kept_clip_problems
):
    _, whole, units = long_curated
    assert _cut_rows(units) == _cut_rows(whole)  # the same clips, kept and rejected alike
    clips = pq.read_table(units / "clips.parquet").to_pylist()
    assert sum(c["kept"] for c in clips) >= 4
    assert kept_clip_problems(units, clips) == []
    (record,) = (json.loads(p.read_text()) for p in units.glob("work/videos/*/record.json"))
    assert len(record["encode_units"]) >= 4


def test_encode_units_spread_over_ray_workers_and_give_the_same_bytes(
    long_curated, ray_local, tmp_path, digest_tree
):
    raw, _, units = long_curated
    # Two transcode workers of one CPU's share each; everything else as by default.
    two = {"resources": {"concurrency": [2, 2]}}
    cfg = build_config({"transcode": {**CHUNKED["transcode"], **two}})
    curate([str(raw)], tmp_path / "ray", cfg)
    ours, local = digest_tree(tmp_path / "ray"), digest_tree(units)
    assert ours.pop("summary.json") and local.pop("summary.json")
    assert ours == local
    (record,) = (json.loads(p.read_text()) for p in tmp_path.glob("ray/work/videos/*/record.json"))
    assert len({u["worker"] for u in record["encode_units"]}) == 2


# Analysis spans of 10 s (200 frames at 24 fps: 4 spans of the 40-s video), whole encodes.
SPANNED = {"split": {"chunk_s": 10.0}, "transcode": {"chunk_s": None}}


def _same_output(ours, whole, digest_tree) -> None:
    a, b = digest_tree(ours), digest_tree(whole)
    # summary.json records the config (split.chunk_s, the runner): everything else is equal.
    assert a.pop("summary.json") and b.pop("summary.json")
    assert a == b


def _spans_record(out) -> list[dict]:
    (record,) = (json.loads(p.read_text()) for p in out.glob("work/videos/*/record.json"))
    return record["analysis_spans"]


def test_a_long_video_analysed_in_spans_gives_the_whole_analysis_output(
    long_curated, tmp_path, digest_tree
):
    raw, whole, _ = long_curated
    curate([str(raw)], tmp_path / "spans", build_config({**LOCAL, **SPANNED}))
    _same_output(tmp_path / "spans", whole, digest_tree)
    assert len(_spans_record(tmp_path / "spans")) == 4


def test_analysis_spans_spread_over_ray_workers_and_give_the_same_bytes(
    long_curated, ray_local, tmp_path, digest_tree
):
    raw, whole, _ = long_curated
    # Two split workers of one CPU's share each; everything else as by default.
    two = {"resources": {"concurrency": [2, 2]}}
    cfg = build_config({**SPANNED, "split": {**SPANNED["split"], **two}})
    curate([str(raw)], tmp_path / "ray", cfg)
    _same_output(tmp_path / "ray", whole, digest_tree)
    assert len({s["worker"] for s in _spans_record(tmp_path / "ray")}) == 2
