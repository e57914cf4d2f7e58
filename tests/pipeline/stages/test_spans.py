"""A long video's split in spans on several workers gives what one worker's pass gives.

Footage is drawn here with its transitions on the span borders (a dissolve across one, a
cut and a flash at another, a fade to black across the third), then analysed whole and in
spans through the real stages (`SplitStage`, `SpansStage`), the spans in shuffled order.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from pipeline.config.curate import SplitConfig, TranscodeConfig
from pipeline.stages.probe import probe_video
from pipeline.stages.proxy import INDEX
from pipeline.stages.spans import SPAN_ALIGN, Span, plan_spans
from pipeline.staging import SplitStage, UnitsStage
from pipeline.staging_spans import SPANS, SpansStage
from pipeline.synthetic.synth import encode_frames
from schemas.layout import partial_dir

CHUNK_S = 10.0  # spans of 200 frames at 24 fps


def _footage(draw) -> list[np.ndarray]:
    a, b, c, d = (draw.shot(seed, n, mean) for seed, n, mean in
                  ((1, 210, 90), (2, 210, 140), (3, 162, 70), (4, 100, 120)))  # fmt: skip
    frames = a[:190] + draw.crossfade(a[190:], b[:20]) + b[20:208]  # 190-209; a hard cut at 398
    flash = [draw.flash(f, "boost") for f in c[1:3]]
    frames += c[:1] + flash + c[3:150]  # a 2-frame flash at 399-400
    black = np.zeros_like(c[0])
    frames += [draw.blend(c[150 + i], black, (i + 1) / 13) for i in range(12)] + [black] * 10
    return frames + d  # a fade through black, then one more shot: 670 frames


def _encoded(draw, path, frames: list[np.ndarray]) -> dict:
    encode_frames(path, frames, draw.W, draw.H, draw.FPS)
    return probe_video({"path": str(path)})


@pytest.fixture(scope="module")
def footage(tmp_path_factory, draw):
    return _encoded(draw, tmp_path_factory.mktemp("spans") / "long.mp4", _footage(draw))


@pytest.fixture(scope="module")
def short_footage(tmp_path_factory, draw):
    """The first 450 frames: two spans, the dissolve on their border (TransNetV2 is slow)."""
    path = tmp_path_factory.mktemp("spans_short") / "short.mp4"
    return _encoded(draw, path, _footage(draw)[:450])


def _digest(folder) -> dict[str, str]:
    """The analysis files' digests; not the previews' proxies, one per span by design
    (tests/pipeline/stages/test_proxy.py)."""
    proxies = {INDEX} | {p.name for p in folder.glob("proxy*.mkv")}
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.iterdir()
        if p.name not in proxies
    }


@pytest.mark.parametrize(
    ("detector", "which", "spans"),
    [
        ("content", "footage", [(0, 200), (200, 400), (400, None)]),
        ("adaptive", "footage", [(0, 200), (200, 400), (400, None)]),
        ("transnetv2", "short_footage", [(0, 200), (200, None)]),
    ],
)
def test_spans_give_the_whole_videos_cuts_masks_and_samples(
    detector, which, spans, request, tmp_path, split_in_spans
):
    video = request.getfixturevalue(which)
    cfg = SplitConfig(detector=detector, min_clip_s=1.0, chunk_s=CHUNK_S)
    stage = SplitStage(cfg, str(tmp_path))
    whole = json.loads(stage({"video": json.dumps(video)})["video"])
    files = _digest(partial_dir(tmp_path, video["video_id"]))
    joined = split_in_spans(stage, cfg, video, seed=len(detector))

    assert [(s["start"], s["end"]) for s in joined.pop("analysis_spans")] == spans
    assert joined == whole
    folder = partial_dir(tmp_path, video["video_id"])
    assert _digest(folder) == files  # lowres.u8, lowres.json, stats.npy: the same bytes
    assert set(files) == {"lowres.u8", "lowres.json", "stats.npy"}
    assert not (folder / SPANS).exists()
    # The borders are where things happen: a rejected or new clip starts near each one.
    starts = [c["start_frame"] for c in whole["clips"]]
    borders = [start for start, _ in spans[1:]]
    assert all(min(abs(s - b) for s in starts) <= 12 for b in borders), starts


def test_a_span_that_sees_damage_has_the_video_analysed_whole(tmp_path, split_in_spans):
    from pipeline.synthetic.damage import make_damaged
    from pipeline.synthetic.synth import synthesize

    (entry,) = synthesize(tmp_path / "raw", 1, seed=3, duration_s=30.0)
    made, truth = make_damaged(tmp_path, tmp_path / "raw" / entry["file"], entry)
    video = probe_video({"path": str(made["damaged_mid"])})
    cfg = SplitConfig(chunk_s=CHUNK_S)
    stage = SplitStage(cfg, str(tmp_path / "work"))
    whole = json.loads(stage({"video": json.dumps(video)})["video"])
    assert whole["error"].startswith("damaged:")  # the whole pass names the damage
    joined = split_in_spans(stage, cfg, video, seed=1)
    assert "analysis_spans" not in joined  # analysed in one piece instead
    assert joined == whole


def test_a_span_re_run_after_its_video_was_joined_leaves_nothing(footage, tmp_path):
    cfg = SplitConfig(chunk_s=CHUNK_S)
    stage = SplitStage(cfg, str(tmp_path))
    rows = SpansStage(cfg, str(tmp_path))({"video": json.dumps(footage)})
    for row in rows:
        stage(row)
    shutil.rmtree(partial_dir(tmp_path, footage["video_id"]))  # finalize renamed it
    again = stage(rows[0])
    assert UnitsStage(TranscodeConfig())(again) == []  # a pending row, dropped
    assert not partial_dir(tmp_path, footage["video_id"]).exists()


def test_short_videos_and_no_chunk_s_stay_whole(footage, tmp_path):
    row = {"video": json.dumps(footage)}
    for cfg in (SplitConfig(chunk_s=None), SplitConfig(chunk_s=300.0)):
        assert SpansStage(cfg, str(tmp_path))(row) == [row]
    assert not (tmp_path / "videos").exists()  # nothing staged for a whole video here


def test_spans_start_on_transnet_batches_and_the_last_takes_the_rest():
    spans = plan_spans(1000, 24.0, CHUNK_S)
    assert spans == [Span(0, 200), Span(200, 400), Span(400, 600), Span(600, 800), Span(800)]
    assert all(s.start % SPAN_ALIGN == 0 for s in spans)
    assert plan_spans(1100, 24.0, CHUNK_S)[-1] == Span(800)  # 300 frames: no 100-frame span
    assert plan_spans(399, 24.0, CHUNK_S) == [Span()]
    assert plan_spans(10_000, 24.0, None) == [Span()]
    assert plan_spans(100_000, 60.0, 300.0)[1] == Span(18000, 36000)
