"""A video re-run by Ray after its worker died is neither lost nor doubled (stage level)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pipeline.config.curate import build_config
from pipeline.stages.probe import probe_video
from pipeline.staging import (
    FinalizeStage,
    SplitStage,
    TranscodeStage,
    fingerprint,
    score_fingerprint,
)
from schemas.layout import video_dir


def _tree(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_a_retry_after_the_rename_returns_the_finished_video(synth_raw, tmp_path):
    root, truth = synth_raw
    cfg = build_config({"ray": {"address": "none"}})
    video = probe_video({"path": str(root / truth[0]["file"])})
    row = {"video": json.dumps(video)}
    for stage in (SplitStage(cfg.split, str(tmp_path)), TranscodeStage(cfg.transcode)):
        row = stage(row)
    finalize = FinalizeStage(fingerprint(cfg), score_fingerprint(cfg), True)
    first = finalize(dict(row))
    final = video_dir(tmp_path, video["video_id"])
    before = _tree(final)
    assert first["n_clips"] > 0 and (final / "record.json").exists()
    # The worker died after os.replace: Ray hands the same row to a restarted worker.
    again = finalize(dict(row))
    assert again == first
    assert _tree(final) == before
    # A finished folder from other settings is no answer: the retry fails as before.
    stale = FinalizeStage("other", score_fingerprint(cfg), True)
    with pytest.raises(OSError):
        stale(dict(row))
