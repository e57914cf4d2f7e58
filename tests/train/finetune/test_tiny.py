"""`train.finetune.tiny`: tiny random Wan / LTX / CogVideoX pipeline folders, offline on CPU."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from train.finetune.tiny import FAMILIES, TEXT_DIM, save_tiny_pipeline

PIPELINES = {"wan": "WanPipeline", "ltx": "LTXPipeline", "cogvideox": "CogVideoXPipeline"}
PARTS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")
# (frames, height, width) each family's pipeline takes as asked: Wan and CogVideoX 4k+1
# frames and multiples of 16 px, LTX 8k+1 frames and multiples of 32 px.
SHAPES = {"wan": (13, 32, 48), "ltx": (17, 32, 64), "cogvideox": (9, 48, 32)}
# (temporal, spatial) VAE compression: the real families' own.
COMPRESSION = {"wan": (4, 8), "ltx": (8, 32), "cogvideox": (4, 8)}
SCHEDULERS = {
    "wan": ("UniPCMultistepScheduler", {"prediction_type": "flow_prediction",
            "use_flow_sigmas": True, "flow_shift": 3.0}),
    "ltx": ("FlowMatchEulerDiscreteScheduler", {"use_dynamic_shifting": True,
            "base_shift": 0.95, "max_shift": 2.05, "base_image_seq_len": 1024,
            "max_image_seq_len": 4096, "shift": 1.0, "shift_terminal": 0.1}),
    "cogvideox": ("CogVideoXDDIMScheduler", {"prediction_type": "v_prediction",
                  "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
                  "rescale_betas_zero_snr": True, "snr_shift_scale": 3.0,
                  "timestep_spacing": "trailing", "clip_sample": False,
                  "set_alpha_to_one": True, "steps_offset": 0}),
}  # fmt: skip
TEXT_DIM_KEY = {"wan": "text_dim", "ltx": "caption_channels", "cogvideox": "text_embed_dim"}


@pytest.fixture(scope="module", params=FAMILIES)
def tiny(request, tmp_path_factory) -> tuple[str, Path]:
    family = request.param
    return family, save_tiny_pipeline(family, tmp_path_factory.mktemp(family))


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _checksum(folder: Path) -> str:
    """sha256 over every saved tensor (name, dtype, shape, bytes) of the folder."""
    from safetensors.torch import load_file

    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.safetensors")):
        for name, tensor in sorted(load_file(path).items()):
            digest.update(
                f"{path.relative_to(folder)}:{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode()
            )
            digest.update(tensor.contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def test_folder_layout(tiny):
    family, folder = tiny
    index = _json(folder / "model_index.json")
    assert index["_class_name"] == PIPELINES[family]
    for part in PARTS:
        assert (folder / part).is_dir(), part
        assert index[part][0] in ("diffusers", "transformers"), (part, index[part])
    assert list((folder / "transformer").glob("*.safetensors"))
    scheduler = _json(folder / "scheduler" / "scheduler_config.json")
    name, expected = SCHEDULERS[family]
    assert scheduler["_class_name"] == name
    assert {key: scheduler[key] for key in expected} == expected
    transformer = _json(folder / "transformer" / "config.json")
    assert transformer[TEXT_DIM_KEY[family]] == TEXT_DIM
    assert _json(folder / "text_encoder" / "config.json")["d_model"] == TEXT_DIM
    assert transformer["num_layers"] == 2


@pytest.mark.parametrize("family", FAMILIES)
def test_seed_gives_the_weights(family, tmp_path):
    sums = [_checksum(save_tiny_pipeline(family, tmp_path / f"s{i}", seed)) for i, seed in
            enumerate((0, 0, 1))]  # fmt: skip
    assert sums[0] == sums[1]
    assert sums[0] != sums[2]


def test_pipeline_generates(tiny):
    import diffusers

    family, folder = tiny
    pipe = getattr(diffusers, PIPELINES[family]).from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    names = (
        ("temporal_compression_ratio", "spatial_compression_ratio")
        if family == "ltx"
        else ("scale_factor_temporal", "scale_factor_spatial")
    )
    vae_scale = tuple(getattr(pipe, f"vae_{name}") for name in names)
    assert vae_scale == COMPRESSION[family]
    frames, height, width = SHAPES[family]
    video = pipe(
        prompt="a red circle moving left",
        num_frames=frames,
        height=height,
        width=width,
        num_inference_steps=2,
        guidance_scale=1.0,
        max_sequence_length=16,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).frames
    assert video.shape == (1, frames, height, width, 3)
    assert ((video >= 0) & (video <= 1)).all()


def test_tokenizer_reloads(tiny):
    from transformers import AutoTokenizer

    from pipeline.synthetic.vocab import CAPTION_TEMPLATES, COLOURS, DIRECTIONS, SHAPES

    _, folder = tiny
    tok = AutoTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    ids = tok("A Red circle, moving LEFT.").input_ids
    assert ids[-1] == tok.eos_token_id
    assert tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == "a red circle, moving left."
    a, circle = tok.convert_tokens_to_ids(["a", "circle"])
    assert tok("a zorblax circle").input_ids == [a, tok.unk_token_id, circle, tok.eos_token_id]
    padded = tok("a red circle", padding="max_length", max_length=8).input_ids
    assert padded[3:] == [1, 0, 0, 0, 0]
    for template in CAPTION_TEMPLATES:  # the synthetic world's captions are all known words
        for colour, shape, direction in zip(COLOURS, SHAPES, DIRECTIONS, strict=False):
            caption = template.format(colour=colour, shape=shape, direction=direction)
            assert tok.unk_token_id not in tok(caption).input_ids, caption


def test_unknown_family(tmp_path):
    with pytest.raises(ValueError, match="unknown family 'sora'"):
        save_tiny_pipeline("sora", tmp_path)
