"""Fixtures for the caption tests: split + transcoded synthetic videos, tiny random models.

Every model is built here from a config with random weights and saved to a temp
folder, then loaded back by path through the same code a real model takes. No
weights are fetched: the tokenizers are word-level vocabularies made in place.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# Words the tiny tokenizers know; anything else becomes <unk>.
_WORDS = """a the red green blue yellow white circle square triangle moving left right up down
describe this video clip in one sentence . , : user assistant"""
WORDS = _WORDS.split()


def split_video(path: Path) -> dict:
    from pipeline.config.curate import SplitConfig
    from pipeline.stages.probe import probe_video
    from pipeline.stages.split import Splitter

    video = Splitter(SplitConfig())(probe_video({"path": str(path)}))
    from pipeline.staging import _SCRATCH

    for key in _SCRATCH:
        video.pop(key, None)  # split's scratch state, as SplitStage drops it
    return video


@pytest.fixture(scope="session")
def split_videos(synth_raw) -> list[tuple[dict, dict]]:
    """(split video record, its truth entry) for every synthetic video."""
    root, truth = synth_raw
    return [(split_video(root / entry["file"]), entry) for entry in truth]


@pytest.fixture(scope="session")
def staged_video(synth_raw, tmp_path_factory) -> dict:
    """The shortest synthetic video, split and transcoded: `stage_dir` holds its clip mp4s."""
    from pipeline.config.curate import TranscodeConfig
    from pipeline.stages.transcode import transcode_video

    root, truth = synth_raw
    entry = min(truth, key=lambda t: t["n_frames"])
    video = split_video(root / entry["file"])
    folder = tmp_path_factory.mktemp("stage")
    transcode_video(video, TranscodeConfig(), folder)
    video["stage_dir"] = str(folder)
    return video


@pytest.fixture(scope="session")
def tiny_clip_cfg(tmp_path_factory):
    """A ClipConfig of the tiny random open_clip model, saved and loaded as 'pretrained'
    weights, so CLIP scores are on (auto) exactly as with a real checkpoint."""
    import torch

    from pipeline.config.scores import TINY_CLIP, ClipConfig
    from pipeline.stages.clip_embed import load_clip

    model, _, _ = load_clip(ClipConfig(), "cpu")
    path = tmp_path_factory.mktemp("clip") / "tiny.pt"
    torch.save(model.state_dict(), path)
    return ClipConfig(model=TINY_CLIP, pretrained=str(path), device="cpu")


def _word_tokenizer(specials: list[str], **kwargs):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(specials + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=specials[0]))
    tok.add_special_tokens(specials)  # so "<image><image>" splits into placeholders
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs), vocab


LLAVA_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : {% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }} {% endif %}"
    "{% endfor %}{% endfor %}{% if add_generation_prompt %}assistant : {% endif %}"
)


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory) -> str:
    """A 50k-parameter LLaVA (CLIP vision tower + Llama) with its processor, in a folder."""
    import torch
    from transformers import (
        AutoModelForImageTextToText,
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaProcessor,
    )

    specials = ["<unk>", "<pad>", "<s>", "</s>", "<image>"]
    tokenizer, vocab = _word_tokenizer(
        specials, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
    )  # fmt: skip
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=tokenizer,
        patch_size=16,
        num_additional_image_tokens=1,  # the CLS token the "default" strategy drops
        vision_feature_select_strategy="default",
        chat_template=LLAVA_TEMPLATE,
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
            image_size=32, patch_size=16, projection_dim=32,
        ),
        text_config=LlamaConfig(
            vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
            num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
            pad_token_id=1, bos_token_id=2, eos_token_id=3,
        ),
        image_token_index=vocab["<image>"],
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )  # fmt: skip
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llava")
    AutoModelForImageTextToText.from_config(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|> {{ m['role'] }} {% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|> "
    "{% elif c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|> "
    "{% else %}{{ c['text'] }} {% endif %}{% endfor %}<|im_end|> {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)


@pytest.fixture(scope="session")
def tiny_qwen2vl(tmp_path_factory) -> str:
    """A tiny Qwen2-VL (its processor takes `videos=`) with its processor, in a folder."""
    import torch
    from transformers import (
        AutoModelForImageTextToText,
        Qwen2VLConfig,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
    )
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    specials = ["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>"]
    specials += ["<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tokenizer, vocab = _word_tokenizer(
        specials, unk_token="<unk>", pad_token="<|endoftext|>", eos_token="<|im_end|>",
        extra_special_tokens={
            "image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
            "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>",
        },
    )  # fmt: skip
    pixels = {"min_pixels": 28 * 28 * 4, "max_pixels": 28 * 28 * 16}
    grid = {"patch_size": 14, "merge_size": 2, "temporal_patch_size": 2}
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels, **grid),
        video_processor=Qwen2VLVideoProcessor(**pixels, **grid),
        tokenizer=tokenizer,
        chat_template=QWEN_TEMPLATE,
    )
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
            "max_position_embeddings": 512, "pad_token_id": 1, "eos_token_id": 3,
            "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
        },
        vision_config={
            "depth": 1, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2,
            "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
        },
        image_token_id=vocab["<|image_pad|>"],
        video_token_id=vocab["<|video_pad|>"],
        vision_start_token_id=vocab["<|vision_start|>"],
        vision_end_token_id=vocab["<|vision_end|>"],
    )  # fmt: skip
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-qwen2vl")
    AutoModelForImageTextToText.from_config(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def names_its_shot():
    """check(truth entry, clip) -> (the truth shot under the clip's middle frame, whether
    the clip's caption names that shot's colour, shape and direction)."""

    def check(entry: dict, clip: dict) -> tuple[dict, bool]:
        middle = (clip["start_frame"] + clip["end_frame"]) // 2
        shot = next(s for s in entry["shots"] if s["start_frame"] <= middle < s["end_frame"])
        words = set((clip.get("caption") or "").lower().replace(",", " ").split())
        wanted = {shot.get("colour"), shot.get("shape"), shot.get("direction")}
        return shot, None not in wanted and wanted <= words

    return check
