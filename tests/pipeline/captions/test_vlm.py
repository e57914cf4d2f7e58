"""The VLM source end to end on CPU, with tiny random models built from configs."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from pipeline.captions.stage import CaptionStage, VlmStage, caption_video
from pipeline.captions.vlm import VlmCaptioner
from pipeline.config.captions import CaptionConfig, VlmConfig


def vlm_config(model: str, **kwargs) -> CaptionConfig:
    vlm = VlmConfig(model=model, frames=2, max_new_tokens=5, device="cpu", **kwargs)
    return CaptionConfig(sources=("vlm", "filename"), vlm=vlm)


@pytest.fixture(scope="module")
def greedy_llava(tiny_llava):
    """decode(frames, prompt, max_new_tokens) -> (text, score): the tiny LLaVA decoded greedily
    one full forward pass per token, without generate(); the score is what the VLM source
    defines it as, exp(mean log-probability of the generated tokens that are not special)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_llava)
    model = AutoModelForImageTextToText.from_pretrained(tiny_llava).eval()
    tokenizer = processor.tokenizer
    special = set(tokenizer.all_special_ids)

    def decode(frames: list[np.ndarray], prompt: str, max_new_tokens: int) -> tuple[str, float]:
        content = [{"type": "image"}] * len(frames) + [{"type": "text", "text": prompt}]
        chat = [{"role": "user", "content": content}]
        text = processor.apply_chat_template(chat, add_generation_prompt=True)
        inputs = processor(text=[text], images=[frames], return_tensors="pt")
        ids, pixels = inputs["input_ids"], inputs["pixel_values"]
        new, logps = [], []
        for _ in range(max_new_tokens):
            with torch.no_grad():
                logits = model(input_ids=ids, pixel_values=pixels).logits[0, -1].float()
            logp = torch.log_softmax(logits, dim=-1)
            token = int(logp.argmax())
            new.append(token)
            logps.append(float(logp[token]))
            if token == model.generation_config.eos_token_id:
                break
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
        real = [lp for t, lp in zip(new, logps, strict=True) if t not in special]
        score = math.exp(sum(real) / len(real)) if real else 0.0
        return tokenizer.decode(new, skip_special_tokens=True), score

    return decode


def test_llava_captions_every_kept_clip(staged_video, tiny_llava, greedy_llava):
    from pipeline.captions.text import clean_text
    from pipeline.stages.frames import load_frames

    cfg = vlm_config(tiny_llava, batch_size=2)
    video = caption_video(copy.deepcopy(staged_video), cfg)
    kept = [c for c in video["clips"] if not c["reject_reasons"]]
    assert kept
    folder, n = Path(staged_video["stage_dir"]), cfg.vlm.frames
    for clip in kept:
        top = clip["captions"][0]
        assert top["source"] == "vlm" and clip["caption"] == top["text"] and top["text"]
        # The model's own token confidence, recomputed by decoding the same frames here.
        frames = list(load_frames(folder, clip["clip_id"], (n,)).pick(n))
        text, score = greedy_llava(frames, cfg.vlm.prompt, cfg.vlm.max_new_tokens)
        assert top["text"] == clean_text(text)
        assert 0 < score < 1 and top["score"] == pytest.approx(score, abs=2e-4)
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


def test_qwen2vl_takes_the_frames_as_one_video(staged_video, tiny_qwen2vl, monkeypatch):
    from transformers import Qwen2VLProcessor

    calls, outputs = [], []
    call = Qwen2VLProcessor.__call__

    def spy(self, *args, **kwargs):
        calls.append((args, kwargs))
        outputs.append(call(self, *args, **kwargs))
        return outputs[-1]

    monkeypatch.setattr(Qwen2VLProcessor, "__call__", spy)
    cfg = vlm_config(tiny_qwen2vl, input="video", batch_size=4)
    video = caption_video(copy.deepcopy(staged_video), cfg)
    kept = [c for c in video["clips"] if not c["reject_reasons"]]
    assert kept and calls
    for (args, kwargs), out in zip(calls, outputs, strict=True):
        assert not args and kwargs.get("images") is None and "videos" in kwargs, kwargs.keys()
        # One video per clip, its frames stacked in time: (frames, H, W, 3).
        assert len(kwargs["videos"]) == len(kwargs["text"])
        assert all(v.ndim == 4 and v.shape[0] == cfg.vlm.frames for v in kwargs["videos"])
        # Each prompt holds the one video placeholder and no image placeholder.
        assert all(t.count("<|video_pad|>") == 1 for t in kwargs["text"]), kwargs["text"]
        assert not any("<|image_pad|>" in t for t in kwargs["text"])
        assert "pixel_values_videos" in out and "pixel_values" not in out
    assert sum(len(kwargs["videos"]) for _, kwargs in calls) == len(kept)
    assert all(c["captions"] and c["captions"][0]["source"] == "vlm" for c in kept)


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
