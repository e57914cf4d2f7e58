"""The caption stage: sources in order, the primary rule, errors as data, CLIP scores."""

from __future__ import annotations

import copy
import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.captions.stage import TXT_EMB_SUFFIX, caption_video, rank
from pipeline.captions.text import Candidate
from pipeline.config.captions import CaptionConfig, VlmConfig, ZeroShotConfig
from schemas import empty_clip, validate_clip


def kept(video: dict) -> list[dict]:
    return [c for c in video["clips"] if not c["reject_reasons"]]


def test_every_kept_clip_is_captioned_with_its_own_shot(split_videos, names_its_shot):
    """Synth writes one SRT cue per shot; each kept clip must get its own shot's text."""
    checked = 0
    for video, entry in split_videos:
        video = caption_video(copy.deepcopy(video), CaptionConfig())
        assert video.get("error") is None
        for clip in kept(video):
            shot, ok = names_its_shot(entry, clip)
            if shot["kind"] != "shot":
                continue  # junk footage: no cue, the filters reject it
            assert ok, (clip["clip_id"], clip["caption"], shot["caption"])
            primary = clip["captions"][0]
            assert (primary["text"], primary["source"]) == (shot["caption"], "sidecar_timed")
            # The score is the cue's share of the clip: 1, or just under when the clip keeps
            # the first frame of a dissolve (1/12 of the next shot), which belongs to both.
            frames = clip["end_frame"] - clip["start_frame"]
            assert primary["score"] >= 1 - 1.5 / frames, (clip["clip_id"], primary)
            checked += 1
    assert checked >= 10


def _copy_video(split_videos, folder: Path, stem: str, srt: bool = True) -> dict:
    """The first synthetic video under another name (and with or without its SRT)."""
    video, _ = split_videos[0]
    video = copy.deepcopy(video)
    src = Path(video["source_path"])
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, folder / f"{stem}.mp4")
    if srt:
        shutil.copy(src.with_suffix(".srt"), folder / f"{stem}.srt")
    video["source_path"] = video["local_path"] = str(folder / f"{stem}.mp4")
    return video


def test_the_order_of_sources_is_honoured(split_videos, tmp_path):
    base = _copy_video(split_videos, tmp_path, "bouncing_ball")
    first = caption_video(copy.deepcopy(base), CaptionConfig(sources=("filename", "sidecar_timed")))
    second = caption_video(
        copy.deepcopy(base), CaptionConfig(sources=("sidecar_timed", "filename"))
    )
    for a, b in zip(kept(first), kept(second), strict=True):
        assert a["caption"] == "bouncing ball"
        assert [c["source"] for c in a["captions"]] == ["filename", "sidecar_timed"]
        assert b["caption"] == a["captions"][1]["text"]
        assert [c["source"] for c in b["captions"]] == ["sidecar_timed", "filename"]
    only = caption_video(copy.deepcopy(base), CaptionConfig(sources=("filename",)))
    assert all(c["captions"] == [first["clips"][0]["captions"][0]] for c in kept(only))


def test_a_malformed_sidecar_is_an_error_on_the_video_row(split_videos, tmp_path):
    video = _copy_video(split_videos, tmp_path, "clip")
    (tmp_path / "clip.vtt").write_text("WEBVTT\n\n00:00:zz.000 --> 00:00:01.000\nbad\n")
    (tmp_path / "clip.json").write_bytes(b"\xff\xfe{\x00")  # UTF-16 BOM, then cut short
    video = caption_video(video, CaptionConfig())
    assert video["status"] == "ok"
    assert video["error"].startswith("caption: clip.vtt: no usable cue (line 3: bad timestamp")
    assert "clip.json" in video["error"] and "\n" not in video["error"]
    assert all(c["caption"] for c in kept(video))  # the SRT still captions every clip


def test_uncaptioned_clips_are_kept_unless_required(split_videos, tmp_path):
    base = _copy_video(split_videos, tmp_path, "video_007", srt=False)
    timed = ("sidecar_timed", "sidecar_video")  # the test folder's name would be a caption
    loose = caption_video(copy.deepcopy(base), CaptionConfig(sources=timed))
    assert kept(loose) and all(c["caption"] is None and c["captions"] == [] for c in kept(loose))
    n = len(kept(loose))
    strict = caption_video(copy.deepcopy(base), CaptionConfig(sources=timed, required=True))
    assert sum(c["reject_reasons"] == ["no_caption"] for c in strict["clips"]) == n
    assert not kept(strict)


