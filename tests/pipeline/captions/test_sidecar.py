"""Timed sidecars: SRT/VTT/JSON parsing, malformed files, and alignment of cues to clips."""

from __future__ import annotations

import codecs
import json

import pytest

from pipeline.captions.sidecar import (
    Cue,
    align,
    load_timed,
    overlap_ratio,
    parse_segments,
    parse_subtitles,
    parse_timestamp,
)
from pipeline.captions.text import CaptionError, clean_text, decode_text

SRT = """1
00:00:00,000 --> 00:00:02,500
<i>A red circle</i> moving left

2
00:00:02,500 --> 00:00:05,000
- a blue square
- moving up

"""

VTT = """WEBVTT - a title

NOTE this is a comment
that spans two lines

STYLE
::cue { color: yellow }

intro
00:00.000 --> 00:02.500 align:start position:10%
<v Narrator>a <c.yellow>green</c> triangle</v>

00:00:02.500 --> 00:00:04.000
<00:00:02.600>[MUSIC] waves &amp; sand ♪
"""


def test_srt_cues_are_timed_and_cleaned():
    timed = parse_subtitles(SRT, "x.srt")
    assert [(c.start, c.end, c.text) for c in timed.cues] == [
        (0.0, 2.5, "A red circle moving left"),
        (2.5, 5.0, "a blue square moving up"),
    ]
    assert timed.problems == ()


def test_vtt_skips_header_notes_styles_and_cue_ids():
    timed = parse_subtitles(VTT, "x.vtt")
    assert [(c.start, c.end, c.text) for c in timed.cues] == [
        (0.0, 2.5, "a green triangle"),
        (2.5, 4.0, "waves & sand"),
    ]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("00:00:01,500", 1.5), ("01:02:03.25", 3723.25), ("02:03.5", 123.5), ("0:00:07", 7.0)],
)
def test_timestamps(value, seconds):
    assert parse_timestamp(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["00:00:xx,000", "00:61:00,000", "1.5", "", "--"])
def test_bad_timestamps_raise(value):
    with pytest.raises(ValueError, match="bad timestamp"):
        parse_timestamp(value)


def test_bad_cues_are_skipped_and_reported_good_ones_kept():
    text = (
        "1\n00:00:0x,000 --> 00:00:01,000\nbroken start\n\n"
        "2\n00:00:05,000 --> 00:00:04,000\nends before it starts\n\n"
        "3\n00:00:06,000 --> 00:00:07,000\nfine\n"
    )
    timed = parse_subtitles(text, "x.srt")
    assert [c.text for c in timed.cues] == ["fine"]
    assert len(timed.problems) == 2
    assert "line 2" in timed.problems[0] and "before start" in timed.problems[1]


def test_a_file_without_a_usable_cue_is_an_error():
    with pytest.raises(CaptionError, match="x.srt: no usable cue"):
        parse_subtitles("1\n00:00:zz --> 00:00:01,000\ntext\n", "x.srt")
    with pytest.raises(CaptionError, match="timing line"):
        parse_subtitles("just some prose, not subtitles", "x.srt")
    assert parse_subtitles("", "x.srt").cues == ()  # empty: nothing said, nothing wrong


def test_missing_blank_lines_and_overlapping_cues():
    text = (
        "1\r\n00:00:00,000 --> 00:00:03,000\r\nfirst speaker\r\n"
        "2\r\n00:00:01,000 --> 00:00:02,000\r\nsecond speaker\r\n"
    )
    cues = parse_subtitles(text, "x.srt").cues
    assert [c.text for c in cues] == ["first speaker", "second speaker"]
    assert align(cues, 0.0, 3.0, 0.5) == ("first speaker second speaker", 1.0)


def test_encodings_bom_utf16_cp1252():
    line = "00:00:00,000 --> 00:00:01,000\nun café crème\n"
    for data in (
        codecs.BOM_UTF8 + line.encode("utf-8"),
        line.encode("utf-16"),  # with BOM
        line.encode("utf-16-le"),  # without
        line.encode("cp1252"),
        line.encode("latin-1"),
    ):
        assert parse_subtitles(decode_text(data, "x.srt")).cues[0].text == "un café crème"
    assert decode_text(b"\x81\x8d caf\xe9", "x") == "\x81\x8d café"  # not cp1252: latin-1
    with pytest.raises(CaptionError, match="not a text file"):
        decode_text(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "x.srt")


def test_json_segments_whisper_style():
    doc = {
        "segments": [
            {"start": 0, "end": 1.5, "text": " a dog runs "},
            {"start": "00:00:02,000", "end": "00:00:03,000", "text": "on a beach"},
            {"start": 4, "text": "no end"},
            {"start": -1, "end": 2, "text": "negative"},
        ]
    }
    timed = parse_segments(json.dumps(doc), "x.json")
    assert [(c.start, c.end, c.text) for c in timed.cues] == [
        (0.0, 1.5, "a dog runs"),
        (2.0, 3.0, "on a beach"),
    ]
    assert len(timed.problems) == 2
    with pytest.raises(CaptionError, match="invalid JSON"):
        parse_segments("{not json", "x.json")
    with pytest.raises(CaptionError, match="segments"):
        parse_segments('{"segments": 3}', "x.json")


def test_clean_text_strips_markup():
    assert clean_text("{\\an8}<b>Hello</b>\\Nworld (APPLAUSE) https://x.io/a") == "Hello world"
    assert clean_text("[MUSIC PLAYING] ♪ ♪") == ""


@pytest.mark.parametrize(
    ("cue", "ratio"),
    [
        (Cue(0.0, 2.0, "before, touching"), 0.0),
        (Cue(1.9, 5.0, "covers the clip"), 1.0),
        (Cue(3.9, 10.0, "mostly after"), 0.05),
        (Cue(2.5, 3.0, "inside"), 1.0),
        (Cue(3.0, 3.0, "instant, inside"), 1.0),
        (Cue(4.0, 4.0, "instant, at the end"), 0.0),
    ],
)
def test_overlap_ratio_at_boundaries(cue, ratio):
    assert overlap_ratio(cue, 2.0, 4.0) == pytest.approx(ratio)


def test_a_long_cue_captions_every_window_cut_from_it():
    cues = [Cue(0.0, 2.0, "before"), Cue(2.0, 14.0, "long shot"), Cue(14.0, 16.0, "after")]
    # split trims 0.1 s at cuts and windows the 12 s shot into two of 5.9 s
    assert align(cues, 2.1, 8.0, 0.5) == ("long shot", 1.0)
    assert align(cues, 8.0, 13.9, 0.5) == ("long shot", 1.0)
    # a clip that straddles a cut by a little keeps only the shot it is mostly in
    assert align(cues, 1.8, 8.0, 0.5)[0] == "long shot"
    assert align(cues, 20.0, 25.0, 0.5) is None


def test_load_timed_reports_a_broken_file_and_keeps_the_good_one(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    (tmp_path / "clip.srt").write_text(SRT, encoding="utf-8")
    (tmp_path / "clip.vtt").write_bytes(b"\x00\x01\x02\x03garbage\x00" * 10)
    (tmp_path / "clip.json").write_text('{"title": "not timed"}')
    errors: list[str] = []
    found = load_timed(str(video), errors)
    assert [t.name for t in found] == ["clip.srt"]
    assert errors == ["clip.vtt: not a text file (binary bytes)"]
