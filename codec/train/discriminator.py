"""The HiFiC discriminator: a patch classifier of (image, latent) pairs.

HiFiC (Mentzer et al. 2020, section 3.2) conditions the discriminator on the quantised latent:
the latent goes through a 1x1-ish convolution to a few channels, is upsampled (nearest) to the
image size and concatenated with the image. Four strided convolutions with spectral
normalisation and leaky ReLU follow, and a 1x1 convolution gives one logit per patch.

    x (N,3,H,W) ----------------------------------+
    y (N,C,H/s,W/s) -> conv3x3 -> lrelu -> up(s) -+-> cat -> [sn-conv4x4/2, lrelu] x 4 -> conv1x1
                                                                              -> logits (N,1,h,w)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class Discriminator(nn.Module):
    def __init__(self, width: int = 64, latent_channels: int = 0, cond_channels: int = 12):
        super().__init__()
        self.latent_channels = latent_channels
        in_ch = 3
        if latent_channels:
            self.cond = nn.Conv2d(latent_channels, cond_channels, 3, padding=1)
            in_ch += cond_channels
        widths = [width, 2 * width, 4 * width, 8 * width]
        layers = []
        for w in widths:
            layers += [spectral_norm(nn.Conv2d(in_ch, w, 4, stride=2, padding=1)),
                       nn.LeakyReLU(0.2)]
            in_ch = w
        layers.append(nn.Conv2d(in_ch, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.latent_channels:
            if y is None:
                raise ValueError("this discriminator is conditioned on the latent: pass y")
            c = F.leaky_relu(self.cond(y), 0.2)
            x = torch.cat([x, F.interpolate(c, size=x.shape[-2:], mode="nearest")], dim=1)
        return self.net(x)
