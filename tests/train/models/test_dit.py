"""The denoiser: shapes for any frame count/size, conditioning paths, init, config checks,
the hourglass."""

from __future__ import annotations

import math

import pytest
import torch

from train.models.attention import Rope3D, apply_rope
from train.models.dit import DiT, DiTConfig, TokenMerge

TEXT_DIM = 16


def tiny(**kw) -> DiTConfig:
    base = dict(width=32, depth=2, heads=2, text_dim=TEXT_DIM, patch_t=2, patch_s=4)
    return DiTConfig(**{**base, **kw})


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """adaLN-Zero makes a fresh model output exactly 0; perturb it to see real paths."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model


def inputs(shape, seed=0, length=5):
    g = torch.Generator().manual_seed(seed)
    b = shape[0]
    x = torch.randn(shape, generator=g)
    t = torch.rand(b, generator=g)
    states = torch.randn(b, length, TEXT_DIM, generator=g)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[0, 2:] = False
    micro = {"fps": torch.full((b,), 8.0), "motion_score": torch.rand(b, generator=g)}
    return x, t, states, mask, micro


@pytest.mark.parametrize(
    "attention, pos_embed",
    [("factorized", "rope"), ("factorized", "learned"), ("full", "rope"), ("full", "rope+sincos")],
)
@pytest.mark.parametrize(
    "shape", [(1, 3, 8, 32, 32), (1, 3, 5, 20, 36), (2, 3, 1, 8, 8), (1, 3, 16, 16, 24)]
)
def test_output_shape_matches_input_for_any_frames_and_size(attention, pos_embed, shape):
    model = randomize(DiT(tiny(attention=attention, pos_embed=pos_embed)))
    out = model(*inputs(shape))
    assert out.shape == shape
    assert torch.isfinite(out).all()


def stretch(table: torch.Tensor, n: int) -> torch.Tensor:
    """`table` [m, D] linearly resampled to n rows, first and last rows kept, by hand."""
    m = table.shape[0]
    rows = []
    for i in range(n):
        s = i * (m - 1) / (n - 1)
        lo = min(int(s), m - 2)
        rows.append(table[lo] + (s - lo) * (table[lo + 1] - table[lo]))
    return torch.stack(rows)


def test_learned_positions_interpolate_past_their_table():
    model = randomize(DiT(tiny(pos_embed="learned", max_grid=(2, 3, 8))))
    shape = (1, 3, 8, 32, 32)  # grid 4 x 8 x 8: t and h past their tables of 2 and 3, w fits
    added = []
    model.pos.register_forward_hook(lambda module, args, out: added.append(out))
    assert model(*inputs(shape)).shape == shape and len(added) == 1
    t, h, w = (table.detach() for table in model.pos.tables)
    want = stretch(t, 4)[:, None, None] + stretch(h, 8)[None, :, None] + w[None, None]
    torch.testing.assert_close(added[0].detach(), want)
    # Within the tables, the rows themselves.
    small = model.pos((2, 3, 5)).detach()
    torch.testing.assert_close(small, t[:, None, None] + h[None, :, None] + w[None, None, :5])


def test_sincos_positions_tell_every_token_apart_and_add_no_parameters():
    plain, absolute = DiT(tiny(pos_embed="rope")), DiT(tiny(pos_embed="rope+sincos"))
    assert plain.state_dict().keys() == absolute.state_dict().keys()  # checkpoints unchanged
    table = absolute.sincos((3, 5, 7), torch.device("cpu"))
    assert table.shape == (3, 5, 7, 32)
    rows = table.reshape(-1, 32)
    assert torch.cdist(rows, rows).add(torch.eye(len(rows)) * 1e3).min() > 0.1
    # Each axis owns its share of the width: moving along w changes only w's columns.
    dt, dh, _ = absolute.sincos.dims
    torch.testing.assert_close(table[:, :, 0, : dt + dh], table[:, :, 6, : dt + dh])
    assert not torch.allclose(table[:, :, 0, dt + dh :], table[:, :, 6, dt + dh :])
    # A larger grid extends the same table (sampling at another size sees the same origin).
    torch.testing.assert_close(absolute.sincos((4, 6, 9), torch.device("cpu"))[:3, :5, :7], table)


def test_sincos_positions_break_translation_symmetry():
    """With RoPE alone, a token cannot tell where it is; with absolute positions it can:
    an input that is the same everywhere gives the same output everywhere only without them."""
    shape = (1, 3, 4, 16, 16)
    _, t, states, mask, micro = inputs(shape)
    flat = torch.ones(shape) * 0.3
    for pos_embed, uniform in (("rope", True), ("rope+sincos", False)):
        model = randomize(DiT(tiny(pos_embed=pos_embed, attention="full", patch_s=4)))
        out = model(flat, t, states, mask, micro)
        patches = out.unfold(3, 4, 4).unfold(4, 4, 4)  # [B, C, T, 4, 4, ps, ps]
        same = torch.allclose(patches, patches[:, :, :, :1, :1].expand_as(patches), atol=1e-5)
        assert same == uniform, pos_embed


def test_fresh_model_outputs_zero_adaln_zero():
    model = DiT(tiny())
    assert torch.equal(model(*inputs((2, 3, 4, 16, 16))), torch.zeros(2, 3, 4, 16, 16))


def test_nan_micro_condition_is_the_learned_null():
    model = randomize(DiT(tiny())).eval()
    x, t, s, m, micro = inputs((2, 3, 4, 16, 16))
    missing = {k: v for k, v in micro.items() if k != "fps"}
    as_nan = {**micro, "fps": torch.full((2,), math.nan)}
    assert torch.allclose(model(x, t, s, m, missing), model(x, t, s, m, as_nan))
    assert not torch.allclose(model(x, t, s, m, micro), model(x, t, s, m, as_nan))


def test_each_conditioning_input_changes_the_output():
    model = randomize(DiT(tiny())).eval()
    x, t, s, m, micro = inputs((2, 3, 4, 16, 16))
    base = model(x, t, s, m, micro)
    assert not torch.allclose(base, model(x, t * 0.5, s, m, micro))
    assert not torch.allclose(base, model(x, t, s + 1, m, micro))
    assert not torch.allclose(base, model(x, t, s, torch.zeros_like(m), micro))


def test_masked_text_tokens_are_ignored():
    model = randomize(DiT(tiny())).eval()
    x, t, s, m, micro = inputs((2, 3, 4, 16, 16))
    s2 = s.clone()
    s2[0, 2:] = 100.0  # row 0 masks tokens 2+
    assert torch.allclose(model(x, t, s, m, micro)[0], model(x, t, s2, m, micro)[0], atol=1e-5)


def test_fully_masked_caption_is_finite():
    # The CFG null path: no valid text token at all; the null token keeps it defined.
    model = randomize(DiT(tiny())).eval()
    x, t, s, m, micro = inputs((2, 3, 4, 16, 16))
    assert torch.isfinite(model(x, t, s, torch.zeros_like(m), micro)).all()


def test_factorized_attention_mixes_frames_through_time_attention():
    # One frame per patch, so only temporal attention can carry frame 0 to the others.
    model = randomize(DiT(tiny(patch_t=1))).eval()
    x, t, s, m, micro = inputs((1, 3, 4, 8, 8))
    x2 = x.clone()
    x2[:, :, 0] += 1.0
    diff = (model(x, t, s, m, micro) - model(x2, t, s, m, micro)).abs().amax(dim=(0, 1, 3, 4))
    assert (diff[1:] > 0).all()


def test_drop_micro_uses_its_own_probability_per_name():
    cfg = tiny(micro_dropout={"fps": 1.0, "motion_score": 0.0})
    model = DiT(cfg)
    micro = {"fps": torch.ones(64), "motion_score": torch.ones(64)}
    out = model.drop_micro(micro, torch.Generator().manual_seed(0))
    assert torch.isnan(out["fps"]).all()
    assert not torch.isnan(out["motion_score"]).any()


def test_grad_checkpointing_gives_the_same_gradients():
    grads = []
    for flag in (False, True):
        torch.manual_seed(0)
        model = randomize(DiT(tiny(grad_checkpointing=flag)))
        model(*inputs((1, 3, 4, 16, 16))).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_rope_is_relative():
    rope = Rope3D(head_dim=12, theta=100.0)
    cos, sin = rope((4, 3, 3))
    g = torch.Generator().manual_seed(0)
    q = torch.randn(12, generator=g).expand(1, 4, 3, 3, 1, 12)
    k = torch.randn(12, generator=g).expand(1, 4, 3, 3, 1, 12)
    qr, kr = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    # Same offset (1 frame, 1 row) from two different origins: same dot product.
    a = (qr[0, 1, 1, 1, 0] * kr[0, 0, 0, 1, 0]).sum()
    b = (qr[0, 3, 2, 0, 0] * kr[0, 2, 1, 0, 0]).sum()
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize(
    "kw, flag",
    [
        (dict(width=30, heads=4), "width"),
        (dict(micro_dropout={"nope": 0.1}), "micro_dropout"),
        (dict(micro_dropout=1.5), "micro_dropout"),
        (dict(micro_conditions=("fps", "fps")), "micro_conditions"),
        (dict(depth=0), "depth"),
    ],
)
def test_bad_config_names_the_flag(kw, flag):
    with pytest.raises(ValueError, match=f"--model.dit.{flag}"):
        tiny(**kw)


# The hourglass (`coarse_blocks`): merged middle blocks, any grid, identity at start.


@pytest.mark.parametrize(
    "depth, coarse, merge",
    [(3, 1, (1, 2, 2)), (2, 2, (1, 2, 2)), (4, 2, (2, 2, 2)), (3, 1, (2, 3, 1))],
)
@pytest.mark.parametrize("shape", [(1, 3, 8, 32, 32), (1, 3, 5, 20, 36), (2, 3, 1, 4, 4)])
def test_output_shape_matches_input_for_odd_and_even_grids(depth, coarse, merge, shape):
    cfg = tiny(depth=depth, coarse_blocks=coarse, coarse_merge=merge, pos_embed="rope+sincos")
    model = randomize(DiT(cfg))
    out = model(*inputs(shape))
    assert out.shape == shape
    assert torch.isfinite(out).all()


def test_middle_blocks_see_a_quarter_of_the_tokens():
    model = DiT(tiny(depth=4, coarse_blocks=2))
    seen = []
    for block in model.blocks:
        block.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape[1:4])))
    model(*inputs((1, 3, 8, 40, 24)))  # 4 x 10 x 6 tokens
    assert seen == [(4, 10, 6), (4, 5, 3), (4, 5, 3), (4, 10, 6)]
    seen.clear()
    model = DiT(tiny(depth=3, coarse_blocks=1, coarse_merge=(2, 2, 2)))
    for block in model.blocks:
        block.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape[1:4])))
    model(*inputs((1, 3, 6, 40, 24)))  # 3 x 10 x 6 tokens; time pads to 4
    assert seen == [(3, 10, 6), (2, 5, 3), (3, 10, 6)]


@pytest.mark.parametrize(
    "patch_t, merge",
    [(2, (1, 2, 2)), (1, (2, 2, 2))],  # make demo's: one-frame patches
)
def test_all_blocks_coarse_keeps_the_fine_patches_through_the_skip(patch_t, merge):
    """`coarse_blocks == depth` (make demo's model): every block sees the merged grid, and
    the fine patch tokens still reach the output, so it keeps the input's full resolution.
    With one-frame patches merged 2x2x2 the blocks see as many tokens as with two-frame ones."""
    model = randomize(DiT(tiny(depth=2, coarse_blocks=2, patch_t=patch_t, coarse_merge=merge)))
    seen = []
    for block in model.blocks:
        block.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape[1:4])))
    x, *rest = inputs((1, 3, 8, 40, 24))  # 8 / patch_t x 10 x 6 fine tokens
    x.requires_grad_(True)
    out = model(x, *rest)
    assert seen == [(4, 5, 3), (4, 5, 3)]  # the same coarse grid for both patch depths
    assert out.shape == x.shape
    # One output patch depends on its own input patch beyond what the merged token carries:
    # with the coarse path cut, the gradient still reaches that patch (the skip), and only it.
    model.hourglass.up.weight.data.zero_()
    model.hourglass.up.bias.data.zero_()
    model(x, *rest)[0, :, 0:patch_t, 0:4, 0:4].sum().backward()
    touched = x.grad[0].abs().sum(0) > 0  # [T, H, W]
    assert touched[0:patch_t, 0:4, 0:4].all()
    assert touched.sum() == patch_t * 4 * 4


def test_fresh_hourglass_is_the_identity_so_training_starts_smooth():
    merge = TokenMerge(8)
    fine = torch.randn(2, 3, 5, 7, 8)
    assert torch.equal(merge.unmerge(merge.merge(fine), fine), fine)
    assert torch.equal(
        DiT(tiny(coarse_blocks=1))(*inputs((1, 3, 4, 16, 16))), torch.zeros(1, 3, 4, 16, 16)
    )


@pytest.mark.parametrize(
    "factors, coarse",
    [((1, 2, 2), [0, 1, 1, 1]), ((2, 2, 2), [0, 0, 1, 1]), ((1, 3, 1), [0, 1, 0, 3])],
)
def test_a_coarse_token_merges_exactly_its_neighbourhood(factors, coarse):
    merge = randomize(TokenMerge(8, factors))
    fine = torch.randn(1, 2, 6, 6, 8)
    poked = fine.clone()
    poked[0, 1, 2, 3] += 1.0  # fine (t 1, row 2, column 3)
    changed = (merge.merge(poked) - merge.merge(fine)).abs().sum(-1) > 0
    assert changed.nonzero().tolist() == [coarse]
    # ...and spreads back over exactly the fine tokens it merged
    fine_changed = merge.unmerge(merge.merge(poked), fine) - merge.unmerge(merge.merge(fine), fine)
    spread = fine_changed.abs().sum(-1) > 0
    assert spread.sum() == math.prod(factors)
    assert spread[0, 1, 2, 3]


def test_the_coarse_path_is_trained():
    model = randomize(DiT(tiny(depth=3, coarse_blocks=1)))
    model(*inputs((1, 3, 4, 16, 16))).square().mean().backward()
    assert model.hourglass.down.weight.grad.abs().sum() > 0
    assert model.hourglass.up.weight.grad.abs().sum() > 0


def test_grad_checkpointing_gives_the_same_gradients_with_the_hourglass():
    grads = []
    for flag in (False, True):
        torch.manual_seed(0)
        model = randomize(DiT(tiny(depth=3, coarse_blocks=1, grad_checkpointing=flag)))
        model(*inputs((1, 3, 4, 16, 16))).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


@pytest.mark.parametrize("coarse", [-1, 3])
def test_coarse_blocks_outside_the_depth_names_the_flag(coarse):
    with pytest.raises(ValueError, match="--model.dit.coarse_blocks"):
        tiny(depth=2, coarse_blocks=coarse)


@pytest.mark.parametrize("merge", [(1, 2), (0, 2, 2)])
def test_bad_coarse_merge_names_the_flag(merge):
    with pytest.raises(ValueError, match="--model.dit.coarse_merge"):
        tiny(coarse_blocks=1, coarse_merge=merge)
