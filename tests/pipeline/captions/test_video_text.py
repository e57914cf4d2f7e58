"""Whole-video sidecars (.txt, .json, .info.json, captions.csv/.parquet) and file names."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.captions.filename import filename_caption
from pipeline.captions.video_text import FolderTables, video_captions


def found(video, errors=None, max_chars=400):
    errors = [] if errors is None else errors
    return [c.text for c in video_captions(str(video), FolderTables(), max_chars, errors)]


def test_txt_and_json_fields_in_order(tmp_path):
    video = tmp_path / "dog.mp4"
    (tmp_path / "dog.txt").write_bytes("A dog\r\n on the   beach\n".encode("utf-16"))
    (tmp_path / "dog.json").write_text(
        json.dumps({"title": "Beach day", "description": "A dog fetches a stick", "n": 3})
    )
    (tmp_path / "dog.info.json").write_text(json.dumps({"title": "Beach day", "id": "x"}))
    assert found(video) == ["A dog on the beach", "A dog fetches a stick", "Beach day"]


def test_captions_table_matches_relative_absolute_and_bare_names(tmp_path):
    (tmp_path / "sub").mkdir()
    a, b = tmp_path / "sub" / "a.mp4", tmp_path / "sub" / "b.mp4"
    (tmp_path / "sub" / "captions.csv").write_text(
        f"path,caption\n./a.mp4,first of a\n{b},absolute b\nb.mp4,bare b\nother.mp4,not mine\n",
        encoding="cp1252",
    )
    assert found(a) == ["first of a"]
    assert found(b) == ["absolute b", "bare b"]
    pq.write_table(
        pa.table({"path": ["a.mp4"], "caption": ["from parquet"]}),
        tmp_path / "sub" / "captions.parquet",
    )
    assert found(a) == ["first of a", "from parquet"]


def test_one_broken_file_is_reported_and_the_rest_still_used(tmp_path):
    video = tmp_path / "v.mp4"
    (tmp_path / "v.txt").write_text("a usable caption")
    (tmp_path / "v.json").write_text("{broken")
    (tmp_path / "captions.csv").write_text("file,text\nv.mp4,wrong columns\n")
    errors: list[str] = []
    assert found(video, errors) == ["a usable caption"]
    assert len(errors) == 2
    assert errors[0].startswith("v.json: invalid JSON")
    assert errors[1].startswith("captions.csv: cannot read (no column 'path'")


def test_long_text_is_cut_at_a_word(tmp_path):
    (tmp_path / "v.txt").write_text("word " * 50)
    (text,) = found(tmp_path / "v.mp4", max_chars=23)
    assert text == "word word word word" and len(text) <= 23


def test_a_timed_json_is_not_a_whole_video_caption(tmp_path):
    (tmp_path / "v.json").write_text(json.dumps([{"start": 0, "end": 1, "text": "cue"}]))
    assert found(tmp_path / "v.mp4") == []


@pytest.mark.parametrize(
    ("path", "caption"),
    [
        ("beach_sunset-drone.mp4", "beach sunset drone"),
        ("/x/myDogRunning.MOV", "my dog running"),
        ("IMG_20230101_1234.MOV", None),
        ("/footage/surfing/GOPR0042.MP4", "surfing"),
        ("s3://bucket/city%20night/VID_0001.mp4", "city night"),
        ("/tmp/raw/video_000.mp4", None),
    ],
)
def test_filename_words(path, caption):
    assert filename_caption(path) == caption


def test_sidecars_next_to_a_url_are_read_through_fsspec():
    import fsspec

    from pipeline.captions.sidecar import load_timed

    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/shots/take.srt", b"00:00:00,000 --> 00:00:02,000\na kite in the wind\n")
    fs.pipe("/bucket/shots/take.txt", b"a windy afternoon")
    fs.pipe("/bucket/shots/captions.csv", b"path,caption\n./take.mp4,kite festival\n")
    url = "memory://bucket/shots/take.mp4"
    errors: list[str] = []
    assert load_timed(url, errors)[0].cues[0].text == "a kite in the wind"
    assert found(url, errors) == ["a windy afternoon", "kite festival"]
    assert errors == []
