"""Text filter: a full-frame ad is text_overlay (and its words are read), a small sign is not."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from pipeline.config.curate import CurateConfig, build_config
from pipeline.stages.frames import frame_counts
from pipeline.stages.text_overlay import TextStage, text_boxes_area
from pipeline.synthetic.junk import add_ad, add_sign
from pipeline.synthetic.world import ShotRenderer, ShotSpec


def test_box_area_is_the_union_of_polygons():
    box = np.array([[0, 0], [49, 0], [49, 9], [0, 9]], np.float32)
    assert text_boxes_area((100, 100), [box]) == 0.05
    assert text_boxes_area((100, 100), [box, box]) == 0.05  # overlaps count once
    assert text_boxes_area((100, 100), []) == 0.0


def test_ocr_reads_an_ad_and_measures_a_sign_small():
    stage = TextStage(CurateConfig())
    frame = ShotRenderer(ShotSpec("red", "circle", "left", "x", 0.3, 7), 640, 360, 4).frame(0)
    area, lines = stage.read(np.stack([add_ad(frame)]))
    assert area > 0.15 and any("SALE" in t for t in lines)
    area, lines = stage.read(np.stack([add_sign(frame)]))
    assert 0 < area < 0.02 and lines == ["EXIT"]
    assert stage.read(np.stack([frame])) == (0.0, [])


def test_frames_are_asked_for_by_every_consumer():
    cfg = CurateConfig()  # CLIP is off without weights (auto)
    assert frame_counts(cfg) == (1, cfg.filters.text.frames)
    cfg = build_config({"clip": {"enabled": True, "frames": 3}})
    assert frame_counts(cfg) == (1, cfg.filters.text.frames, 3)


def test_ad_fails_and_sign_passes_in_a_curated_run(junk_curated, truth_kind):
    out, _, truth = junk_curated
    clips = [
        c for c in pq.read_table(out / "clips.parquet").to_pylist() if c["text_area"] is not None
    ]
    labels = [(truth_kind(c, truth)[0], c) for c in clips]
    ads = [c for label, c in labels if label == "ad"]
    signs = [c for label, c in labels if label == "sign"]
    assert ads and signs
    for c in ads:
        assert "text_overlay" in c["reject_reasons"] and c["text_area"] > 0.15
    for c in signs:
        assert c["kept"] and 0 < c["text_area"] < 0.03 and c["text"] == ["EXIT"]
    for label, c in labels:
        if label in ("shot", "repeat", "static", "blurry", "flat"):
            assert c["text_area"] == 0 and c["text"] == []
