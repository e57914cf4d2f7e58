"""EMA: the update rule, its warmup, buffers, state_dict round trip, never trained."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from train.models.ema import EMA


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))


def test_update_is_an_exponential_moving_average():
    model = net()
    ema = EMA(model, decay=0.9, warmup=False)
    before = [p.clone() for p in ema.shadow.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)
    for b, e, p in zip(before, ema.shadow.parameters(), model.parameters(), strict=True):
        assert torch.allclose(e, 0.9 * b + 0.1 * p)
    assert int(ema.num_updates) == 1


def test_warmup_follows_the_model_early_then_reaches_decay():
    ema = EMA(net(), decay=0.999)
    assert ema.current_decay() == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    ema.num_updates.fill_(100_000)
    assert ema.current_decay() == 0.999


def test_buffers_are_copied_and_shadow_has_no_grad():
    model = net()
    model.train()
    model(torch.randn(8, 4))  # moves the BatchNorm running stats
    ema = EMA(net(), decay=0.5)
    ema.update(model)
    assert torch.equal(ema.shadow[1].running_mean, model[1].running_mean)
    assert all(not p.requires_grad for p in ema.parameters())
    ema.train()
    assert not ema.shadow.training


def test_state_dict_round_trip():
    model = net()
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        model[0].weight.mul_(3)
    ema.update(model)
    restored = EMA(net(), decay=0.5)
    restored.load_state_dict(ema.state_dict())
    assert torch.equal(restored.shadow[0].weight, ema.shadow[0].weight)
    assert int(restored.num_updates) == 1
    x = torch.randn(3, 4)
    assert torch.equal(restored(x), ema(x))


def test_bad_decay_names_the_flag():
    with pytest.raises(ValueError, match="--model.ema_decay"):
        EMA(net(), decay=1.0)
