"""`--model.optimizer`: which parameters Muon takes, its update, and the pair as one optimizer."""

from __future__ import annotations

import pytest
import torch

from train.models.dit import DiT, DiTConfig
from train.optim import Muon, MuonAdamW, build_optimizer, orthogonalize, split_params
from train.schedule import warmup_cosine


def tiny_dit() -> DiT:
    torch.manual_seed(0)
    cfg = DiTConfig(width=32, depth=4, heads=2, text_dim=16, coarse_blocks=2)
    return DiT(cfg)


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest():
    dit = tiny_dit()
    named = dict(dit.named_parameters())
    matrices, groups = split_params(named.items(), 0.05, muon=True)
    name_of = {id(p): n for n, p in named.items()}
    muon = {name_of[id(p)] for p in matrices}
    decay = {name_of[id(p)] for p in groups[0]["params"]}
    no_decay = {name_of[id(p)] for p in groups[1]["params"]}
    # Every parameter exactly once.
    assert len(muon) + len(decay) + len(no_decay) == len(named)
    assert muon | decay | no_decay == set(named)
    assert "blocks.0.mlp.fc1.weight" in muon and "hourglass.down.weight" in muon
    assert all(named[n].dim() == 2 and n.startswith(("blocks.", "hourglass.")) for n in muon)
    # The input and output maps stay on AdamW, with decay; vectors and tables without.
    assert {"patch_embed.weight", "final.weight", "t_embed.mlp.0.weight"} <= decay
    assert {"blocks.0.mlp.fc1.bias", "text_null", "final.bias"} <= no_decay
    assert groups[0]["weight_decay"] == 0.05 and groups[1]["weight_decay"] == 0.0
    # Without Muon the matrices go back to AdamW's decayed group.
    none, plain = split_params(named.items(), 0.05, muon=False)
    assert none == [] and {name_of[id(p)] for p in plain[0]["params"]} == muon | decay


@pytest.mark.parametrize("shape", [(3, 48, 16), (2, 16, 40), (1, 24, 24)])
def test_orthogonalize_flattens_the_spectrum(shape):
    g = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    g[0] *= 100  # the scale of a matrix must not matter
    out = orthogonalize(g)
    assert out.shape == g.shape and out.dtype == g.dtype
    sv = torch.linalg.svdvals(out)
    # Quintic Newton-Schulz lands singular values near 1, not exactly on it.
    assert sv.min() > 0.5 and sv.max() < 1.5, sv
    assert torch.linalg.svdvals(g).max() / torch.linalg.svdvals(g).min() > 3


def test_muon_step_matches_its_definition():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(8, 20))
    start = w.detach().clone()
    opt = Muon([w], lr=0.1, weight_decay=0.5, momentum=0.9)
    grads = [torch.randn(8, 20) for _ in range(2)]
    buf = torch.zeros(8, 20)
    expect = start.clone()
    for g in grads:
        w.grad = g.clone()
        opt.step()
        buf = 0.9 * buf + 0.1 * g  # lerp toward the gradient
        nesterov = 0.1 * g + 0.9 * buf
        expect = expect * (1 - 0.1 * 0.5) - 0.1 * 0.2 * 20**0.5 * orthogonalize(nesterov[None])[0]
    assert torch.allclose(w.detach(), expect, atol=1e-5)


def test_muon_refuses_what_is_not_a_matrix():
    with pytest.raises(ValueError, match="2-D"):
        Muon([torch.nn.Parameter(torch.zeros(4))], lr=0.1)


def test_the_scheduler_and_checkpoints_see_one_optimizer():
    dit = tiny_dit()
    opt = build_optimizer("muon", dit.named_parameters(), 1e-3, 0.01, (0.9, 0.99))
    assert isinstance(opt, MuonAdamW)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, 4, 10, 0.1))
    x = torch.randn(2, 3, 4, 16, 16)
    states, mask = torch.randn(2, 5, 16), torch.ones(2, 5, dtype=torch.bool)

    def step() -> None:
        opt.zero_grad()
        dit(x, torch.tensor([0.3, 0.7]), states, mask).square().mean().backward()
        opt.step()
        sched.step()

    step()
    # The warm-up's lr reached both halves (they share the group dicts).
    assert opt.muon.param_groups[0]["lr"] == pytest.approx(2 / 4 * 1e-3)
    assert opt.adamw.param_groups[0]["lr"] == pytest.approx(2 / 4 * 1e-3)
    saved, saved_sched = opt.state_dict(), sched.state_dict()
    assert set(saved) == {"muon", "adamw"} and saved["muon"]["state"]
    weights = {k: v.clone() for k, v in dit.state_dict().items()}
    step()
    after = {k: v.clone() for k, v in dit.state_dict().items()}
    # Back to the saved point: a second step from the restored state is the same step.
    dit.load_state_dict(weights)
    opt.load_state_dict(saved)
    sched.load_state_dict(saved_sched)
    step()
    for k, v in dit.state_dict().items():
        assert torch.equal(v, after[k]), k
    with pytest.raises(ValueError, match="--model.optimizer"):
        opt.load_state_dict(saved["adamw"])


def test_unknown_optimizer_names_the_flag():
    with pytest.raises(ValueError, match="--model.optimizer"):
        build_optimizer("sgd", tiny_dit().named_parameters(), 1e-3, 0.0, (0.9, 0.99))
