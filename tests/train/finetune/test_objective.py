"""The families' objectives and text/latent layouts against diffusers' own code (no Lightning).

Each check compares with what the family's diffusers pipeline (or diffusers' CogVideoX
training example) does, so training feeds the transformer exactly what sampling feeds it.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from train.finetune.objective import ObjectiveConfig, flow_loss, vpred_loss
from train.finetune.registry import load_family
from train.flow import shift_time

pytestmark = pytest.mark.usefixtures("one_thread")

# Captions of different lengths, all in the tiny tokenizer's vocabulary.
CAPTIONS = ["a red square moving right", "a small blue circle slowly moving left across the sky"]


def pipeline(folder: Path) -> Any:
    """The family's own diffusers pipeline, loaded from the tiny folder."""
    import diffusers

    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    pipe = getattr(diffusers, index["_class_name"]).from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def cache_prefix(states: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """What the latent cache keeps of zero_pad / mask layouts: the real tokens' prefix."""
    n = int(mask.sum(1).max())
    return states[:, :n], mask[:, :n]


class Recorder(torch.nn.Module):
    """A stand-in transformer: records its keyword inputs, returns hidden_states * scale."""

    dtype = torch.float32

    def __init__(self, scale: Tensor | float = 1.0) -> None:
        super().__init__()
        self.scale, self.seen = scale, {}

    def forward(self, **kwargs: Any) -> tuple[Tensor]:
        self.seen = kwargs
        return (kwargs["hidden_states"] * self.scale,)


def test_wan_flow_shift_is_the_folders(tiny_pipeline, tmp_path):
    """Wan's shift is the folder's scheduler `flow_shift` (3.0 in the tiny and 480p folders;
    5.0 for 720p), and flow_loss draws sigma = shift_time(u, that shift)."""
    src = tiny_pipeline("wan")
    assert load_family(src).flow_shift((1, 16, 3, 4, 4)) == 3.0
    for name in ("model_index.json", "transformer/config.json", "vae/config.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / name, tmp_path / name)
    scheduler = json.loads((src / "scheduler/scheduler_config.json").read_text(encoding="utf-8"))
    (tmp_path / "scheduler").mkdir()
    (tmp_path / "scheduler/scheduler_config.json").write_text(
        json.dumps({**scheduler, "flow_shift": 5.0}), encoding="utf-8"
    )
    family = load_family(tmp_path)
    assert family.flow_shift((1, 16, 3, 4, 4)) == 5.0

    recorder, x0 = Recorder(), torch.randn(3, 16, 3, 4, 4)
    flow_loss(
        family,
        recorder,
        x0,
        torch.zeros(3, 512, 32),
        None,
        ObjectiveConfig(),
        torch.Generator().manual_seed(0),
    )
    u = torch.sigmoid(torch.randn(3, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(recorder.seen["timestep"], 1000 * shift_time(u, 5.0))


def test_ltx_shift_grows_with_tokens_as_the_pipeline_computes(tiny_pipeline):
    """LTX-Video's shift is exp(mu) of the pipeline's own calculate_shift over the latent token
    count, and shift_time(sigma, exp(mu)) is the scheduler's exponential time shift."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from diffusers.pipelines.ltx.pipeline_ltx import calculate_shift

    folder = tiny_pipeline("ltx")
    family = load_family(folder)
    cfg = family.scheduler_config
    shifts = []
    for t, h, w in ((2, 1, 1), (4, 16, 24), (16, 16, 24), (16, 32, 48)):
        mu = calculate_shift(
            t * h * w,
            cfg["base_image_seq_len"],
            cfg["max_image_seq_len"],
            cfg["base_shift"],
            cfg["max_shift"],
        )
        shifts.append(family.flow_shift((1, 8, t, h, w)))
        assert shifts[-1] == pytest.approx(math.exp(mu), rel=1e-12)
    assert shifts == sorted(shifts) and shifts[-1] > 2 * shifts[0]
    scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(folder, subfolder="scheduler")
    sigma = torch.linspace(0.05, 0.95, 7, dtype=torch.float64)
    mu = math.log(shifts[1])
    torch.testing.assert_close(shift_time(sigma, shifts[1]), scheduler.time_shift(mu, 1.0, sigma))


@pytest.mark.parametrize(
    ("name", "layout", "length"),
    [("wan", "zero_pad", 512), ("ltx", "mask", 128), ("cogvideox", "full", 226)],
)
def test_cached_text_is_what_the_pipeline_feeds(name, layout, length, tiny_pipeline):
    """`text_inputs` of the states the cache keeps gives the transformer what the pipeline's
    own `encode_prompt` gives it: Wan the zero-padded 512 states, LTX the 128 states under
    its mask (pad states are masked out, so only the output must agree), CogVideoX all 226."""
    folder = tiny_pipeline(name)
    family, pipe = load_family(folder), pipeline(folder)
    assert family.text_layout == layout and family.text_length == length
    with torch.no_grad():
        states, mask = family.encode_text(pipe.tokenizer, pipe.text_encoder, CAPTIONS)
        ref = pipe.encode_prompt(
            CAPTIONS, do_classifier_free_guidance=False, max_sequence_length=length
        )
    assert states.shape[:2] == (2, length) and mask.dtype == torch.bool
    kept = (states, mask) if layout == "full" else cache_prefix(states, mask)
    text, text_mask = family.text_inputs(*kept)
    assert text.shape == (2, length, states.shape[-1])
    if layout == "mask":
        assert torch.equal(text_mask, ref[1].bool())
        torch.testing.assert_close(text[text_mask], ref[0][text_mask])
        assert (text[~text_mask] == 0).all()
        _check_same_ltx_output(family, pipe.transformer, text, text_mask, ref[0], ref[1])
        return
    assert text_mask is None
    assert mask.all() if layout == "full" else not mask.all()
    torch.testing.assert_close(text, ref[0])


def _check_same_ltx_output(family, transformer, text, mask, ref_text, ref_mask) -> None:
    latents, t = torch.randn(2, 8, 2, 1, 1), torch.tensor([500.0, 250.0])
    with torch.no_grad():
        ours = family.predict(transformer, latents, t, text, mask)
        theirs = family.predict(transformer, latents, t, ref_text, ref_mask)
    torch.testing.assert_close(ours, theirs)


def test_vpred_loss_is_the_cogvideox_example_loss(tiny_pipeline):
    """vpred_loss equals examples/cogvideo/train_cogvideox_lora.py's loss recomputed by hand
    for the same draws: x_t = sqrt(a) x0 + sqrt(1-a) noise, x0_pred = sqrt(a) x_t -
    sqrt(1-a) v, mean over (1/(1-a)) (x0_pred - x0)^2, with the example's scheduler class."""
    from diffusers import CogVideoXDPMScheduler

    folder = tiny_pipeline("cogvideox")
    family, pipe = load_family(folder), pipeline(folder)
    transformer = pipe.transformer
    x0, text = torch.randn(2, 4, 3, 4, 4), torch.randn(2, 226, 32)  # [B, C, T, H, W]
    with torch.no_grad():
        ours = vpred_loss(
            family,
            transformer,
            x0,
            text,
            None,
            family.training_scheduler(),
            torch.Generator().manual_seed(11),
        )

        g = torch.Generator().manual_seed(11)
        scheduler = CogVideoXDPMScheduler.from_pretrained(folder, subfolder="scheduler")
        t = torch.randint(0, scheduler.config.num_train_timesteps, (2,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        a = scheduler.alphas_cumprod[t].float().view(2, 1, 1, 1, 1)  # add_noise casts so
        model_input = x0.transpose(1, 2)  # the example's [B, F, C, H, W]
        noisy = a.sqrt() * model_input + (1 - a).sqrt() * noise.transpose(1, 2)
        rotary = pipe._prepare_rotary_positional_embeddings(32, 32, 3, torch.device("cpu"))
        v = transformer(
            hidden_states=noisy,
            encoder_hidden_states=text,
            timestep=t,
            image_rotary_emb=rotary,
            return_dict=False,
        )[0]
        pred = a.sqrt() * noisy - (1 - a).sqrt() * v
        theirs = ((pred - model_input) ** 2 / (1 - a)).reshape(2, -1).mean(1)
    assert len(set(t.tolist())) == 2
    torch.testing.assert_close(ours.float(), theirs, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("patch", [(1, 1), (2, 2)], ids=["ltx_0.9", "patched"])
def test_ltx_predict_packs_as_the_pipeline(patch, tiny_pipeline):
    """LTXVideo.predict hands the transformer LTXPipeline._pack_latents' tokens with the
    pipeline's RoPE scale, and unpacks the output with _unpack_latents (identity round trip)."""
    from diffusers import LTXPipeline

    folder = tiny_pipeline("ltx")
    family, pipe = load_family(folder), pipeline(folder)
    pt, p = patch
    family.transformer_config = {**family.transformer_config, "patch_size_t": pt, "patch_size": p}
    latents, t, text = (
        torch.randn(2, 8, 4, 6, 4),
        torch.tensor([10.0, 20.0]),
        torch.zeros(2, 128, 32),
    )
    packed = LTXPipeline._pack_latents(latents, p, pt)
    dims = (4 // pt, 6 // p, 4 // p)
    rope = (pipe.vae_temporal_compression_ratio / 25,) + (pipe.vae_spatial_compression_ratio,) * 2

    identity = Recorder()
    assert torch.equal(family.predict(identity, latents, t, text, None), latents)
    assert torch.equal(identity.seen["hidden_states"], packed)
    assert tuple(identity.seen[k] for k in ("num_frames", "height", "width")) == dims
    assert identity.seen["rope_interpolation_scale"] == pytest.approx(rope)

    scale = torch.arange(1.0, packed.shape[-1] + 1)  # tells the features apart
    out = family.predict(Recorder(scale), latents, t, text, None)
    assert torch.equal(out, LTXPipeline._unpack_latents(packed * scale, *dims, p, pt))
