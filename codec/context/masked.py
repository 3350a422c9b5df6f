"""PixelCNN++-lite context model: a causal (masked) convolution over the decoded latents,
combined with the hyper features to give each element's Laplace mean and scale.

    y_hat --MaskedConv kxk ('A': strictly earlier positions)--PReLU--[1x1 residual block]-- ctx
    (ctx, psi = hyper features) --concat--1x1--PReLU--1x1--PReLU--1x1--> (means_hat, log_scales)

Lighter than PixelCNN++ (van den Oord / Salimans et al. 2017): one masked layer, 1x1 layers
after it, PReLU instead of concat-ELU (a PReLU is one multiply and a shift in fixed point). Only
the first layer sees neighbours, so the receptive field is exactly the kxk causal mask: a
position (i, j) depends on rows i-r..i-1 (columns j-r..j+r) and on (i, j-r..j-1), r = k // 2.
That is what makes the wavefront t = (r + 1) * i + j valid (``codec.context.wavefront``).
All channels of a position are coded together; a position sees every channel of its neighbours.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def causal_offsets(kernel: int) -> list[tuple[int, int]]:
    """(di, dj) of the positions a kxk type-'A' mask lets a position see, raster order."""
    r = kernel // 2
    rows_above = [(di, dj) for di in range(-r, 0) for dj in range(-r, r + 1)]
    return rows_above + [(0, dj) for dj in range(-r, 0)]


def causal_mask(kernel: int) -> torch.Tensor:
    """kxk float mask, 1 where ``causal_offsets`` allows, 0 elsewhere (centre included)."""
    r = kernel // 2
    m = torch.zeros(kernel, kernel)
    for di, dj in causal_offsets(kernel):
        m[r + di, r + dj] = 1.0
    return m


class MaskedConv2d(nn.Conv2d):
    """A kxk convolution that sees only strictly earlier positions (PixelCNN mask 'A')."""

    def __init__(self, cin: int, cout: int, kernel: int = 5):
        if kernel % 2 != 1:
            raise ValueError("the causal kernel size must be odd")
        super().__init__(cin, cout, kernel, padding=kernel // 2)
        self.register_buffer("mask", causal_mask(kernel), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class ResidualBlock1x1(nn.Module):
    """x + 1x1(PReLU(1x1(x))): the 'fewer layers per block' PixelCNN++ block."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 1)
        self.act = nn.PReLU(channels, init=0.25)
        self.conv2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class ContextModel(nn.Module):
    """Context + hyper features -> (means_hat, log_scales) of the latent ``y``.

    ``channels``: latent channels C; ``hyper_channels``: channels of the hyper features psi
    (already at the latent's resolution); ``ctx_channels``/``hidden``: widths."""

    def __init__(self, channels: int, hyper_channels: int, ctx_channels: int | None = None,
                 hidden: int | None = None, kernel: int = 5, blocks: int = 1):
        super().__init__()
        ctx_channels = ctx_channels or 2 * channels
        hidden = hidden or 2 * channels
        self.channels = channels
        self.hyper_channels = hyper_channels
        self.kernel = kernel
        self.ctx = MaskedConv2d(channels, ctx_channels, kernel)
        self.ctx_act = nn.PReLU(ctx_channels, init=0.25)
        self.blocks = nn.ModuleList(ResidualBlock1x1(ctx_channels) for _ in range(blocks))
        self.head = nn.ModuleList([nn.Conv2d(ctx_channels + hyper_channels, hidden, 1),
                                   nn.Conv2d(hidden, hidden, 1),
                                   nn.Conv2d(hidden, 2 * channels, 1)])
        self.head_acts = nn.ModuleList([nn.PReLU(hidden, init=0.25), nn.PReLU(hidden, init=0.25)])

    def raw(self, y_hat: torch.Tensor, psi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(means_hat, log_scales) on whole tensors (training, likelihood estimates)."""
        h = self.ctx_act(self.ctx(y_hat))
        for block in self.blocks:
            h = block(h)
        h = torch.cat([h, psi], dim=1)
        for conv, act in zip(self.head, self.head_acts):
            h = act(conv(h))
        means_hat, log_scales = self.head[-1](h).chunk(2, dim=1)
        return means_hat, log_scales

    def forward(self, y_hat: torch.Tensor, psi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(means_hat, scales_hat), scales = exp(log_scales) as in ``codec.models.base``."""
        means_hat, log_scales = self.raw(y_hat, psi)
        return means_hat, torch.exp(log_scales.clamp(-20.0, 20.0))
