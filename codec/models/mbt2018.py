"""Minnen et al. 2018, "Joint autoregressive and hierarchical priors for learned image
compression" (mbt2018): the mean-scale hyperprior plus a 5x5 masked context model.

    x -g_a-> y (M, H/16) -h_a-> z (N, H/64)    z_hat ~ fixed per-channel prior
    psi = h_s(z_hat) (2M channels, integer-exact at coding time)
    (means_hat, scales_hat) = context(y_hat causal window, psi)    x_hat = g_s(y_hat)

The same machinery as the seed's context model (``codec.context``): PReLU 1x1 layers after the
masked convolution instead of the paper's ReLU/LeakyReLU stack, Laplace instead of Gaussian
(one coder for every model), decoded by the wavefront schedule (3H + W steps).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..context.latent import ContextLatentMixin
from ..layers import LaplaceHead, conv, deconv
from . import register
from .bmshj2018 import Bmshj2018Hyperprior, BmshjConfig


@dataclass
class Mbt2018Config(BmshjConfig):
    coding_order: str = "wavefront"
    context: bool = True
    context_kernel: int = 5


@register("mbt2018", baseline=True, anchor="compressai-mbt2018_mse_cpu")
class Mbt2018(ContextLatentMixin, Bmshj2018Hyperprior):
    presets = {"paper": Mbt2018Config(preset="paper", N=192, M=192),
               "small": Mbt2018Config(),
               "tiny": Mbt2018Config(preset="tiny", N=8, M=8)}

    def __init__(self, config: Mbt2018Config):
        super().__init__(config)
        n, m = config.N, config.M
        self.h_a = nn.ModuleList([nn.Sequential(
            conv(m, n, 3), nn.LeakyReLU(), conv(n, n, 5, 2), nn.LeakyReLU(), conv(n, n, 5, 2))])
        self.h_s = nn.ModuleList([nn.Sequential(
            deconv(n, m), nn.ReLU(), deconv(m, m * 3 // 2), nn.ReLU(), conv(m * 3 // 2, 2 * m, 3))])
        self.heads = nn.ModuleList([LaplaceHead(2 * m, m)])  # the context-off parameter head
        if config.context:
            self.attach_context(m, 2 * m, config.context_kernel, ctx_channels=2 * m,
                                hidden=2 * m)
        elif config.coding_order == "wavefront":
            raise ValueError("coding_order 'wavefront' needs context=True")
