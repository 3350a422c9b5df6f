"""The seed model: a GDN/ChannelNorm autoencoder with a two-stage hierarchical Laplace hyperprior.

After HiFiC (Mentzer et al. 2020, "High-Fidelity Generative Image Compression") for the
transforms and Minnen et al. 2018 / Hu et al. 2020 for the two-stage hierarchy::

    x -g_a-> y (latent_channels, H/4, W/4) -h_a[0]-> z (H/16) -h_a[1]-> w (H/64)
    w_hat ~ fixed per-channel Laplace (top prior)
    z_hat ~ Laplace(heads[1](h_s[1](w_hat)))
    y_hat ~ Laplace(latent_params(h_s[0](z_hat)))    <- the context model plugs in here
    x_hat = g_s(y_hat): 6 residual blocks, 4 convolutions, two bilinear upsamplings

The context model (issue 5) combines the already decoded part of y_hat with the same hyper
features ``h_s[0](z_hat)`` by overriding ``latent_params``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from torch import nn

from ..context.latent import ContextLatentMixin
from ..entropy import PerChannelLaplace
from ..layers import GDN, IGDN, ChannelNorm, LaplaceHead, ResidualBlock, Upsample2x, conv
from . import register
from .base import LatentModel


@dataclass
class HificConfig:
    preset: str = "small"
    channels: int = 64            # encoder filters (paper: 384)
    kernel: int = 5
    latent_channels: int = 12
    decoder_channels: int = 64    # width of the residual blocks
    res_blocks: int = 6
    hyper_channels: int = 64
    z_channels: int = 12
    w_channels: int = 12
    quantizer: str = "noise"      # noise | ste | universal (training only)
    delta_range: list = field(default_factory=lambda: [0.5, 2.0])
    coding_order: str = "parallel"
    target_bpp: float | None = None   # the rate track a trained model was made for, if any
    context: bool = False         # PixelCNN++-lite context model (codec.context), coded with
    context_kernel: int = 5       # coding_order "wavefront" ("parallel" switches it off)


def hyper_analysis(cin: int, width: int, cout: int) -> nn.Sequential:
    """4 convolutions, two of stride 2."""
    return nn.Sequential(conv(cin, width, 3), GDN(width), conv(width, width, 5, 2), GDN(width),
                         conv(width, width, 5, 2), ChannelNorm(width), conv(width, cout, 3))


def hyper_synthesis(cin: int, width: int) -> nn.Sequential:
    """4 convolutions and two bilinear upsamplings; output: hyper features of ``width``."""
    return nn.Sequential(conv(cin, width, 3), IGDN(width), Upsample2x(), conv(width, width, 5),
                         IGDN(width), Upsample2x(), conv(width, width, 5), ChannelNorm(width),
                         conv(width, width, 3))


@register("hific")
class Hific(ContextLatentMixin, LatentModel):
    stages = ("y", "z", "w")
    stride = 64
    presets = {
        "paper": HificConfig(preset="paper", channels=384, decoder_channels=384,
                             hyper_channels=192, z_channels=24, w_channels=24,
                             context=True, coding_order="wavefront"),
        "small": HificConfig(context=True, coding_order="wavefront"),
        "tiny": HificConfig(preset="tiny", channels=16, decoder_channels=16, res_blocks=1,
                            latent_channels=4, hyper_channels=16, z_channels=4, w_channels=4,
                            kernel=3),
    }

    def __init__(self, config: HificConfig):
        if config.context and config.coding_order == "parallel":  # e.g. a pre-context config
            config = dataclasses.replace(config, context=False)
        super().__init__(config)
        c, k, lat = config.channels, config.kernel, config.latent_channels
        d = config.decoder_channels
        self.g_a = nn.Sequential(
            conv(3, c, k, 2), GDN(c), conv(c, c, k), GDN(c), conv(c, c, k, 2), GDN(c),
            conv(c, c, k), GDN(c), conv(c, c, k), ChannelNorm(c), conv(c, lat, k))
        self.g_s = nn.Sequential(
            conv(lat, d, 3), ChannelNorm(d), *[ResidualBlock(d) for _ in range(config.res_blocks)],
            Upsample2x(), conv(d, d // 2, k), IGDN(d // 2),
            Upsample2x(), conv(d // 2, d // 4, k), IGDN(d // 4), conv(d // 4, 3, k))
        hc = config.hyper_channels
        self.h_a = nn.ModuleList([hyper_analysis(lat, hc, config.z_channels),
                                  hyper_analysis(config.z_channels, hc, config.w_channels)])
        self.h_s = nn.ModuleList([hyper_synthesis(config.z_channels, hc),
                                  hyper_synthesis(config.w_channels, hc)])
        self.heads = nn.ModuleList([LaplaceHead(hc, lat), LaplaceHead(hc, config.z_channels)])
        self.top_prior = PerChannelLaplace(config.w_channels)
        if config.context:
            self.attach_context(lat, hc, config.context_kernel)
        elif config.coding_order == "wavefront":
            raise ValueError("coding_order 'wavefront' needs context=True")