def test_records_still_match_the_clip_schema(split_videos):
    video = caption_video(copy.deepcopy(split_videos[0][0]), CaptionConfig())
    ids = {"video_id": video["video_id"], "source_path": video["source_path"]}
    for clip in video["clips"]:
        validate_clip(empty_clip(**clip, **ids, kept=not clip["reject_reasons"]))


def test_rank_by_priority_then_score_and_without_repeats():
    vlm = VlmConfig(model="org/some-vlm")  # a hub id: never loaded by rank()
    cfg = CaptionConfig(sources=("vlm", "sidecar_timed", "filename"), vlm=vlm)
    found = [
        Candidate("a dog", "sidecar_timed", 0.9),
        Candidate("dog", "filename"),
        Candidate("A dog.", "vlm", 0.2),
        Candidate("a cat", "vlm", 0.5),
    ]
    assert [(c.text, c.source) for c in rank(found, cfg)] == [
        ("a cat", "vlm"),
        ("A dog.", "vlm"),
        ("dog", "filename"),
    ]
    by_score = dataclasses.replace(cfg, primary="score", trusted=("sidecar_timed",))
    assert rank(found, by_score)[0] == Candidate("a dog", "sidecar_timed", 0.9)
    untrusted = dataclasses.replace(cfg, primary="score", trusted=("sidecar_video",))
    assert rank(found, untrusted)[0].text == "a cat"  # no trusted caption: priority


def _reference_image(reference, video: dict, clip: dict, frames: int):
    """The clip's image embedding rebuilt from its staged mp4 (no stored CLIP embedding in
    `staged_video`: the CLIP stage did not run), `frames` frames as the caption stage picks."""
    from pipeline.stages.frames import load_frames

    picked = load_frames(Path(video["stage_dir"]), clip["clip_id"], (frames,)).pick(frames)
    return reference[1](picked)


def test_clip_scores_zeroshot_and_text_embeddings(staged_video, tiny_clip_cfg, tiny_clip_reference):
    cfg = CaptionConfig(
        sources=("sidecar_timed", "clip_zeroshot", "filename"),
        primary="score",
        text_embeddings=True,
        zeroshot=ZeroShotConfig(vocabulary="configs/caption/synth.yaml"),
    )
    video = caption_video(copy.deepcopy(staged_video), cfg, tiny_clip_cfg)
    again = caption_video(copy.deepcopy(staged_video), cfg, tiny_clip_cfg)
    assert video["clips"] == again["clips"]  # deterministic, random weights included
    folder = Path(staged_video["stage_dir"])
    text_of = tiny_clip_reference[0]
    assert kept(video)
    for clip in kept(video):
        scores = [c["score"] for c in clip["captions"]]
        assert {c["source"] for c in clip["captions"]} == {"sidecar_timed", "clip_zeroshot"}
        # Every score is the CLIP cosine of its text and the clip, recomputed independently.
        image = _reference_image(tiny_clip_reference, video, clip, tiny_clip_cfg.frames)
        texts = text_of([c["text"] for c in clip["captions"]])
        assert scores == pytest.approx((texts @ image).tolist(), abs=1e-4)
        assert clip["captions"][0]["score"] == max(scores)  # primary: best CLIP score
        assert clip["clip_score"] == pytest.approx(float(texts[0] @ image), abs=2e-5)
        emb = np.load(folder / f"{clip['clip_id']}{TXT_EMB_SUFFIX}")
        assert emb.dtype == np.float16 and emb.shape == (64,)
        assert np.allclose(emb.astype(np.float32), texts[0], atol=2e-3)  # the primary's text


def test_with_random_clip_weights_only_the_primary_gets_a_clip_score(
    staged_video, tiny_clip_reference
):
    """Random weights: clip_score is filled (the CLIP stage's column), but the sources keep
    their own scores, which random cosines would only blur."""
    from pipeline.config.scores import ClipConfig

    clip_cfg = ClipConfig(enabled=True, device="cpu")
    video = caption_video(copy.deepcopy(staged_video), CaptionConfig(), clip_cfg)
    assert kept(video)
    for clip in kept(video):
        assert clip["captions"][0]["source"] == "sidecar_timed"
        assert clip["captions"][0]["score"] == pytest.approx(1.0, abs=0.01)  # cue coverage
        image = _reference_image(tiny_clip_reference, video, clip, clip_cfg.frames)
        cosine = float(tiny_clip_reference[0]([clip["caption"]])[0] @ image)
        assert clip["clip_score"] == pytest.approx(cosine, abs=2e-5)
