"""report.html without a browser: data, escaping, previews, `clipmill report`, the curate hook."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.report import render_report, write_report
from pipeline.report.data import report_data
from pipeline.report.page import embed_json
from pipeline.report.previews import preview_path
from schemas.layout import staged_clip


def embedded(html: str) -> dict:
    block = re.search(
        r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S
    )
    assert block, "the data block is missing"
    return json.loads(block.group(1))


def test_user_text_cannot_leave_the_data_block(manifest, evil, tmp_path):
    out = manifest(tmp_path / "out", 1, 4, {0: evil + " & more"})
    html = render_report(out)
    # The only <script> elements are the page's own two; the caption is inside the JSON.
    assert html.count("<script") == 2 and "window.__pwned" in html
    assert "<img src=x" not in html and "</script><script>" not in html
    data = embedded(html)
    assert data["clips"][0][data["columns"].index("caption")] == evil + " & more"  # intact
    assert "innerHTML" not in html  # the script builds with textContent only


def test_embed_json_escapes_every_closing_sequence():
    text = embed_json({"a": "</script><!-- & \u2028"})
    assert not re.search(r"[<>&\u2028]", text)
    assert json.loads(text) == {"a": "</script><!-- & \u2028"}


def test_totals_and_videos_match_the_manifest(manifest, tmp_path):
    out = manifest(tmp_path / "out", 3, 8, {})
    data = report_data(out, {})
    clips = pq.read_table(out / "clips.parquet").to_pylist()
    t = data["totals"]
    assert t["clips"] == len(clips) == 24
    assert t["kept"] == sum(c["kept"] for c in clips) == 18
    assert sum(t["rejected_by_reason"].values()) == t["rejected"] == 6
    s = t["seconds"]
    assert s["input"] == 30.0 and s["kept"] == 18.0
    assert s["kept"] + s["rejected"] + s["trimmed_at_cuts"] == pytest.approx(s["input"])
    assert [v["n_kept"] for v in data["videos"]] == [6, 6, 6]
    assert data["videos"][0]["trimmed_s"] == pytest.approx(10.0 - 8.0)


def test_histograms_carry_the_run_thresholds(manifest, tmp_path):
    data = report_data(manifest(tmp_path / "out", 2, 8, {}), {})
    hists = {h["score"]: h for h in data["histograms"]}
    assert set(hists) == {"motion_score", "sharpness"}  # only scores the manifest has
    assert hists["sharpness"]["thresholds"] == [
        {"flag": "filters.blur.min_sharpness", "bound": "min", "reason": "blurry", "value": 10.0}
    ]
    # Every clip is counted once, in a bin within the edges.
    h = hists["motion_score"]
    assert sum(h["kept"]) + sum(h["rejected"]) == 16
    assert h["edges"][0] <= 0.001 and h["edges"][-1] >= 0.016
    assert [c["flag"] for c in data["what_if"]] == ["filters.blur.min_sharpness"]


def test_the_page_is_the_same_bytes_each_time_and_in_any_folder(manifest, tmp_path):
    out = manifest(tmp_path / "out", 2, 6, {})
    assert write_report(out).read_text() == render_report(out)
    # A copied or resumed output compares equal to the original (tests/pipeline/test_curate).
    shutil.copytree(out, tmp_path / "elsewhere")
    assert render_report(tmp_path / "elsewhere") == render_report(out)


def test_only_the_review_page_has_controls(manifest, tmp_path):
    out = manifest(tmp_path / "out", 1, 4, {})
    plain, review = render_report(out), render_report(out, review=True)
    assert "api/override" not in plain and embedded(plain)["review"] is False
    assert "api/override" in review and embedded(review)["review"] is True


def test_previews_are_made_once_with_relative_paths(curated_copy):
    out = curated_copy
    clips = pq.read_table(out / "clips.parquet").to_pylist()
    # A clip rejected before transcode (here a black run) has no mp4: its preview is cut
    # from the source at the clip's times.
    unstaged = [c for c in clips if not staged_clip(out, c["video_id"], c["clip_id"]).is_file()]
    assert unstaged and all(c["reject_reasons"] for c in unstaged)
    shutil.rmtree(out / "work" / "previews", ignore_errors=True)  # curate made them already
    write_report(out)
    made = {c["clip_id"]: preview_path(out, c["clip_id"]) for c in clips}
    assert all(p.is_file() and p.read_bytes()[8:12] == b"WEBP" for p in made.values())
    stamps = {k: p.stat().st_mtime_ns for k, p in made.items()}
    data = embedded(write_report(out).read_text())
    assert {k: p.stat().st_mtime_ns for k, p in made.items()} == stamps  # kept, not redone
    previews = {r[0]: r[data["columns"].index("preview")] for r in data["clips"]}
    for c in clips:
        assert previews[c["clip_id"]] == ["webp", f"work/previews/{c['clip_id']}.webp"]
        assert (out / previews[c["clip_id"]][1]).is_file()


def test_curate_writes_the_report(junk_curated):
    out = junk_curated[0]
    data = embedded((out / "report.html").read_text())
    assert data["totals"]["kept"] == junk_curated[1]["clips"]["kept"]


def test_report_command_rewrites_the_page(curated_copy, capsys):
    (curated_copy / "report.html").unlink(missing_ok=True)
    assert main(["report", str(curated_copy)]) == 0
    assert (curated_copy / "report.html").is_file()
    assert "report.html" in capsys.readouterr().out


def test_pack_rewrites_the_page_with_its_new_decisions(curated_copy, tmp_path):
    out = tmp_path / "packed"
    shutil.copytree(curated_copy, out)
    before = embedded((out / "report.html").read_text())["totals"]["kept"]
    assert main(["pack", str(out), "--filters.blur.min_sharpness", "null"]) == 0
    kept = sum(pq.read_table(out / "clips.parquet", columns=["kept"]).column(0).to_pylist())
    assert embedded((out / "report.html").read_text())["totals"]["kept"] == kept > before


@pytest.mark.parametrize("what", ["missing", "empty", "no summary"])
def test_report_command_refuses_what_is_not_a_curated_output(curated_copy, tmp_path, capsys, what):
    target = tmp_path / "nope"
    if what == "empty":
        target.mkdir()
    if what == "no summary":
        target.mkdir()
        for name in ("clips.parquet", "videos.parquet"):
            (target / name).write_bytes((curated_copy / name).read_bytes())
    assert main(["report", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "OUT" in err and str(target) in err
    assert not (target / "report.html").exists()


def test_a_failing_report_does_not_fail_the_caller(tmp_path, caplog):
    from pipeline.report.page import write_report_quietly

    assert write_report_quietly(Path(tmp_path / "missing")) is None
    assert "report.html not written" in caplog.text
