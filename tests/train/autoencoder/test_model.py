"""The causal video autoencoder and `load_autoencoder` (ours and diffusers' wrapped)."""

from __future__ import annotations

import pytest
import torch

from train.autoencoder.io import load_autoencoder
from train.autoencoder.model import (
    AutoencoderConfig,
    VideoAutoencoder,
    kl_divergence,
    sample_posterior,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(base_width=8, latent_channels=4, temporal_compression=4, spatial_compression=8)


def small(**overrides) -> VideoAutoencoder:
    torch.manual_seed(0)
    return VideoAutoencoder(AutoencoderConfig(**{**SMALL, **overrides})).eval()


@pytest.mark.parametrize(
    ("ft", "fs", "frames", "size"),
    [(4, 8, 1, (32, 32)), (4, 8, 9, (32, 48)), (2, 4, 5, (16, 16)), (1, 4, 3, (8, 24))],
)
def test_shapes_for_one_and_many_frames(ft, fs, frames, size):
    model = small(temporal_compression=ft, spatial_compression=fs)
    video = torch.rand(2, 3, frames, *size) * 2 - 1
    with torch.no_grad():
        mean, logvar = model.encode(video)
        out = model.decode(mean)
    expect = (4, 1 + (frames - 1) // ft, size[0] // fs, size[1] // fs)
    assert tuple(mean.shape) == tuple(logvar.shape) == (2, *expect)
    assert model.latent_shape(frames, *size) == expect
    assert out.shape == video.shape
    assert (model.latent_channels, model.temporal_compression, model.spatial_compression) == (
        4,
        ft,
        fs,
    )


def test_bad_frame_counts_and_sizes_are_refused():
    model = small()
    with pytest.raises(ValueError, match="1 \\+ k\\*4"):
        model.encode(torch.zeros(1, 3, 8, 32, 32))
    with pytest.raises(ValueError, match="multiples of 8"):
        model.encode(torch.zeros(1, 3, 5, 30, 32))
    with pytest.raises(ValueError, match="latents"):
        model.decode(torch.zeros(1, 3, 2, 4, 4))


@pytest.mark.parametrize(
    ("field", "value"),
    [("temporal_compression", 3), ("spatial_compression", 6), ("channel_mult", (1, 2))],
)
def test_bad_config_names_the_flag(field, value):
    with pytest.raises(ValueError, match=f"--model.autoencoder.{field}"):
        AutoencoderConfig(**{**SMALL, field: value})


def test_encoder_and_decoder_are_causal():
    model = small(spatial_compression=4)
    video = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    later = video.clone()
    later[:, :, 5:] = torch.rand_like(later[:, :, 5:])  # frames 5..8 = latent frame 2
    with torch.no_grad():
        mean, _ = model.encode(video)
        mean2, _ = model.encode(later)
        image, _ = model.encode(video[:, :, :1])
        out, out2 = model.decode(mean), model.decode(mean2)
    assert torch.equal(mean[:, :, :2], mean2[:, :, :2])  # latents 0, 1 never see frames 5+
    assert not torch.allclose(mean[:, :, 2], mean2[:, :, 2])
    torch.testing.assert_close(image, mean[:, :, :1])  # an image is a 1-frame video
    assert torch.equal(out[:, :, :5], out2[:, :, :5])  # decoded frames 0..4 need latents 0, 1
    assert not torch.allclose(out[:, :, 5:], out2[:, :, 5:])


def test_grad_checkpointing_gives_the_same_gradients():
    video = torch.rand(1, 3, 5, 8, 8) * 2 - 1
    grads = []
    for ckpt in (False, True):
        model = small(spatial_compression=2, grad_checkpointing=ckpt).train()
        out, _, _ = model(video, torch.Generator().manual_seed(0))
        out.square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1])


