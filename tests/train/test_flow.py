"""Rectified flow objective and sampler, tested without Lightning or the DiT."""

from __future__ import annotations

import pytest
import torch

from train.flow import FlowConfig, RectifiedFlow, guided, initial_noise, sample, shift_time


def test_interpolation_endpoints_and_target():
    flow = RectifiedFlow()
    x0, noise = torch.randn(2, 3, 4, 8, 8), torch.randn(2, 3, 4, 8, 8)
    assert torch.equal(flow.interpolate(x0, noise, torch.zeros(2)), x0)
    assert torch.equal(flow.interpolate(x0, noise, torch.ones(2)), noise)
    mid = flow.interpolate(x0, noise, torch.tensor([0.25, 0.75]))
    assert torch.allclose(mid[1], 0.25 * x0[1] + 0.75 * noise[1], atol=1e-6)
    assert torch.equal(flow.target(x0, noise), noise - x0)


def test_loss_on_a_batch_is_zero_for_the_true_velocity_and_weighted():
    flow = RectifiedFlow()
    x0, noise = torch.randn(4, 3, 2, 4, 4), torch.randn(4, 3, 2, 4, 4)
    loss, per = flow.loss(noise - x0, x0, noise)
    assert loss.item() == 0 and per.shape == (4,)
    pred = torch.zeros_like(x0)
    pred[0] = noise[0] - x0[0]  # sample 0 perfect, the others not
    unweighted, per = flow.loss(pred, x0, noise)
    assert torch.isclose(unweighted, per.mean())
    only_first, _ = flow.loss(pred, x0, noise, weight=torch.tensor([1.0, 0, 0, 0]))
    assert only_first.item() == 0
    assert flow.loss(pred, x0, noise, weight=torch.full((4,), 3.0))[0].item() == pytest.approx(
        unweighted.item()
    )


def test_timestep_shift_grows_with_tokens_and_keeps_endpoints():
    flow = RectifiedFlow(FlowConfig(base_tokens=256, base_shift=1.0))
    assert flow.shift_for(256) == 1.0
    assert flow.shift_for(1024) == 2.0
    t = torch.linspace(0, 1, 11)
    shifted = shift_time(t, 3.0)
    assert shifted[0] == 0 and shifted[-1] == 1 and (shifted >= t).all()
    g = torch.Generator().manual_seed(0)
    small = flow.sample_t(4000, 256, g).mean()
    large = flow.sample_t(4000, 4096, torch.Generator().manual_seed(0)).mean()
    assert 0.45 < small < 0.55 and large > small + 0.2  # logit-normal centred at 0.5
    assert RectifiedFlow(FlowConfig(shift=3.0)).shift_for(10) == 3.0
    assert RectifiedFlow(FlowConfig(base_shift=3.0)).shift_for(1024) == 6.0


def test_sampling_timesteps_run_from_one_to_zero():
    ts = RectifiedFlow().timesteps(10, num_tokens=1024)
    assert ts.shape == (11,) and ts[0] == 1 and ts[-1] == 0 and (ts.diff() < 0).all()


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_sampler_integrates_the_exact_flow_to_its_data_point(method):
    # For data concentrated at c the true velocity is (x - c) / t: straight lines,
    # which Euler and Heun integrate exactly from any noise.
    c = torch.randn(2, 3, 2, 4, 4)

    def velocity(x, t):
        return (x - c) / t.view(-1, 1, 1, 1, 1)

    ts = RectifiedFlow().timesteps(7, num_tokens=512)
    out = sample(velocity, initial_noise(tuple(c.shape), seed=0), ts, method)
    assert torch.allclose(out, c, atol=1e-5)


def _toy_model(x, t, text_states, text_mask, micro=None):
    """A deterministic 'model' whose output depends on x, t and the condition."""
    on = text_mask.any(dim=1).float().view(-1, 1, 1, 1, 1)
    return torch.tanh(x) * t.view(-1, 1, 1, 1, 1) + on * text_states.mean(dim=(1, 2)).view(
        -1, 1, 1, 1, 1
    )


