"""Loss terms. Images are N x 3 x H x W in [0, 1]; every term is a mean over the batch.

* rate: bits of all entropy stages (``out["bits"]``, stage -> (N,)) over pixels -> bpp;
* distortion: MSE on the [0, 255] scale (HiFiC's k_M convention) and the frozen perceptual
  metric, which sees the reconstruction clamped to [0, 1] with a straight-through gradient;
* adversarial: the vanilla GAN loss for the discriminator and the non-saturating
  ``L_G = -E[log D(x_tilde)]`` for the decoder, both written with softplus on logits
  (``-log sigmoid(t) = softplus(-t)``), which is the numerically stable form.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bpp_per_image(bits: dict[str, torch.Tensor], height: int, width: int) -> torch.Tensor:
    """(N,) estimated bits per pixel, summed over every stage."""
    if not bits:
        raise ValueError("the model reported no bits")
    return sum(bits.values()) / float(height * width)


def mse255(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(x_hat, x) * 255.0 ** 2


def clamp_st(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] forward; identity gradient backward."""
    return x + (x.clamp(0.0, 1.0) - x).detach()


def perceptual(metric, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return metric(clamp_st(x_hat), x).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[log D(x)] - E[log(1 - D(x_tilde))]."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating: -E[log D(x_tilde)]."""
    return F.softplus(-fake_logits).mean()
