"""Building blocks of the codec models: GDN / inverse GDN, ChannelNorm, residual blocks, and the
Laplace parameter head of an entropy stage.

GDN (Balle et al. 2016, "Density modeling of images using a generalized normalization
transformation") computes, per position, ``y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)``.
``beta`` and ``gamma`` are stored reparametrised (the square root of the value plus a tiny
pedestal) and bounded from below, the usual trick that keeps them positive and keeps gradients
alive near the bound (tensorflow-compression's ``NonnegativeParameterization``).

Everything here is a plain stack of convolutions, elementwise maps and bilinear resampling, so
the entropy-parameter path built from it can later be evaluated in fixed point.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import fastpath


class _LowerBound(torch.autograd.Function):
    """max(x, bound) whose gradient still flows when it would push x back above the bound."""

    @staticmethod
    def forward(ctx, x, bound):
        ctx.save_for_backward(x, bound)
        return torch.max(x, bound)

    @staticmethod
    def backward(ctx, grad):
        x, bound = ctx.saved_tensors
        pass_through = (x >= bound) | (grad < 0)
        return pass_through.type(grad.dtype) * grad, None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    return _LowerBound.apply(x, torch.tensor(bound, dtype=x.dtype, device=x.device))


class NonNegative(nn.Module):
    """Stores ``sqrt(v + pedestal)``; value ``max(stored, sqrt(min + pedestal))^2 - pedestal``."""

    pedestal = 2.0**-18

    def __init__(self, init: torch.Tensor, minimum: float = 0.0):
        super().__init__()
        self.bound = (minimum + self.pedestal) ** 0.5
        self.param = nn.Parameter(torch.sqrt(torch.clamp(init + self.pedestal, min=self.pedestal)))

    def forward(self) -> torch.Tensor:
        return lower_bound(self.param, self.bound) ** 2 - self.pedestal


class GDN(nn.Module):
    """Generalized divisive normalisation; ``inverse=True`` gives IGDN (multiply instead)."""

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6,
                 gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self.beta = NonNegative(torch.ones(channels), minimum=beta_min)
        self.gamma = NonNegative(gamma_init * torch.eye(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and torch.is_grad_enabled() and fastpath.enabled():
            return gdn_train(x, self.gamma(), self.beta(), self.inverse)
        c = x.shape[1]
        gamma = self.gamma().reshape(c, c, 1, 1)
        norm = torch.sqrt(F.conv2d(x * x, gamma, self.beta()))
        return x * norm if self.inverse else x / norm


def gdn_train(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
              inverse: bool) -> torch.Tensor:
    """GDN's formula for training (``codec.fastpath``): the channel mixing ``beta + gamma . x^2``
    as one matrix product in the tensor's own memory order, and a multiply by ``rsqrt`` instead
    of ``sqrt`` and a divide. Equal to ``GDN.forward``'s plain formula up to float rounding
    (about 1e-7 relative), which eval mode keeps so decoded pixels do not move."""
    x2 = x * x
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        # N,H,W,C in memory: a linear map over the last axis of the permuted view, no copies
        norm = F.linear(x2.permute(0, 2, 3, 1), gamma, beta).permute(0, 3, 1, 2)
    else:
        n, c, h, w = x.shape
        norm = torch.baddbmm(beta.reshape(1, c, 1), gamma.expand(n, c, c),
                             x2.reshape(n, c, h * w)).reshape(x.shape)
    return x * torch.sqrt(norm) if inverse else x * torch.rsqrt(norm)


def IGDN(channels: int, **kw) -> GDN:  # noqa: N802 - reads like a layer class
    return GDN(channels, inverse=True, **kw)


class ChannelNorm(nn.Module):
    """Normalise across channels at each position, then a learned per-channel affine map
    (HiFiC's ChannelNorm: like LayerNorm over C only, so it is resolution-independent)."""

    def __init__(self, channels: int, eps: float = 1e-3):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = (x - mean).pow(2).mean(dim=1, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


def conv(cin: int, cout: int, k: int = 5, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def deconv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, k, stride=stride, padding=k // 2,
                              output_padding=stride - 1)


class Upsample2x(nn.Module):
    """Bilinear upsampling by 2 (fixed weights 1/4, 3/4: exact in fixed point)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class ResidualBlock(nn.Module):
    """x + ChannelNorm(conv(ReLU(ChannelNorm(conv(x))))), 3x3 convolutions."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            conv(channels, channels, 3), ChannelNorm(channels), nn.ReLU(inplace=True),
            conv(channels, channels, 3), ChannelNorm(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class LaplaceHead(nn.Module):
    """Hyper features -> (means, scales) of a stage: a 1x1 convolution, scales = exp(log_scales).

    With ``predict_means=False`` (scale-only hyperprior, Balle 2018) the means are zero."""

    def __init__(self, features: int, channels: int, predict_means: bool = True):
        super().__init__()
        self.channels = channels
        self.predict_means = predict_means
        self.proj = nn.Conv2d(features, channels * (2 if predict_means else 1), 1)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.proj(feats)
        if self.predict_means:
            means_hat, log_scales = out.chunk(2, dim=1)
        else:
            means_hat, log_scales = torch.zeros_like(out), out
        return means_hat, torch.exp(log_scales.clamp(-20.0, 20.0))
