"""Pans, flashes and fades in synthetic footage: what their truth says is in the pixels, the
same seed gives the same bytes, and footage made without them keeps its old bytes."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from pipeline.synthetic.config import SynthConfig
from pipeline.synthetic.shots import FLASH_EDGE, PAN_SCENES
from pipeline.synthetic.synth import main, synthesize
from pipeline.synthetic.truth import flash_frames
from pipeline.synthetic.world import dissolve_frames, plan_video, render_segments

# Seed 6 gives plain and faint pans, flashes, fades, dissolves and a black gap in 580 frames.
TRANS = dict(
    width=96,
    height=54,
    min_shot_s=0.5,
    max_shot_s=1.5,
    shots_per_video=(4, 6),
    dissolve_prob=0.15,
    black_prob=0.15,
    long_shot=False,
    pan_prob=0.4,
    pan_s=(3.0, 4.0),
    flash_prob=0.7,
    fade_prob=0.4,
)
SEED = 6
CAPTIONS = {caption for _, caption in PAN_SCENES.values()}


@pytest.fixture(scope="module")
def trans_raw(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("trans_raw")
    return out, synthesize(out, videos=2, seed=SEED, **TRANS)


@pytest.fixture(scope="module")
def decoded(trans_raw) -> list[np.ndarray]:
    out, truth = trans_raw
    videos = []
    for entry in truth:
        with av.open(str(out / entry["file"])) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        videos.append(np.stack(frames).astype(np.float32))
    return videos


def rendered(index: int, **changes: object) -> list[np.ndarray]:
    """Video `index`'s frames before encoding, as `synthesize` draws them (no repeats here)."""
    cfg = SynthConfig(videos=2, seed=SEED, **{**TRANS, **changes})  # type: ignore[arg-type]
    segments = plan_video(np.random.default_rng([SEED, index]), cfg, False, [], "")
    return list(render_segments(segments, cfg.width, cfg.height, cfg.fps))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame.astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)


