"""Loss terms. Images are N x 3 x H x W in [0, 1]; every term is a mean over the batch.

* rate: bits of all entropy stages (``out["bits"]``, stage -> (N,)) over pixels -> bpp;
* distortion: MSE on the [0, 255] scale (HiFiC's k_M convention) and the frozen perceptual
  metric, which sees the reconstruction clamped to [0, 1] with a straight-through gradient (the
  metric is frozen and the original is data, so with ``codec.fastpath`` on, an LPIPS metric takes
  the original's features without autograd and the backward pass runs through half the trunk);
* adversarial: the vanilla GAN loss for the discriminator and the non-saturating
  ``L_G = -E[log D(x_tilde)]`` for the decoder, both written with softplus on logits
  (``-log sigmoid(t) = softplus(-t)``), which is the numerically stable form.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from plic.quality import est_bpp

from .. import fastpath


def bpp_per_image(bits: dict[str, torch.Tensor], height: int, width: int) -> torch.Tensor:
    """(N,) estimated bits per pixel, summed over every stage."""
    if not bits:
        raise ValueError("the model reported no bits")
    return est_bpp(sum(bits.values()), height, width)


def mse255(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(x_hat, x) * 255.0 ** 2


def clamp_st(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] forward; identity gradient backward."""
    return x + (x.clamp(0.0, 1.0) - x).detach()


def perceptual(metric, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    x_hat = clamp_st(x_hat)
    if fastpath.enabled() and _frozen_lpips(metric):
        return lpips_to_reference(metric, x_hat, x).mean()
    return metric(x_hat, x).mean()


def _frozen_lpips(metric) -> bool:
    from perceptual_metric.lpips_model import LPIPS

    return isinstance(metric, LPIPS) and not any(p.requires_grad for p in metric.parameters())


def lpips_to_reference(metric, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """(N,) ``metric(x, ref)`` of a frozen LPIPS for a reference that needs no gradient: the
    trunk runs on ``ref`` without autograd and on ``x`` with it, instead of once on
    ``cat([x, ref])``, so the backward pass skips ``ref``'s half. Equal to ``metric(x, ref)`` up
    to float rounding."""
    from perceptual_metric.lpips_model import check_images

    check_images(x, ref, metric.range_tol)
    metric.follow(x)
    with torch.no_grad():
        f_ref = metric.unit_features(ref)
    terms = [(a - b).pow(2).mean(dim=(2, 3)) for a, b in zip(metric.unit_features(x), f_ref)]
    return metric.combine(terms).sum(1)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[log D(x)] - E[log(1 - D(x_tilde))]."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating: -E[log D(x_tilde)]."""
    return F.softplus(-fake_logits).mean()
