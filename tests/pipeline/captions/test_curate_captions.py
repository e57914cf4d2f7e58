"""End to end: `clipmill curate` on synthetic footage puts each shot's caption on its clips."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import webdataset as wds

from pipeline.config.curate import build_config


@pytest.fixture(scope="module")
def curated(synth_raw, tmp_path_factory):
    from pipeline.driver import curate

    root, truth = synth_raw
    out = tmp_path_factory.mktemp("curated-captions")
    # In-process and without the slow OCR: captions are what is under test here.
    cfg = build_config({"ray": {"address": "none"}, "filters": {"text": {"enabled": False}}})
    summary = curate([str(root)], out, cfg)
    return out, summary, {entry["file"]: entry for entry in truth}


def test_every_kept_clip_names_its_shot(curated, names_its_shot):
    out, _, truth = curated
    clips = [c for c in pq.read_table(out / "clips.parquet").to_pylist() if c["kept"]]
    checked = 0
    for clip in clips:
        shot, ok = names_its_shot(truth[Path(clip["source_path"]).name], clip)
        if shot["kind"] == "shot":
            assert ok, (clip["clip_id"], clip["caption"], shot["caption"])
            assert clip["captions"][0]["source"] == "sidecar_timed"
            checked += 1
    assert checked >= 10


def test_shards_carry_the_primary_caption_and_the_caption_set(curated):
    out, summary, _ = curated
    urls = [str(out / "shards" / s) for s in summary["shards"]]
    n = 0
    for sample in wds.WebDataset(urls, shardshuffle=False):
        record = json.loads(sample["json"])
        assert sample["txt"].decode() == (record["caption"] or "")
        if record["caption"]:
            assert record["captions"][0]["text"] == record["caption"]
        n += 1
    assert n > 0
