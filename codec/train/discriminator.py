"""The HiFiC discriminator: a patch classifier of (image, latent) pairs.

HiFiC (Mentzer et al. 2020, section 3.2) conditions the discriminator on the quantised latent:
the latent goes through a 1x1-ish convolution to a few channels, is upsampled (nearest) to the
image size and concatenated with the image. Four strided convolutions with spectral
normalisation and leaky ReLU follow, and a 1x1 convolution gives one logit per patch.

    x (N,3,H,W) ----------------------------------+
    y (N,C,H/s,W/s) -> conv3x3 -> lrelu -> up(s) -+-> cat -> [sn-conv4x4/2, lrelu] x 4 -> conv1x1
                                                                              -> logits (N,1,h,w)

A batch of ``k * N`` images may be passed with ``N`` latents: image ``i`` is then paired with
latent ``i mod N`` (the training loop's ``[real; fake]`` batch, both conditioned on one ``y``).
The first convolution is linear in its input, so it splits into the images' part and the
latent's part; the training fast path (``codec.fastpath``) computes the latent's part once per
latent instead of once per image, and the images' part on 3 channels instead of 3 + 12. Same
parameters, same state-dict keys, one spectral-norm power iteration per call either way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .. import fastpath

IMAGE_CHANNELS = 3


class Discriminator(nn.Module):
    def __init__(self, width: int = 64, latent_channels: int = 0, cond_channels: int = 12):
        super().__init__()
        self.latent_channels = latent_channels
        in_ch = IMAGE_CHANNELS
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
        if not self.latent_channels:
            return self.net(x)
        if y is None:
            raise ValueError("this discriminator is conditioned on the latent: pass y")
        k, rest = divmod(x.shape[0], y.shape[0])
        if rest or not k:
            raise ValueError(f"{x.shape[0]} images for {y.shape[0]} latents: pass one latent per "
                             f"image, or one per group of images")
        if not fastpath.enabled():  # the plain formula, one latent per image
            c = F.leaky_relu(self.cond(y.repeat(k, 1, 1, 1) if k > 1 else y), 0.2)
            return self.net(torch.cat([x, F.interpolate(c, size=x.shape[-2:], mode="nearest")],
                                      dim=1))
        c = F.leaky_relu(self.cond(y), 0.2)
        up = F.interpolate(c, size=x.shape[-2:], mode="nearest")
        first = self.net[0]
        weight = first.weight  # read once: one power iteration, as in the plain path
        img = F.conv2d(x, weight[:, :IMAGE_CHANNELS], first.bias, first.stride, first.padding)
        lat = F.conv2d(up, weight[:, IMAGE_CHANNELS:], None, first.stride, first.padding)
        h = (img.unflatten(0, (k, -1)) + lat).flatten(0, 1)
        return self.net[1:](h)
