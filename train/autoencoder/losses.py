"""Losses and metrics of autoencoder training that need no downloaded weights.

Videos are `[B, C, T, H, W]` in [-1, 1]. Metrics (`psnr`, `ssim`) are per clip,
computed on the [0, 1] scale so they read like the numbers papers report.
The adversarial part is a small 3D PatchGAN with hinge losses (VQGAN's recipe
without its perceptual term).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _frames(x: Tensor) -> Tensor:
    """`[B, C, T, H, W]` → `[B*T, C, H, W]`."""
    return x.transpose(1, 2).flatten(0, 1)


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB per clip `[B]`, on the [0, 1] scale."""
    mse = ((pred.float().clamp(-1, 1) - target.float()) / 2).pow(2).flatten(1).mean(1)
    return -10 * torch.log10(mse.clamp_min(1e-10))


def gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim_map(pred: Tensor, target: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """SSIM of every valid window position, `[B*T, C, H', W']` (Wang et al. 2004).

    Gaussian window (separable), constants K1 = 0.01, K2 = 0.03 on the [0, 1]
    scale. Frames smaller than the window use a window as large as the frame.
    """
    a, b = _frames((pred.float().clamp(-1, 1) + 1) / 2), _frames((target.float() + 1) / 2)
    size = min(window, a.shape[-1], a.shape[-2])
    size -= 1 - size % 2  # odd
    g = gaussian_window(size, sigma).to(a.device)
    c = a.shape[1]
    kx, ky = g.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1), g.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(F.conv2d(x, kx, groups=c), ky, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )


def ssim(pred: Tensor, target: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean SSIM per clip `[B]` (over its frames, channels and positions)."""
    values = ssim_map(pred, target, window, sigma)
    return values.reshape(pred.shape[0], -1).mean(1)


def gradient_difference(pred: Tensor, target: Tensor) -> Tensor:
    """L1 between the spatial finite differences: penalises blurred edges."""
    dx = lambda v: v[..., :, 1:] - v[..., :, :-1]  # noqa: E731
    dy = lambda v: v[..., 1:, :] - v[..., :-1, :]  # noqa: E731
    return (dx(pred) - dx(target)).abs().mean() + (dy(pred) - dy(target)).abs().mean()


def frame_difference(pred: Tensor, target: Tensor) -> Tensor:
    """L1 between consecutive-frame differences: penalises flicker and lost motion.

    Zero for single frames (nothing moves in an image).
    """
    if pred.shape[2] < 2:
        return pred.new_zeros(())
    dt = lambda v: v[:, :, 1:] - v[:, :, :-1]  # noqa: E731
    return (dt(pred) - dt(target)).abs().mean()


class PatchDiscriminator3d(nn.Module):
    """A 3D PatchGAN: a real/fake logit per space-time patch.

    Strides halve space only; time keeps its length (kernel 3, padded), so
    1-frame clips (images) work too.
    """

    def __init__(self, in_channels: int = 3, width: int = 32, layers: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        c_in, c = in_channels, width
        for i in range(layers):
            mods.append(nn.Conv3d(c_in, c, (3, 4, 4), (1, 2, 2), (1, 1, 1)))
            if i > 0:  # no norm on the first layer, as in pix2pix
                mods.append(nn.GroupNorm(min(32, c // 4) or 1, c))
            mods.append(nn.LeakyReLU(0.2))
            c_in, c = c, min(2 * c, 8 * width)
        mods.append(nn.Conv3d(c_in, 1, 3, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, video: Tensor) -> Tensor:
        return self.net(video)


def hinge_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    return 0.5 * (F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean())


def hinge_g_loss(fake_logits: Tensor) -> Tensor:
    return -fake_logits.mean()