def shift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(dx, dy) with b(x, y) ~ a(x - dx, y - dy): one global translation, by Gauss-Newton."""
    h, w = a.shape
    gy, gx = np.gradient(a)
    inner = (slice(6, -6), slice(6, -6))  # away from the border the warp invents
    d = np.zeros(2)
    for _ in range(20):
        warp = np.float32([[1, 0, d[0]], [0, 1, d[1]]])
        moved = [
            cv2.warpAffine(x, warp, (w, h), borderMode=cv2.BORDER_REFLECT) for x in (a, gx, gy)
        ]
        jac = -np.stack([moved[1][inner].ravel(), moved[2][inner].ravel()], axis=1)
        step = np.linalg.lstsq(jac, (b - moved[0])[inner].ravel(), rcond=None)[0]
        d += step
        if np.abs(step).max() < 1e-4:
            break
    return d


def test_same_seed_same_bytes_with_pans_flashes_and_fades(trans_raw, tmp_path: Path) -> None:
    out, truth = trans_raw
    assert synthesize(tmp_path, videos=2, seed=SEED, **TRANS) == truth
    assert _files(tmp_path) == _files(out)
    assert json.loads((out / "truth.json").read_text()) == truth


def test_truth_lists_every_pan_flash_and_fade(trans_raw) -> None:
    out, truth = trans_raw
    counts = {"pan": 0, "faint": 0, "flash": 0, "fade": 0}
    for entry in truth:
        shots, cuts = entry["shots"], entry["cuts"]
        pans = [i for i, s in enumerate(shots) if s["kind"] == "pan"]
        assert [p["shot"] for p in entry["pans"]] == pans
        for pan in entry["pans"]:
            shot = shots[pan["shot"]]
            assert (pan["start_frame"], pan["end_frame"]) == (
                shot["start_frame"],
                shot["end_frame"],
            )
            assert shot["caption"].split(",")[0] in CAPTIONS and shot["colour"] is None
            assert 3.0 * 24 <= shot["end_frame"] - shot["start_frame"] <= 4.0 * 24
            counts["faint" if pan["faint_shape"] else "pan"] += 1
        for flash in entry["flashes"]:
            shot = shots[flash["shot"]]
            frames = flash["frames"]
            assert shot["kind"] == "shot" and 1 <= len(frames) <= 3
            assert frames == list(range(frames[0], frames[0] + len(frames)))
            assert shot["start_frame"] + FLASH_EDGE <= frames[0]
            assert frames[-1] < shot["end_frame"] - FLASH_EDGE
            # Not a cut: no transition starts, ends or lies inside the flash's shot.
            inside = range(shot["start_frame"] + 1, shot["end_frame"])
            assert not [c for c in cuts if c["start_frame"] in inside or c["frame"] in inside]
            counts["flash"] += 1
        fades = [(s["start_frame"], s["end_frame"]) for s in shots if s["kind"] == "fade"]
        assert [(f["start_frame"], f["end_frame"]) for f in entry["fades"]] == fades
        fade_cuts = [(c["start_frame"], c["end_frame"]) for c in cuts if c["kind"] == "fade"]
        assert fade_cuts == fades
        ramp = dissolve_frames(entry["fps"])
        for fade in entry["fades"]:
            assert fade["black_start"] - fade["start_frame"] == ramp
            assert fade["end_frame"] - fade["black_end"] == ramp
            assert fade["black_end"] > fade["black_start"]
            counts["fade"] += 1
        cues = (out / entry["srt"]).read_text(encoding="utf-8").strip().split("\n\n")
        assert len(cues) == sum(s["kind"] in ("shot", "pan") for s in shots)
    assert min(counts.values()) >= 1, counts
    assert flash_frames(truth[0]) == sorted(f for x in truth[0]["flashes"] for f in x["frames"])
    assert flash_frames({"shots": []}) == []


def test_a_pan_is_a_slow_steady_translation_of_soft_content(trans_raw, decoded) -> None:
    _, truth = trans_raw
    checked = 0
    for index, (entry, frames) in enumerate(zip(truth, decoded, strict=True)):
        exact = rendered(index)
        for pan in entry["pans"]:
            a, b = pan["start_frame"], pan["end_frame"]
            grey = [_grey(f) for f in frames[a:b]]
            # Low-contrast and soft: a few grey levels of spread, and no edges (a Laplacian
            # variance of ~2 is 8-bit rounding; the world's ordinary shots give 50-700).
            assert max(g.std() for g in grey) < 8
            assert max(cv2.Laplacian(g, cv2.CV_32F).var() for g in grey) < 5
            steps = np.abs(np.diff(frames[a:b], axis=0)).mean(axis=(1, 2, 3))
            assert steps.max() < 1.0  # consecutive frames nearly alike
            if pan["faint_shape"]:
                continue  # the blob moves its own way: the background's shift is not global
            truth_step = np.array(pan["velocity_px_s"]) / entry["fps"]
            assert 0 < np.abs(truth_step).max() <= 8 / 24
            k = 12  # half a second: a sub-pixel step per frame adds up to a measurable one
            exact_grey = [_grey(f) for f in exact[a:b]]
            per_frame = np.array(
                [shift(exact_grey[i], exact_grey[i + k]) / k for i in range(0, b - a - k, 6)]
            )
            assert np.abs(per_frame - truth_step).max() < 0.02  # the same step all along
            one_s = shift(grey[0], grey[24]) / 24  # the encoded video too, more loosely
            assert np.abs(one_s - truth_step).max() < 0.35 * np.abs(truth_step).max()
            checked += 1
    assert checked >= 1


def test_flash_frames_are_bright_and_nothing_around_them_changes(trans_raw, decoded) -> None:
    _, truth = trans_raw
    for index, (entry, frames) in enumerate(zip(truth, decoded, strict=True)):
        # Before encoding: exactly the frames of the same footage without flashes, but these.
        lit, plain = rendered(index), rendered(index, flash_prob=0.0)
        differ = [i for i, (x, y) in enumerate(zip(lit, plain, strict=True)) if (x != y).any()]
        assert differ == flash_frames(entry)
        brightness = frames.mean(axis=(1, 2, 3))
        for flash in entry["flashes"]:
            first, last = flash["frames"][0], flash["frames"][-1]
            before, after = brightness[first - 1], brightness[last + 1]
            assert min(brightness[first : last + 1]) > max(before, after) + 60
            # Encoded, the frames around the flash are still the flash-free footage.
            around = [*range(first - FLASH_EDGE, first), *range(last + 1, last + 1 + FLASH_EDGE)]
            assert max(np.abs(frames[i] - plain[i]).mean() for i in around) < 3  # x264: ~1.8


def test_a_fade_dims_to_black_and_back(trans_raw, decoded) -> None:
    _, truth = trans_raw
    for entry, frames in zip(truth, decoded, strict=True):
        brightness = frames.mean(axis=(1, 2, 3))
        for fade in entry["fades"]:
            a, s, e, b = (fade[k] for k in ("start_frame", "black_start", "black_end", "end_frame"))
            out, black, into = brightness[a - 1 : s + 1], brightness[s:e], brightness[e - 1 : b + 1]
            assert (np.diff(out) < 0.5).all() and out[0] - out[-1] > 10
            assert black.max() < 2
            assert (np.diff(into) > -0.5).all() and into[-1] - into[0] > 10


def test_default_flags_keep_the_old_bytes(tmp_path: Path) -> None:
    small = dict(width=64, height=36, min_shot_s=0.5, max_shot_s=1.0, shots_per_video=(3, 4))
    synthesize(tmp_path / "default", videos=2, seed=0, **small)
    zero = dict(pan_prob=0.0, flash_prob=0.0, fade_prob=0.0, pan_s=(5.0, 9.0))
    synthesize(tmp_path / "zero", videos=2, seed=0, **small, **zero)
    assert _files(tmp_path / "default") == _files(tmp_path / "zero")
    truth = json.loads((tmp_path / "default" / "truth.json").read_text())
    assert not {"pans", "flashes", "fades"} & {key for entry in truth for key in entry}
    # The plan and captions of this footage as made before pans, flashes and fades existed
    # (sha256 of truth.json and the .srt files: no encoder in them, so any machine agrees).
    text = b"".join((tmp_path / "default" / n).read_bytes() for n in TEXT_FILES)
    assert hashlib.sha256(text).hexdigest() == OLD_TEXT_SHA256


TEXT_FILES = ("truth.json", "video_000.srt", "video_001.srt")
OLD_TEXT_SHA256 = "2210219390b40f4d612fa3433738986152c0dc0aba94afb1e8e004c46cc3981c"


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [("pan_prob", 1.5, "--pan-prob"), ("flash_prob", -0.1, "--flash-prob"),
     ("fade_prob", 2.0, "--fade-prob"), ("pan_s", (0.0, 1.0), "--pan-s"),
     ("pan_s", (9.0, 3.0), "--pan-s"), ("fade_prob", 0.7, "--fade-prob")],
)  # fmt: skip
def test_bad_new_values_name_their_flag(field: str, value: object, flag: str) -> None:
    with pytest.raises(ValueError, match=re.escape(flag)):
        SynthConfig(**{field: value})  # type: ignore[arg-type]


def test_cli_flags_reach_the_truth(tmp_path: Path) -> None:
    args = ["--output", str(tmp_path), "--videos", "1", "--width", "64", "--height", "36"]
    flags = ["--pan-prob", "0.5", "--pan-s", "2", "3", "--flash-prob", "1", "--fade-prob", "0.5"]
    assert main([*args, *flags, "--duration-s", "12"]) == 0
    (entry,) = json.loads((tmp_path / "truth.json").read_text())
    assert {"pans", "flashes", "fades"} <= set(entry)
    assert entry["n_frames"] == 288
