"""Tiny random diffusers pipeline folders for Wan 2.1, LTX-Video and CogVideoX.

Why: the fine-tuning code reads a real `save_pretrained` pipeline folder (model_index.json,
transformer/, vae/, text_encoder/, tokenizer/, scheduler/), and real folders are gigabytes
behind a download. These folders have the same layout, the same component classes and the
real scheduler configs, with random weights a few hundred kB in all: tests, CPU benchmarks
and trying the fine-tuning commands run on them offline, with no download.

Each component keeps the structure of the real one (2 transformer layers with real attention,
RoPE and text cross-attention; the real VAE block types with the real spatial and temporal
compression; a T5-style encoder) at the smallest widths that still run, so the frame and size
constraints are those of the real family:

    family     frames   height/width   (VAE stride x transformer patch)
    wan        4k+1     multiple of 16 (8 x 2)
    ltx        8k+1     multiple of 32 (32 x 1)
    cogvideox  4k+1     multiple of 16 (8 x 2)

The text encoder is a 2-layer T5 (UMT5 for Wan) over a word-level tokenizer made in place:
a few hundred English words (the synthetic shapes world's captions among them), anything
else is `<unk>`, and every caption ends with `</s>` as with T5's tokenizer.

    python -m train.finetune.tiny wan /tmp/tiny-wan
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

FAMILIES = ("wan", "ltx", "cogvideox")

# The text encoder's d_model = Wan text_dim = LTX caption_channels = CogVideoX text_embed_dim.
TEXT_DIM = 32
SPECIALS = ("<pad>", "</s>", "<unk>")  # T5's ids: pad 0, eos 1, unk 2
_WORDS = """
a an the this that these those one two three four five six many some each every other single
and or but with without of in on at to from into onto over under above below across through
around along behind between near far toward towards away by for as while then is are was it
its his her their he she they we you i there here not no very slowly quickly fast slow steady
red green blue yellow white black orange purple pink brown grey gray gold silver cyan magenta
dark bright light pale deep colourful colorful shiny glowing transparent striped textured plain
circle square triangle rectangle star heart diamond hexagon oval ring dot line shape shapes
ball cube box block disc sphere cone cylinder pyramid object objects thing
moving moves move drifting drifts sliding slides gliding glides travelling traveling travels
rolling rolls bouncing bounces spinning spins rotating rotates turning turns falling falls
rising rises flying flies floating floats running runs walking walks jumping jumps swimming
shaking growing shrinking flashing fading zooming panning tracking still static stationary
left right up down upward downward forward backward sideways diagonally top bottom centre center
middle corner edge side front back inside outside
background backdrop scene frame video clip shot camera view image picture screen close wide
sky ground water sea ocean river lake beach sand grass tree trees forest field mountain hill
road street city building house room wall floor table window door car bus train boat plane bird
dog cat horse fish person man woman child people crowd hand face
sun moon cloud clouds rain snow fire smoke light shadow night day morning evening sunset
small large big tiny huge little tall short long round flat smooth soft hard old new young
happy calm busy empty full clear blurry sharp quiet loud beautiful simple
cinematic realistic animated cartoon drawing painting high quality detailed
"""
WORDS = tuple(_WORDS.split())
PUNCTUATION = (".", ",", ":", ";", "!", "?", "'", '"', "-", "(", ")")


def build_tokenizer(model_max_length: int = 512) -> Any:
    """A T5-style word-level tokenizer: lowercased, split on whitespace and punctuation,
    unknown words to `<unk>`, `</s>` appended to every sequence."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = list(dict.fromkeys(WORDS))  # keep order, drop repeats
    vocab = {token: i for i, token in enumerate([*SPECIALS, *PUNCTUATION, *words])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.add_special_tokens(list(SPECIALS))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=model_max_length,
    )


def _t5_kwargs(vocab_size: int) -> dict[str, Any]:
    """A 2-layer T5 v1.1-style encoder config (gated GELU, untied, relative buckets)."""
    return dict(
        vocab_size=vocab_size,
        d_model=TEXT_DIM,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        dropout_rate=0.0,
        pad_token_id=0,
        eos_token_id=1,
    )


def _text_parts(seed: int, umt5: bool) -> dict[str, Any]:
    """{"tokenizer", "text_encoder"}: T5EncoderModel, or UMT5EncoderModel for Wan."""
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    tokenizer = build_tokenizer()
    config_cls, model_cls = (UMT5Config, UMT5EncoderModel) if umt5 else (T5Config, T5EncoderModel)
    config = config_cls(**_t5_kwargs(len(tokenizer)))
    return {"tokenizer": tokenizer, "text_encoder": _seeded(seed, lambda: model_cls(config))}


