"""The caption config section: defaults, flag-naming errors, shipped vocabularies."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.captions.zeroshot import load_vocabulary
from pipeline.config.base import ConfigError
from pipeline.config.captions import (
    CaptionConfig,
    VlmConfig,
    ZeroShotConfig,
    check_caption_against_clip,
)
from pipeline.config.scores import ClipConfig
from schemas.vocab import CAPTION_SOURCES

VOCABULARIES = sorted((Path(__file__).parents[3] / "configs" / "caption").glob("*.yaml"))


def test_defaults_are_valid_and_cheap():
    cfg = CaptionConfig()
    assert cfg.sources == ("sidecar_timed", "sidecar_video", "filename")
    assert not cfg.required and cfg.primary == "priority" and not cfg.needs_clip
    assert set(cfg.trusted) <= set(CAPTION_SOURCES)


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"sources": ("sidecar_timed", "ocr")}, "--caption.sources"),
        ({"sources": ("filename", "filename")}, "--caption.sources"),
        ({"min_overlap": 0}, "--caption.min_overlap"),
        ({"primary": "score", "clip_scores": "off"}, "--caption.primary"),
        ({"required": True, "sources": ()}, "--caption.required"),
        ({"sources": ("vlm",)}, "--caption.vlm.model"),
        (
            {"sources": ("clip_zeroshot",), "zeroshot": ZeroShotConfig(vocabulary="nope.yaml")},
            "--caption.zeroshot.vocabulary",
        ),
        ({"max_chars": 3}, "--caption.max_chars"),
    ],
)
def test_bad_values_name_their_flag(kwargs, flag):
    with pytest.raises(ConfigError, match=f"^{flag} "):
        CaptionConfig(**kwargs)


@pytest.mark.parametrize(
    ("cls", "kwargs", "flag"),
    [
        (ZeroShotConfig, {"top_k": 0}, "--caption.zeroshot.top_k"),
        (ZeroShotConfig, {"templates": ("no placeholder",)}, "--caption.zeroshot.templates"),
        (VlmConfig, {"frames": 0}, "--caption.vlm.frames"),
        (VlmConfig, {"device": "tpu"}, "--caption.vlm.device"),
        (VlmConfig, {"model": "/no/such/folder"}, "--caption.vlm.model"),
        (VlmConfig, {"input": "audio"}, "--caption.vlm.input"),
    ],
)
def test_nested_sections_name_their_flag(cls, kwargs, flag):
    with pytest.raises(ConfigError, match=f"^{flag} "):
        cls(**kwargs)


def test_a_hub_id_is_not_checked_as_a_folder():
    assert VlmConfig(model="Qwen/Qwen2-VL-2B-Instruct").model == "Qwen/Qwen2-VL-2B-Instruct"


def test_clip_users_need_the_clip_section():
    off = ClipConfig(enabled=False)
    check_caption_against_clip(CaptionConfig(), off)
    with pytest.raises(ConfigError, match="^--caption.sources needs CLIP"):
        check_caption_against_clip(CaptionConfig(sources=("clip_zeroshot",)), off)
    with pytest.raises(ConfigError, match="^--caption.text_embeddings"):
        check_caption_against_clip(CaptionConfig(text_embeddings=True), off)


@pytest.mark.parametrize("path", VOCABULARIES, ids=lambda p: p.name)
def test_shipped_vocabularies_parse(path):
    vocab = load_vocabulary(path)
    assert vocab.categories[0].name == "subjects" and vocab.templates


def test_a_malformed_vocabulary_names_the_flag(tmp_path):
    bad = tmp_path / "v.yaml"
    bad.write_text("motions: [running]\n")
    with pytest.raises(ConfigError, match="--caption.zeroshot.vocabulary .*subjects"):
        load_vocabulary(bad)
    bad.write_text("subjects: {phrase: 'no slot', tags: [a dog]}\n")
    with pytest.raises(ConfigError, match="phrase"):
        load_vocabulary(bad)
