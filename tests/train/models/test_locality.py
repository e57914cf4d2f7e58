"""The locality bias: per-head slopes, the distance bias on each attention axis, its effect."""

from __future__ import annotations

import math

import pytest
import torch

from train.models.attention import SelfAttention, distance_bias, locality_slopes
from train.models.dit import DiTConfig


def test_slopes_halve_from_head_to_head_and_leave_one_head_global():
    assert locality_slopes(4, 1.0).tolist() == [1.0, 0.5, 0.25, 0.0]
    assert locality_slopes(1, 2.0).tolist() == [0.0]  # a single head stays global
    assert locality_slopes(3, 0.0).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("axis, length", [("all", 2 * 3 * 4), ("space", 3 * 4), ("time", 2)])
def test_distance_bias_is_minus_slope_times_grid_distance(axis, length):
    slopes = locality_slopes(3, 2.0)
    bias = distance_bias((2, 3, 4), axis, slopes)
    assert bias.shape == (1, 3, length, length)
    torch.testing.assert_close(bias, bias.transpose(-1, -2))
    assert bias.diagonal(dim1=-2, dim2=-1).abs().max() == 0
    assert bias[0, 2].abs().max() == 0  # the global head
    if axis == "all":  # token (0,0,0) to (1,2,3): sqrt(1 + 4 + 9) tokens apart
        assert bias[0, 0, 0, -1].item() == pytest.approx(-2.0 * math.sqrt(14))
    if axis == "space":  # (0,0) to (0,3) in one frame
        assert bias[0, 1, 0, 3].item() == pytest.approx(-1.0 * 3)


def mean_mixer(width: int, heads: int, locality: float) -> SelfAttention:
    """q = k = 0 (uniform logits), v and the output projection the identity: without a bias
    every token returns the mean of all tokens."""
    attn = SelfAttention(width, heads, "all", locality)
    with torch.no_grad():
        attn.qkv.weight.zero_()
        attn.qkv.bias.zero_()
        attn.qkv.weight[2 * width :] = torch.eye(width)
        attn.proj.weight.copy_(torch.eye(width))
        attn.proj.bias.zero_()
    return attn


def test_local_heads_pool_nearby_tokens_and_the_global_head_all_of_them():
    width, heads = 8, 2
    x = torch.randn(1, 2, 6, 6, width, generator=torch.Generator().manual_seed(0))
    uniform = mean_mixer(width, heads, 0.0)(x, None)
    local = mean_mixer(width, heads, 2.0)(x, None)
    head = width // heads
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(uniform, mean.expand_as(x))
    # Head 1 (global) still returns the mean; head 0 returns something nearer each token.
    torch.testing.assert_close(local[..., head:], mean.expand_as(x)[..., head:])
    near = (local[..., :head] - x[..., :head]).pow(2).mean()
    far = (uniform[..., :head] - x[..., :head]).pow(2).mean()
    assert near < 0.5 * far


def test_negative_locality_fails_naming_the_flag():
    with pytest.raises(ValueError, match="--model.dit.locality"):
        DiTConfig(text_dim=8, locality=-1.0)


@pytest.mark.parametrize("attention", ["factorized", "full"])
def test_dit_with_locality_runs_on_any_grid(attention):
    from train.models.dit import DiT

    cfg = DiTConfig(width=32, depth=2, heads=2, text_dim=8, attention=attention, locality=1.0,
                    pos_embed="rope+sincos", micro_conditions=())  # fmt: skip
    model = DiT(cfg)
    for shape in [(1, 3, 5, 20, 36), (2, 3, 1, 8, 8)]:
        x = torch.randn(shape)
        out = model(x, torch.rand(shape[0]), torch.randn(shape[0], 3, 8),
                    torch.ones(shape[0], 3, dtype=torch.bool))  # fmt: skip
        assert out.shape == shape
