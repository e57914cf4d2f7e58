"""OUT/overrides.jsonl: reading, later-wins, cut edits, and the split stage honouring them."""

from __future__ import annotations

import json

import numpy as np

from pipeline.config.curate import SplitConfig
from pipeline.review.overrides import (
    append_override,
    apply_overrides,
    cut_edits,
    latest,
    read_overrides,
)
from pipeline.stages.cut_edits import apply_cut_edits
from pipeline.stages.split import plan_clips

V = "0123456789abcdef"


def cid(a: int, b: int) -> str:
    return f"{V}_{a:07d}_{b:07d}"


def test_a_torn_last_line_is_skipped_and_the_next_append_starts_fresh(tmp_path):
    append_override(tmp_path, cid(0, 50), "reject", None)
    with open(tmp_path / "overrides.jsonl", "a") as f:
        f.write('{"clip_id": "' + cid(0, 50) + '", "act')  # a write that died
    assert [e["action"] for e in read_overrides(tmp_path)] == ["reject"]
    append_override(tmp_path, cid(0, 50), "keep", None)
    lines = (tmp_path / "overrides.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["action"] == "keep"
    assert [e["action"] for e in read_overrides(tmp_path)] == ["reject", "keep"]
    assert read_overrides(tmp_path / "nowhere") == []


def test_later_lines_win_per_clip_and_kind():
    entries = [
        {"clip_id": "a", "action": "reject", "value": None},
        {"clip_id": "a", "action": "caption", "value": "one"},
        {"clip_id": "b", "action": "reject", "value": None},
        {"clip_id": "a", "action": "keep", "value": None},  # same kind as reject
        {"clip_id": "a", "action": "caption", "value": "two"},
    ]
    assert [(e["clip_id"], e["action"], e["value"]) for e in latest(entries)] == [
        ("b", "reject", None),
        ("a", "keep", None),
        ("a", "caption", "two"),
    ]


def _clip(a: int, b: int, **values) -> dict:
    old = [{"text": "old", "source": "filename", "score": None}]
    row = {"clip_id": cid(a, b), "kept": True, "reject_reasons": [], "caption": "old"}
    return {**row, "captions": old, **values}


def test_keep_reject_caption_apply_with_provenance(tmp_path):
    (tmp_path / f"{cid(60, 90)}.mp4").write_bytes(b"x")
    clips = [
        _clip(0, 50),
        _clip(60, 90, kept=False, reject_reasons=["blurry"]),
        _clip(95, 99, kept=False, reject_reasons=["too_short"]),  # no mp4 staged
    ]
    entries = [
        {"clip_id": cid(0, 50), "action": "reject", "value": None},
        {"clip_id": cid(0, 50), "action": "caption", "value": "a red disc"},
        {"clip_id": cid(60, 90), "action": "keep", "value": None},
        {"clip_id": cid(95, 99), "action": "keep", "value": None},
        {"clip_id": cid(1, 2), "action": "reject", "value": None},  # a clip re-cut away
    ]
    report = apply_overrides(clips, entries, {c["clip_id"]: tmp_path for c in clips})
    assert report == {"applied": 3, "stale": 1, "refused": [cid(95, 99)]}
    a, b, c = clips
    assert (a["kept"], a["reject_reasons"], a["override"]) == (
        False,
        ["manual"],
        ["reject", "caption"],
    )
    assert a["caption"] == "a red disc" and a["captions"] == [
        {"text": "a red disc", "source": "manual", "score": None}
    ]
    assert (b["kept"], b["reject_reasons"], b["override"]) == (True, [], ["keep"])
    assert (c["kept"], c.get("override")) == (False, None)


def test_split_and_join_become_cut_edits_in_file_order():
    entries = [
        {"clip_id": cid(0, 50), "action": "split", "value": 20},
        {"clip_id": cid(0, 50), "action": "split", "value": 25},  # replaces 20
        {"clip_id": cid(53, 100), "action": "join", "value": cid(103, 140)},
        {"clip_id": "garbage", "action": "join", "value": "x"},
    ]
    assert cut_edits(entries) == {V: [["add", 25, 25], ["remove", 100, 140]]}


def _video(n: int, cuts: list[int]) -> dict:
    return {
        "video_id": V,
        "n_frames": n,
        "fps": 25.0,
        "duration_s": n / 25,
        "frame_times": [i / 25 for i in range(n)],
        "cuts": cuts,
        "blank_mask": np.zeros(n, bool),
        "transition_mask": np.zeros(n, bool),
    }


def _bounds(video: dict) -> list[tuple[int, int]]:
    cfg = SplitConfig(min_clip_s=0.5, max_clip_s=10.0, trim_s=0.08)
    return [(c["start_frame"], c["end_frame"]) for c in plan_clips(video, cfg)]


def test_the_split_stage_honours_added_and_removed_cuts():
    video = _video(200, [100])
    assert _bounds(video) == [(0, 98), (102, 200)]
    # A split at frame 50 is a cut there (trimmed like any cut); a join removes the cut at 100.
    video["cut_edits"] = [["add", 50, 50], ["remove", 98, 200]]
    apply_cut_edits(video)
    assert video["cuts"] == [50]
    assert _bounds(video) == [(0, 48), (52, 200)]
    # A join across a dissolve clears its transition marks too; then a later split wins.
    video = _video(200, [])
    video["transition_mask"][90:110] = True
    assert _bounds(video) == [(0, 88), (90, 110), (112, 200)]
    video["cut_edits"] = [["remove", 90, 110], ["add", 150, 150], ["add", 0, 0]]
    apply_cut_edits(video)
    assert _bounds(video) == [(0, 148), (152, 200)]
