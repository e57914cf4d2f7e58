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


def _filmed(monkeypatch, root, seed: int, **options) -> tuple[dict, np.ndarray, int]:
    """(truth entry, the RGB frames handed to the encoder, junk draws made) of one video."""
    import pipeline.synthetic.synth as synth
    import pipeline.synthetic.world as world

    frames, draws = [], []
    encode, draw = synth.encode_frames, world.draw_junk

    def keep(path, rgb, *args, **kwargs):
        frames.append(np.stack(list(rgb)))
        return encode(path, frames[-1], *args, **kwargs)

    def count(rng, probs):
        draws.append(probs)
        return draw(rng, probs)

    monkeypatch.setattr(synth, "encode_frames", keep)
    monkeypatch.setattr(world, "draw_junk", count)
    truth = synthesize(root, 1, seed=seed, **options)
    monkeypatch.undo()
    return truth[0], frames[0], len(draws)


def test_junk_is_deterministic_and_plain_footage_unchanged(tmp_path, monkeypatch):
    """Junk costs a uniform draw per shot (`junk.draw_junk`), so after the first shot a junk
    run's shots are not a plain run's of the same seed; what is defined to stay put is:
    - plain footage (every junk probability 0) makes no junk draw at all, so its bytes are
      those of footage filmed before junk existed;
    - with the same draws, a shot not drawn as junk is exactly the ordinary shot. A run with
      only `miscaption_prob` at the junk run's total draws exactly alike (one uniform per
      shot against the same cut-off) and changes no pixel (only the .srt), so it is the
      junk run filmed with every junk shot left ordinary: the two must agree on every shot
      the junk run did not draw as junk, pixel for pixel, and differ on every one it did."""
    args = dict(
        width=64, height=36, shots_per_video=(8, 8), min_shot_s=1.0, max_shot_s=1.5,
        long_shot=False,
    )  # fmt: skip
    kinds = ("static", "flat", "blurry", "ad", "sign")
    junk = dict(args, **{f"{kind}_prob": 0.1 for kind in kinds})
    # Deterministic, repeats (which draw from the earlier shots) included.
    repeats = dict(args, ad_prob=0.3, repeat_prob=0.5)
    one, two = (synthesize(tmp_path / d, 1, seed=6, **repeats) for d in ("one", "two"))
    assert one == two and any(s["repeat_of"] for s in one[0]["shots"])
    assert (tmp_path / "one/video_000.mp4").read_bytes() == (
        tmp_path / "two/video_000.mp4"
    ).read_bytes()

    entry, frames, draws = _filmed(monkeypatch, tmp_path / "junk", 6, **junk)
    assert draws == 8  # one per shot

    _, _, plain_draws = _filmed(monkeypatch, tmp_path / "plain", 6, **args)
    assert plain_draws == 0

    ref, ref_frames, ref_draws = _filmed(
        monkeypatch, tmp_path / "ref", 6, **args, miscaption_prob=0.5
    )
    assert ref_draws == draws
    assert (ref["n_frames"], ref["cuts"]) == (entry["n_frames"], entry["cuts"])
    drawn, ordinary = [], 0
    for i, (shot, plain) in enumerate(zip(entry["shots"], ref["shots"], strict=True)):
        span = slice(shot["start_frame"], shot["end_frame"])
        assert (plain["start_frame"], plain["end_frame"]) == (span.start, span.stop)
        label = shot["overlay"] or shot["kind"]
        if label in kinds:
            drawn.append(label)
            # The same draw made the reference's shot a miscaption: its cue is the previous
            # shot's caption (the first shot has none before it).
            assert plain["kind"] == "shot" and plain["overlay"] is None
            assert i == 0 or plain["sidecar_caption"] is not None, (i, plain)
            assert not np.array_equal(frames[span], ref_frames[span]), (i, label)
        else:
            assert shot == plain, i
            if shot["kind"] != "dissolve":  # a dissolve may fade into a junk neighbour
                assert np.array_equal(frames[span], ref_frames[span]), (i, label)
            ordinary += shot["kind"] == "shot"
    assert set(drawn) == set(kinds) and ordinary >= 2, (drawn, ordinary)


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
