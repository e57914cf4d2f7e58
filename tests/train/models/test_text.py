"""Frozen text encoders: one interface, token states + prefix masks, stable ids, offline."""

from __future__ import annotations

import json

import pytest
import torch

from train.models.text import TextEncoderSpec, build_text_encoder

CAPTIONS = ["a red circle moving left", "a blue square", ""]


def check_interface(enc, captions=CAPTIONS):
    states, mask = enc(captions)
    assert states.shape[:2] == mask.shape and states.shape[0] == len(captions)
    assert states.shape[2] == enc.dim and mask.dtype == torch.bool
    assert mask[:, 0].all()  # every caption, even "", has a first token
    lengths = mask.sum(1)
    assert torch.equal(mask, torch.arange(mask.shape[1])[None] < lengths[:, None])  # prefixes
    assert not states.requires_grad
    assert all(not p.requires_grad for p in enc.parameters())
    return states, mask


def test_random_encoder_is_deterministic_and_frozen():
    spec = TextEncoderSpec(kind="random", dim=24, max_length=8, seed=3)
    a, b = build_text_encoder(spec), build_text_encoder(spec)
    states, mask = check_interface(a)
    assert torch.equal(states, b(CAPTIONS)[0])
    assert a.encoder_id == b.encoder_id
    assert (
        a.encoder_id
        != build_text_encoder(TextEncoderSpec(kind="random", dim=24, seed=4)).encoder_id
    )
    a.train()
    assert not a.training  # frozen encoders never enter train mode
    assert build_text_encoder(TextEncoderSpec(kind="random", max_length=4))(["a b c d e f"])[
        1
    ].shape == (1, 4)


def test_cache_returns_what_the_encoder_returns():
    spec = TextEncoderSpec(kind="random", dim=8, cache_size=2)
    cached = build_text_encoder(spec)
    plain = build_text_encoder(TextEncoderSpec(kind="random", dim=8, cache_size=0))
    for captions in (CAPTIONS, CAPTIONS[::-1], ["new one", "a blue square"]):
        s1, m1 = cached(captions)
        s2, m2 = plain(captions)
        assert torch.equal(m1, m2)
        assert torch.allclose(s1 * m1[..., None], s2 * m2[..., None])
    assert len(cached._cache) == 2


@pytest.fixture(scope="module")
def minilm():
    return build_text_encoder(TextEncoderSpec())  # the bundled all-MiniLM-L6-v2, offline


def test_default_hf_encoder_is_the_bundled_minilm(minilm, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    states, mask = check_interface(minilm)
    assert minilm.dim == 384
    assert minilm.encoder_id.startswith("hf:all-MiniLM-L6-v2:")
    assert build_text_encoder(TextEncoderSpec()).encoder_id == minilm.encoder_id


def test_minilm_token_states_carry_meaning(minilm):
    # Real pretrained weights: among shape captions, a paraphrase finds its match.
    shapes = ["a red circle moving left", "a blue square moving up", "a green triangle moving down"]
    states, mask = minilm(["a crimson disc drifting leftward", *shapes])
    pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    pooled = torch.nn.functional.normalize(pooled, dim=-1)
    assert (pooled[1:] @ pooled[0]).argmax() == 0


def test_open_clip_text_tower_gives_last_layer_token_states(tmp_path):
    import open_clip

    cfg = {
        "embed_dim": 32,
        "vision_cfg": {
            "image_size": 32,
            "layers": 1,
            "width": 32,
            "head_width": 16,
            "patch_size": 16,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 64,
            "heads": 2,
            "layers": 2,
        },
    }
    (tmp_path / "clipmill-tiny-text.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "clipmill-tiny-text.json")
    torch.manual_seed(0)
    model = open_clip.create_model("clipmill-tiny-text")
    torch.save(model.state_dict(), tmp_path / "tiny.pt")

    spec = TextEncoderSpec(
        kind="open_clip", name="clipmill-tiny-text", pretrained=str(tmp_path / "tiny.pt")
    )
    enc = build_text_encoder(spec)
    states, mask = check_interface(enc)
    assert enc.dim == 64 and enc.encoder_id == "open_clip:clipmill-tiny-text:tiny.pt:L64"
    # The state at the end-of-text token, projected, is open_clip's own text embedding.
    tokens = open_clip.get_tokenizer("clipmill-tiny-text")(CAPTIONS)
    eot = tokens.argmax(dim=-1)
    pooled = states[torch.arange(len(CAPTIONS)), eot] @ model.text_projection
    assert torch.allclose(pooled, model.encode_text(tokens), atol=1e-5)


def test_open_clip_needs_a_model_name():
    with pytest.raises(ValueError, match="--model.text.name"):
        TextEncoderSpec(kind="open_clip")
