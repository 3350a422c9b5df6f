"""Baselines of Balle et al. 2018, "Variational image compression with a scale hyperprior".

    factorized:  x -g_a-> y (M, H/16)  y_hat ~ fixed per-channel prior        x_hat = g_s(y_hat)
    hyperprior:  x -g_a-> y -h_a(|y|)-> z (N, H/64)  z_hat ~ fixed per-channel prior
                 y_hat ~ Laplace(0, scales_hat = head(h_s(z_hat)))            x_hat = g_s(y_hat)

Transforms as in the paper (5x5 convolutions, GDN, stride 2 four times). Differences, on
purpose, so all models share one coder: the priors are Laplace (the paper: Gaussian conditional)
and the fixed prior is a learned per-channel Laplace rather than the paper's non-parametric
factorized density.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..entropy import PerChannelLaplace
from ..layers import GDN, IGDN, LaplaceHead, conv, deconv
from . import register
from .base import LatentModel


@dataclass
class BmshjConfig:
    preset: str = "small"
    N: int = 64                   # noqa: N815 - the paper's names
    M: int = 96                   # noqa: N815
    quantizer: str = "noise"
    delta_range: list = field(default_factory=lambda: [0.5, 2.0])
    coding_order: str = "parallel"
    target_bpp: float | None = None


PRESETS = {"paper": BmshjConfig(preset="paper", N=128, M=192),
           "small": BmshjConfig(),
           "tiny": BmshjConfig(preset="tiny", N=8, M=8)}


def analysis(n: int, m: int) -> nn.Sequential:
    return nn.Sequential(conv(3, n, 5, 2), GDN(n), conv(n, n, 5, 2), GDN(n),
                         conv(n, n, 5, 2), GDN(n), conv(n, m, 5, 2))


def synthesis(n: int, m: int) -> nn.Sequential:
    return nn.Sequential(deconv(m, n), IGDN(n), deconv(n, n), IGDN(n), deconv(n, n), IGDN(n),
                         deconv(n, 3))


class Abs(nn.Module):
    def forward(self, x):
        return x.abs()


@register("bmshj2018-factorized", baseline=True)
class Bmshj2018Factorized(LatentModel):
    stages = ("y",)
    stride = 16
    presets = PRESETS

    def __init__(self, config: BmshjConfig):
        super().__init__(config)
        self.g_a = analysis(config.N, config.M)
        self.g_s = synthesis(config.N, config.M)
        self.h_a = nn.ModuleList()
        self.h_s = nn.ModuleList()
        self.heads = nn.ModuleList()
        self.top_prior = PerChannelLaplace(config.M, init_scale=4.0)


@register("bmshj2018-hyperprior", baseline=True,
          anchor="compressai-bmshj2018-hyperprior_mse_cpu")
class Bmshj2018Hyperprior(LatentModel):
    stages = ("y", "z")
    stride = 64
    presets = PRESETS

    def __init__(self, config: BmshjConfig):
        super().__init__(config)
        n, m = config.N, config.M
        self.g_a = analysis(n, m)
        self.g_s = synthesis(n, m)
        self.h_a = nn.ModuleList([nn.Sequential(
            Abs(), conv(m, n, 3), nn.ReLU(), conv(n, n, 5, 2), nn.ReLU(), conv(n, n, 5, 2))])
        self.h_s = nn.ModuleList([nn.Sequential(
            deconv(n, n), nn.ReLU(), deconv(n, n), nn.ReLU(), conv(n, m, 3), nn.ReLU())])
        self.heads = nn.ModuleList([LaplaceHead(m, m, predict_means=False)])
        self.top_prior = PerChannelLaplace(n, learn_mean=False)