def test_posterior_sampling_and_kl():
    mean, logvar = torch.zeros(2, 4, 1, 2, 2), torch.zeros(2, 4, 1, 2, 2)
    assert kl_divergence(mean, logvar).item() == pytest.approx(0.0)
    assert kl_divergence(mean + 2, logvar).item() == pytest.approx(2.0)  # mean^2 / 2
    assert kl_divergence(mean, logvar - 1).item() == pytest.approx(0.5 * (torch.e**-1 - 1 + 1))
    a = sample_posterior(mean, logvar, torch.Generator().manual_seed(1))
    b = sample_posterior(mean, logvar, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.std() > 0.3
    sharp = sample_posterior(mean + 1, torch.full_like(logvar, -30.0))
    torch.testing.assert_close(sharp, mean + 1)


def test_fingerprint_follows_config_weights_and_scale():
    a, b = small(), small()
    assert a.fingerprint() == b.fingerprint() and len(a.fingerprint()) == 16
    assert small(grad_checkpointing=True).fingerprint() == a.fingerprint()
    assert small(latent_channels=8).fingerprint() != a.fingerprint()
    with torch.no_grad():
        b.decoder.conv_out.conv.bias.add_(1e-3)
    assert b.fingerprint() != a.fingerprint()
    a2 = small()
    a2.scaling_factor = 0.5
    assert a2.scaling_factor == 0.5 and a2.fingerprint() != a.fingerprint()


def test_load_autoencoder_refuses_what_is_not_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_autoencoder(str(tmp_path / "none.ckpt"))
    bad = tmp_path / "dit.ckpt"
    torch.save({"hyper_parameters": {"dit": {}}, "state_dict": {}}, bad)
    with pytest.raises(ValueError, match="not an autoencoder checkpoint"):
        load_autoencoder(str(bad))
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_autoencoder(f"diffusers:{tmp_path}")


# ---------------------------------------------------------------- diffusers


def _tiny_diffusers(kind: str):
    import diffusers

    torch.manual_seed(0)
    if kind == "cogvideox":
        return diffusers.AutoencoderKLCogVideoX(
            down_block_types=("CogVideoXDownBlock3D",) * 3,
            up_block_types=("CogVideoXUpBlock3D",) * 3,
            block_out_channels=(8, 16, 16),
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=4,
            temporal_compression_ratio=4,
        )
    if kind == "wan":
        return diffusers.AutoencoderKLWan(
            base_dim=8,
            z_dim=4,
            dim_mult=[1, 2, 2],
            num_res_blocks=1,
            temperal_downsample=[True, True],
            latents_mean=[0.1, 0.2, 0.3, 0.4],
            latents_std=[1.0, 2.0, 3.0, 4.0],
        )
    return diffusers.AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=4,
        scaling_factor=0.3,
        shift_factor=0.1,
    )


@pytest.mark.parametrize(
    ("kind", "ft", "fs", "scale"),
    [("cogvideox", 4, 4, 1.15258426), ("wan", 4, 4, 1.0), ("kl", 1, 2, 0.3)],
)
def test_diffusers_autoencoder_wrapped(kind, ft, fs, scale, tmp_path):
    vae = _tiny_diffusers(kind).eval()
    vae.save_pretrained(tmp_path / kind)
    model = load_autoencoder(f"diffusers:{tmp_path / kind}")
    assert (model.temporal_compression, model.spatial_compression) == (ft, fs)
    assert model.scaling_factor == pytest.approx(scale)
    video = torch.rand(2, 3, 9, 16, 16) * 2 - 1
    with torch.no_grad():
        mean, logvar = model.encode(video)
        out = model.decode(mean)
        raw = vae.encode(video if kind != "kl" else video[:, :, 0]).latent_dist.mean
    assert tuple(mean.shape) == (2, *model.latent_shape(9, 16, 16)) == logvar.shape
    assert out.shape == video.shape
    if kind == "wan":  # its per-channel latents_mean/std are folded into the wrapper
        std = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1, 1, 1)
        raw = (raw - torch.tensor([0.1, 0.2, 0.3, 0.4]).reshape(1, 4, 1, 1, 1)) / std
    torch.testing.assert_close(mean[:, :, 0] if kind == "kl" else mean, raw)
    assert model.fingerprint() == load_autoencoder(f"diffusers:{tmp_path / kind}").fingerprint()
    assert not any(p.requires_grad for p in model.parameters())


def test_diffusers_class_must_be_supported(tmp_path):
    (tmp_path / "config.json").write_text('{"_class_name": "UNet2DModel"}')
    with pytest.raises(ValueError, match="UNet2DModel"):
        load_autoencoder(f"diffusers:{tmp_path}")