def _conds(b=2):
    states = torch.randn(b, 3, 4, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(b, 3, dtype=torch.bool)
    return {"text_states": states, "text_mask": mask}, {
        "text_states": states,
        "text_mask": torch.zeros_like(mask),
    }


def test_sampler_is_deterministic_with_a_seed():
    cond, uncond = _conds()
    ts = RectifiedFlow().timesteps(5, 64)
    v = guided(_toy_model, cond, uncond, 3.0)
    a = sample(v, initial_noise((2, 3, 2, 4, 4), seed=7), ts, "heun")
    b = sample(v, initial_noise((2, 3, 2, 4, 4), seed=7), ts, "heun")
    c = sample(v, initial_noise((2, 3, 2, 4, 4), seed=8), ts, "heun")
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_noise_of_a_sample_does_not_depend_on_the_batch():
    assert torch.equal(initial_noise((3, 2, 4), seed=5)[1], initial_noise((1, 2, 4), seed=6)[0])


def test_cfg_null_path_and_guidance_formula():
    cond, uncond = _conds()
    x, t = torch.randn(2, 3, 2, 4, 4), torch.full((2,), 0.5)
    v_c, v_u = _toy_model(x, t, **cond), _toy_model(x, t, **uncond)
    assert not torch.allclose(v_c, v_u)
    assert torch.allclose(guided(_toy_model, cond, uncond, 1.0)(x, t), v_c)
    assert torch.allclose(guided(_toy_model, cond, uncond, 0.0)(x, t), v_u)
    assert torch.allclose(guided(_toy_model, cond, uncond, 4.0)(x, t), v_u + 4 * (v_c - v_u))


def test_cfg_runs_unequal_conditions_separately():
    cond, _ = _conds()
    uncond = {"text_states": torch.zeros(2, 1, 4), "text_mask": torch.zeros(2, 1, dtype=torch.bool)}
    x, t = torch.randn(2, 3, 2, 4, 4), torch.full((2,), 0.5)
    expected = _toy_model(x, t, **uncond) + 2 * (
        _toy_model(x, t, **cond) - _toy_model(x, t, **uncond)
    )
    assert torch.allclose(guided(_toy_model, cond, uncond, 2.0)(x, t), expected)


def test_bad_flow_config_names_the_flag():
    with pytest.raises(ValueError, match="--model.flow.logit_std"):
        FlowConfig(logit_std=0)


def test_x_prediction_is_turned_into_the_true_velocity_and_samples_its_data_point():
    flow = RectifiedFlow(FlowConfig(prediction="x", t_min=0.05))
    x0, noise = torch.randn(3, 3, 2, 4, 4), torch.randn(3, 3, 2, 4, 4)
    t = torch.tensor([0.9, 0.3, 0.06])
    x_t = flow.interpolate(x0, noise, t)
    # A network that outputs the clean sample has the flow's own velocity, so zero loss.
    assert torch.allclose(flow.velocity(x0, x_t, t), noise - x0, atol=1e-5)
    assert flow.loss(flow.velocity(x0, x_t, t), x0, noise)[0].item() < 1e-9
    # Below t_min the division is clamped, not blown up.
    tiny = flow.velocity(torch.zeros_like(x0), x_t, torch.full((3,), 1e-6))
    assert torch.allclose(tiny, x_t / 0.05)
    # The sampler integrates an x-predicting oracle (data at c) to c, through CFG.
    c = torch.randn(2, 3, 2, 4, 4)

    def clean(x, t, text_states, text_mask, micro=None):  # cond and uncond share one batch
        return c.repeat(x.shape[0] // c.shape[0], 1, 1, 1, 1)

    oracle = flow.as_velocity(clean)
    cond, uncond = _conds()
    ts = flow.timesteps(20, num_tokens=64)
    out = sample(guided(oracle, cond, uncond, 3.0), initial_noise(tuple(c.shape), seed=0), ts)
    assert torch.allclose(out, c, atol=1e-4)
    assert RectifiedFlow().as_velocity(_toy_model) is _toy_model  # v: the output as it is


def test_bad_prediction_names_the_flag():
    with pytest.raises(ValueError, match="--model.flow.prediction"):
        FlowConfig(prediction="eps")
    with pytest.raises(ValueError, match="--model.flow.t_min"):
        FlowConfig(prediction="x", t_min=0)
