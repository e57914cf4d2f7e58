"""CLIP zero-shot tags on the tiny random open_clip: deterministic, and picks what it sees."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.captions.clip_model import ClipModel
from pipeline.captions.zeroshot import ZeroShotCaptioner, load_vocabulary
from pipeline.config.captions import resolve_vocabulary


@pytest.fixture(scope="module")
def clip(tiny_clip_cfg):
    return ClipModel(tiny_clip_cfg)


@pytest.fixture(scope="module")
def vocab():
    return load_vocabulary(resolve_vocabulary("configs/caption/synth.yaml"))


def captioner(clip, vocab, **kwargs):
    return ZeroShotCaptioner(vocab, clip.model, clip.tokenizer, **kwargs)


def test_same_embedding_same_caption_across_fresh_models(tiny_clip_cfg, clip, vocab):
    image = np.random.default_rng(0).standard_normal(64).astype(np.float32)
    first = captioner(clip, vocab)(image)
    again = captioner(ClipModel(tiny_clip_cfg), vocab)(image)
    assert first == again
    assert first is not None and first.source == "clip_zeroshot"
    assert first.text.startswith("a ") and first.text.endswith("on a dark textured background")


def test_the_tag_that_matches_the_image_wins_its_category(clip, vocab, tiny_clip_reference):
    z = captioner(clip, vocab)
    text_of = tiny_clip_reference[0]  # the same tiny model, rebuilt with open_clip alone
    for category in ("subjects", "motions"):
        tags = [c for c in vocab.categories if c.name == category][0].tags
        for i, tag in enumerate(tags):
            # The "image": the tag's prompt ensemble built independently, the unit mean of its
            # templates' unit text embeddings, which is what the captioner must have made too.
            prompts = text_of([template.format(tag) for template in vocab.templates])
            image = prompts.mean(axis=0) / np.linalg.norm(prompts.mean(axis=0))
            assert np.allclose(z.tag_embeddings[category][i], image, atol=1e-5), tag
            assert z.tags(image)[category][0][0] == tag


def test_composition_follows_the_vocabulary_phrases(clip, vocab):
    z = captioner(clip, vocab)
    tags = {"subjects": [("a red circle", 0.3)], "scenes": [("on a dark textured background", 0.2)]}
    assert z.compose(tags) == "a red circle on a dark textured background"
    tags["motions"] = [("moving left", 0.3), ("moving up", 0.2)]
    assert z.compose(tags) == "a red circle moving left and moving up on a dark textured background"
    assert z.compose({"motions": [("moving left", 0.3)]}) is None  # no subject, no caption
    image = z.tag_embeddings["subjects"][0]
    found = z(image)
    assert found.score == pytest.approx(float(clip.encode_text([found.text])[0] @ image), abs=1e-5)


def test_top_k_and_margin(clip, vocab):
    image = np.random.default_rng(1).standard_normal(64).astype(np.float32)
    two = captioner(clip, vocab, top_k=2, margin=0.0)
    assert " and " in two.compose(two.tags(image))
    strict = captioner(clip, vocab, margin=1.0)  # no tag beats its median by a whole unit
    assert strict(image) is None  # no subject, no caption
