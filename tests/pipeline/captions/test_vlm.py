"""The VLM source end to end on CPU, with tiny random models built from configs."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from pipeline.captions.stage import CaptionStage, VlmStage, caption_video
from pipeline.captions.vlm import VlmCaptioner
from pipeline.config.captions import CaptionConfig, VlmConfig


def vlm_config(model: str, **kwargs) -> CaptionConfig:
    vlm = VlmConfig(model=model, frames=2, max_new_tokens=5, device="cpu", **kwargs)
    return CaptionConfig(sources=("vlm", "filename"), vlm=vlm)


def test_llava_captions_every_kept_clip(staged_video, tiny_llava):
    video = caption_video(copy.deepcopy(staged_video), vlm_config(tiny_llava, batch_size=2))
    kept = [c for c in video["clips"] if not c["reject_reasons"]]
    assert kept
    for clip in kept:
        top = clip["captions"][0]
        assert top["source"] == "vlm" and clip["caption"] == top["text"] and top["text"]
        assert 0 < top["score"] <= 1  # the model's own token confidence
    for clip in video["clips"]:
        if clip["reject_reasons"]:
            assert clip.get("caption") is None  # no expensive work on rejected clips


def test_batching_does_not_change_captions(tiny_llava):
    rng = np.random.default_rng(0)
    clips = [[rng.integers(0, 255, (36, 64, 3), dtype=np.uint8)] * n for n in (1, 2, 2, 3)]
    one = VlmCaptioner(VlmConfig(model=tiny_llava, max_new_tokens=4, batch_size=1))(clips)
    four = VlmCaptioner(VlmConfig(model=tiny_llava, max_new_tokens=4, batch_size=4))(clips)
    assert [c.text for c in one] == [c.text for c in four]
    assert VlmCaptioner(VlmConfig(model=tiny_llava))([[]]) == [None]


def test_qwen2vl_takes_the_frames_as_one_video(staged_video, tiny_qwen2vl):
    cfg = vlm_config(tiny_qwen2vl, input="video", batch_size=4)
    video = caption_video(copy.deepcopy(staged_video), cfg)
    kept = [c for c in video["clips"] if not c["reject_reasons"]]
    assert all(c["captions"][0]["source"] == "vlm" for c in kept)


def test_vlm_stage_then_caption_stage_as_on_ray(staged_video, tiny_llava):
    """The Ray split: a VLM actor pool leaves vlm captions, the caption stage ranks them."""
    cfg = vlm_config(tiny_llava)
    row = {"video": json.dumps(staged_video)}
    row = CaptionStage(cfg)(VlmStage(cfg)(row))
    direct = caption_video(copy.deepcopy(staged_video), cfg)
    assert json.loads(row["video"])["clips"] == direct["clips"]


def test_a_missing_model_folder_fails_at_config_time(tmp_path):
    from pipeline.config.base import ConfigError

    with pytest.raises(ConfigError, match="--caption.vlm.model"):
        VlmConfig(model=str(tmp_path / "absent"))