def _seeded(seed: int, build: Callable[[], Any]) -> Any:
    """`build()` right after torch.manual_seed(seed): the same seed, the same weights."""
    torch.manual_seed(seed)
    return build().eval()


def _wan(seed: int) -> Any:
    # Sizes from diffusers' tests/pipelines/wan/test_wan.py (get_dummy_components).
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )

    transformer = _seeded(seed, lambda: WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16,
        out_channels=16, text_dim=TEXT_DIM, freq_dim=256, ffn_dim=32, num_layers=2,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
    ))  # fmt: skip
    vae = _seeded(seed, lambda: AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
        temperal_downsample=[False, True, True],
    ))  # fmt: skip
    # Wan-AI/Wan2.1-T2V-1.3B-Diffusers scheduler/scheduler_config.json (the rest is default).
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
    )
    return WanPipeline(
        transformer=transformer, vae=vae, scheduler=scheduler, **_text_parts(seed, umt5=True)
    )


def _ltx(seed: int) -> Any:
    # Sizes from diffusers' tests/pipelines/ltx/test_ltx.py, with LTX-Video's own VAE strides
    # (patch 4 and three 2x scalings: 32x spatial, 8x temporal) instead of the test's 4x/4x.
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )

    # cross_attention_dim: the inner width 4 x 8 that the captions are projected to.
    transformer = _seeded(seed, lambda: LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4,
        attention_head_dim=8, cross_attention_dim=32, num_layers=2, caption_channels=TEXT_DIM,
    ))  # fmt: skip
    vae = _seeded(seed, lambda: AutoencoderKLLTXVideo(
        latent_channels=8, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False),
        patch_size=4, patch_size_t=1, encoder_causal=True, decoder_causal=False,
    ))  # fmt: skip
    # Lightricks/LTX-Video scheduler/scheduler_config.json.
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=1.0, use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
        base_image_seq_len=1024, max_image_seq_len=4096, shift_terminal=0.1,
    )  # fmt: skip
    return LTXPipeline(
        transformer=transformer, vae=vae, scheduler=scheduler, **_text_parts(seed, umt5=False)
    )


def _cogvideox(seed: int) -> Any:
    # Sizes from diffusers' tests/pipelines/cogvideo/test_cogvideox.py, with rotary position
    # embeddings (the 5B convention) and a 16-wide head, as the 3D RoPE splits a head 4:6:6.
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXPipeline,
        CogVideoXTransformer3DModel,
    )

    transformer = _seeded(seed, lambda: CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=4,
        time_embed_dim=16, text_embed_dim=TEXT_DIM, num_layers=2,
        sample_width=4, sample_height=4, sample_frames=9,  # latents of 32x32 px, 9 frames
        patch_size=2, temporal_compression_ratio=4, use_rotary_positional_embeddings=True,
    ))  # fmt: skip
    vae = _seeded(seed, lambda: AutoencoderKLCogVideoX(
        down_block_types=("CogVideoXDownBlock3D",) * 4, up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8), latent_channels=4, layers_per_block=1,
        norm_num_groups=2, temporal_compression_ratio=4,
    ))  # fmt: skip
    # THUDM/CogVideoX-2b scheduler/scheduler_config.json (snr_shift_scale 3.0; 5B has 1.0).
    scheduler = CogVideoXDDIMScheduler(
        prediction_type="v_prediction", beta_schedule="scaled_linear", beta_start=0.00085,
        beta_end=0.012, rescale_betas_zero_snr=True, snr_shift_scale=3.0,
        timestep_spacing="trailing", clip_sample=False, set_alpha_to_one=True, steps_offset=0,
    )  # fmt: skip
    return CogVideoXPipeline(
        transformer=transformer, vae=vae, scheduler=scheduler, **_text_parts(seed, umt5=False)
    )


_BUILDERS: dict[str, Callable[[int], Any]] = {"wan": _wan, "ltx": _ltx, "cogvideox": _cogvideox}


def build_tiny_pipeline(family: str, seed: int = 0) -> Any:
    """The family's diffusers pipeline with tiny random components (float32, CPU)."""
    if family not in _BUILDERS:
        raise ValueError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")
    return _BUILDERS[family](seed)


def save_tiny_pipeline(family: str, folder: str | os.PathLike, seed: int = 0) -> Path:
    """Build the family's tiny random pipeline components from configs and save_pretrained them
    to `folder` (model_index.json, transformer/, vae/, text_encoder/, tokenizer/, scheduler/).
    Returns the folder."""
    folder = Path(folder).expanduser()
    build_tiny_pipeline(family, seed).save_pretrained(folder)
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("family", choices=FAMILIES)
    parser.add_argument("folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(save_tiny_pipeline(args.family, args.folder, args.seed))


if __name__ == "__main__":
    main()
