"""Junk shots in synthetic footage: each kind is what its truth label says, pixel for pixel."""

from __future__ import annotations

import json

import av
import cv2
import numpy as np
import pytest

from pipeline.synthetic.synth import SynthConfig, main, synthesize


@pytest.fixture(scope="module")
def decoded(junk_raw) -> dict[str, np.ndarray]:
    root, truth = junk_raw
    out = {}
    for entry in truth:
        with av.open(str(root / entry["file"])) as c:
            out[entry["file"]] = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    return out


def _shots(truth, label):
    for entry in truth:
        for i, s in enumerate(entry["shots"]):
            if label in (s["kind"], s["overlay"]) or (label == "repeat" and s["repeat_of"]):
                yield entry["file"], i, s


def test_every_junk_kind_is_labelled(junk_raw):
    _, truth = junk_raw
    for label in ("static", "flat", "blurry", "ad", "sign", "repeat"):
        assert list(_shots(truth, label)), label
    for entry in truth:
        for s in entry["shots"]:
            assert s["caption"] is None or s["kind"] == "shot"
            assert set(s) >= {"overlay", "repeat_of"}


def test_junk_pixels_match_their_labels(junk_raw, decoded):
    _, truth = junk_raw
    for file, _, s in _shots(truth, "static"):
        frames = decoded[file][s["start_frame"] : s["end_frame"]].astype(int)
        assert np.abs(np.diff(frames, axis=0)).mean() < 1.0 and frames.std() > 10
    for file, _, s in _shots(truth, "flat"):
        frames = decoded[file][s["start_frame"] : s["end_frame"]]
        assert frames.std(axis=(1, 2)).max() < 4 and 90 < frames.mean() < 170  # per channel
    for file, _, s in _shots(truth, "blurry"):
        grey = cv2.cvtColor(decoded[file][s["start_frame"]], cv2.COLOR_RGB2GRAY)
        assert cv2.Laplacian(grey, cv2.CV_32F).var() < 2
    for file, _, s in _shots(truth, "ad"):
        mid = decoded[file][(s["start_frame"] + s["end_frame"]) // 2].astype(int)
        yellow = (np.abs(mid - [250, 230, 40]).max(axis=-1) < 40).mean()
        assert yellow > 0.5


def test_a_repeat_is_its_original_frame_for_frame(junk_raw, decoded):
    _, truth = junk_raw
    by_file = {e["file"]: e for e in truth}
    for file, _, s in _shots(truth, "repeat"):
        orig = by_file[s["repeat_of"]["file"]]["shots"][s["repeat_of"]["shot"]]
        assert orig["kind"] == "shot" and not orig["repeat_of"]
        assert s["end_frame"] - s["start_frame"] == orig["end_frame"] - orig["start_frame"]
        a = decoded[file][s["start_frame"] : s["end_frame"]].astype(int)
        b = decoded[s["repeat_of"]["file"]][orig["start_frame"] : orig["end_frame"]].astype(int)
        # Interior frames: the neighbours of a repeat can dissolve into its edges.
        assert np.abs(a[12:-12] - b[12:-12]).mean() < 2


def test_junk_is_deterministic_and_plain_footage_unchanged(tmp_path):
    args = dict(width=64, height=36, shots_per_video=(3, 3), min_shot_s=1.0, max_shot_s=1.5)
    plain = synthesize(tmp_path / "a", 1, seed=5, **args)
    zero = synthesize(tmp_path / "b", 1, seed=5, static_prob=0.0, **args)
    assert plain == zero
    assert (tmp_path / "a/video_000.mp4").read_bytes() == (
        tmp_path / "b/video_000.mp4"
    ).read_bytes()
    junk = dict(args, ad_prob=0.5, repeat_prob=0.5)
    one, two = (synthesize(tmp_path / d, 1, seed=5, **junk) for d in ("c", "d"))
    assert one == two
    assert (tmp_path / "c/video_000.mp4").read_bytes() == (
        tmp_path / "d/video_000.mp4"
    ).read_bytes()


def test_bad_probabilities_name_the_flags(tmp_path, capsys):
    with pytest.raises(ValueError, match="-prob"):
        SynthConfig(ad_prob=0.7, static_prob=0.7)
    argv = ["--output", str(tmp_path), "--videos", "1", "--width", "64", "--height", "36"]
    assert main([*argv, "--flat-prob", "2"]) == 2
    assert "--" in capsys.readouterr().err
    assert main([*argv, "--duration-s", "3", "--static-prob", "0.5"]) == 0
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert {s["kind"] for s in truth[0]["shots"]} <= {"shot", "black", "dissolve", "static"}


def test_miscaptioned_shots_carry_the_previous_shots_caption_in_the_srt(tmp_path):
    args = dict(width=64, height=36, shots_per_video=(5, 5), min_shot_s=1.0, max_shot_s=1.2)
    truth = synthesize(tmp_path, 2, seed=7, miscaption_prob=0.6, **args)
    found = 0
    for entry in truth:
        cues = (tmp_path / entry["srt"]).read_text().strip().split("\n\n")
        shots = [s for s in entry["shots"] if s["kind"] == "shot"]
        previous = None
        for cue, shot in zip(cues, shots, strict=True):
            text = cue.splitlines()[-1]
            if shot["sidecar_caption"] is not None:
                found += 1
                assert text == shot["sidecar_caption"] == previous["caption"] != shot["caption"]
            else:
                assert text == shot["caption"]
            previous = shot
    assert found >= 2
