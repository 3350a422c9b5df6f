"""The shared skeleton of every codec model: a chain of latent stages with Laplace priors.

    x --g_a--> y --h_a[0]--> z --h_a[1]--> w          (stages: y, z, w; bottom to top)
                                           |
                       top prior (fixed, per channel) -> w_hat
             z_hat <-- heads[1](h_s[1](w_hat)) = (means, scales) of z
    y_hat <-- latent_params(h_s[0](z_hat))   = (means, scales) of y   [the latent coder]
    x_hat = g_s(y_hat)

A model with one stage (factorized prior) has no hyper transforms; the top stage is then ``y``.
The bin width ``delta`` scales the quantisation bins of the latent ``y`` only; the hyper stages
use unit bins. Subclasses build ``g_a``, ``g_s``, ``h_a``, ``h_s``, ``heads`` and ``top_prior``.
"""

from __future__ import annotations

import dataclasses
import random

import torch
from torch import nn

from ..entropy import as_delta, laplace_likelihood, quantize


class LatentModel(nn.Module):
    """Base class; see the module docstring for the data flow."""

    name: str = ""                # set by ``codec.models.register``, like the two below
    baseline: bool = False
    anchor: str | None = None
    stages: tuple[str, ...] = ("y",)
    stride: int = 1

    def __init__(self, config):
        super().__init__()
        self.cfg = config
        self.config = dataclasses.asdict(config)

    # -- parameters --------------------------------------------------------------------------
    def top_prior_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.top_prior.parameters() if p.requires_grad]

    def main_parameters(self) -> list[nn.Parameter]:
        top = {id(p) for p in self.top_prior.parameters()}
        return [p for p in self.parameters() if id(p) not in top and p.requires_grad]

    # -- parameter path (shared by training forward and the coder) ---------------------------
    def latent_params(self, features: torch.Tensor, y_hat: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """(means_hat, scales_hat) of the latent y from the hyper features. ``y_hat`` (already
        decoded latents) is unused here; a context model's override combines the two."""
        return self.heads[0](features)

    def latent_context_input(self, y: torch.Tensor, delta: torch.Tensor, mode: str):
        """The quantised latent a context model sees in the training forward (then also the one
        the likelihood is taken at); None without a context model (``codec.context.latent``)."""
        return None

    def top_params(self, shape: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        """(means, scales) of the top stage: the fixed per-channel prior, broadcast to ``shape``."""
        return self.top_prior(torch.zeros(shape))

    def stage_params(self, i: int, above_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(means, scales) of stage ``i`` < top (0 = y) given the decoded stage above it."""
        features = self.h_s[i](above_hat)
        if i == 0:
            return self.latent_params(features)
        return self.heads[i](features)

    def analysis(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[y, z, w, ...]: the latents of every stage, bottom to top."""
        latents = [self.g_a(x)]
        for h in self.h_a:
            latents.append(h(latents[-1]))
        return latents

    def draw_delta(self, n: int) -> float:
        lo, hi = self.config["delta_range"]
        return random.uniform(lo, hi) if hi > lo else lo

    # -- training forward ----------------------------------------------------------------------
    def forward(self, x: torch.Tensor, delta=None) -> dict:
        """x: N x 3 x H x W in [0, 1] (sides multiples of ``stride``); ``delta``: the latent's
        bin width (None = 1, a float, or a tensor (N,))."""
        n = x.shape[0]
        latents = self.analysis(x)
        d_y = as_delta(delta, n, x)
        ones = torch.ones_like(d_y)
        mode = self.config["quantizer"]
        likelihoods, bits, hats = {}, {}, [None] * len(latents)
        above = None
        for i in reversed(range(len(latents))):
            v = latents[i]
            d = d_y if i == 0 else ones
            y_ctx = self.latent_context_input(v, d, mode) if i == 0 else None
            if i == len(latents) - 1:
                means, scales = self.top_prior(v)
            elif i == 0:
                means, scales = self.latent_params(self.h_s[0](above), y_hat=y_ctx)
            else:
                means, scales = self.heads[i](self.h_s[i](above))
            v_hat = quantize(v, means, d, mode, self.training) if y_ctx is None else y_ctx
            lik = laplace_likelihood(v_hat, means, scales, d)
            name = self.stages[i]
            likelihoods[name] = lik
            bits[name] = -torch.log2(lik).flatten(1).sum(1)
            hats[i] = v_hat
            above = v_hat
        x_hat = self.g_s(hats[0])
        return {"x_hat": x_hat, "likelihoods": likelihoods, "bits": bits, "y": latents[0],
                "y_hat": hats[0]}
