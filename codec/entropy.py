"""Densities and quantisation: Laplace priors, discretised likelihoods, the fixed top prior.

Densities live here; the coder that turns symbols into bytes lives in ``codec.coding``.

Conventions (one place for each):

* A latent value ``v`` with Laplace parameters ``(mean, scale)`` and bin width ``delta`` is coded
  as the integer symbol ``k = round((v - mean_q) / delta)`` and reconstructed as
  ``v_hat = mean_q + k * delta``. ``mean_q`` is the mean snapped to the grid ``1 / MEAN_GRID``.
* The coded model for ``k`` is a zero-mean Laplace of scale ``scale / delta`` quantised to unit
  bins, with that normalised scale snapped to ``SCALE_TABLE`` (log-spaced). Symbols with
  ``|k| > ESCAPE_AT`` are coded as the boundary symbol ``+-(ESCAPE_AT + 1)`` (which carries the
  whole tail mass) plus an escape value: nothing is ever clipped.
* The likelihood estimate reported beside the real file size (``estimate_bits``) uses exactly the
  discretised parameters the coder uses.

In training, ``quantize`` replaces rounding by additive uniform noise (default), a
straight-through rounding, or universal quantisation (rounding with a dither), and
``laplace_likelihood`` integrates the continuous Laplace over the bin around the result.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

QUANTIZERS = ("noise", "ste", "universal")

SCALE_MIN = 0.11          # normalised scales (scale / delta) below this code like this one
SCALE_MAX = 64.0
SCALE_LEVELS = 64
MEAN_GRID = 64            # means snap to multiples of 1/64 (exact binary fractions)
ESCAPE_AT = 511           # |k| above this is escaped
LIKELIHOOD_MIN = 1e-9     # floor of the training likelihood (keeps log finite)

_LOG_STEP = (math.log(SCALE_MAX) - math.log(SCALE_MIN)) / (SCALE_LEVELS - 1)
SCALE_TABLE = np.exp(math.log(SCALE_MIN) + _LOG_STEP * np.arange(SCALE_LEVELS, dtype=np.float64))
# The cheapest a coded symbol can be: k = 0 under the narrowest table scale (about 0.0154 bits).
# A stream claiming n symbols in fewer than about n x this many bits cannot be genuine; the
# decoder uses it to refuse forged sizes before allocating anything.
MIN_SYMBOL_BITS = -math.log2(1 - math.exp(-0.5 / SCALE_MIN))


def as_delta(delta, n: int, ref: torch.Tensor) -> torch.Tensor:
    """None / float / tensor (N,) -> tensor (N, 1, 1, 1) on ref's device and dtype."""
    if delta is None:
        delta = 1.0
    d = torch.as_tensor(delta, dtype=ref.dtype, device=ref.device)
    if d.ndim == 0:
        d = d.expand(n)
    if d.shape != (n,):
        raise ValueError(f"delta must be a float or a tensor of shape ({n},), got {tuple(d.shape)}")
    if not bool(torch.all(d > 0)):
        raise ValueError("delta (the bin width) must be positive")
    return d.reshape(n, 1, 1, 1)


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def quantize(v: torch.Tensor, means: torch.Tensor, delta: torch.Tensor, mode: str,
             training: bool) -> torch.Tensor:
    """The training/evaluation stand-in for ``mean + delta * round((v - mean) / delta)``."""
    if not training:
        return means + delta * torch.round((v - means) / delta)
    if mode == "noise":
        return v + delta * (torch.rand_like(v) - 0.5)
    if mode == "ste":
        return means + delta * _round_ste((v - means) / delta)
    if mode == "universal":
        # one dither per tensor element, shared by "encoder" and "decoder" (same draw)
        u = torch.rand_like(v) - 0.5
        return means + delta * (_round_ste((v - means) / delta + u) - u)
    raise ValueError(f"unknown quantizer {mode!r}; choose one of {QUANTIZERS}")


def laplace_cdf(x: torch.Tensor) -> torch.Tensor:
    """CDF of the standard Laplace, stable for large |x|."""
    return torch.where(x < 0, 0.5 * torch.exp(x.clamp(max=0)), 1 - 0.5 * torch.exp(-x.clamp(min=0)))


def laplace_likelihood(v_tilde: torch.Tensor, means: torch.Tensor, scales: torch.Tensor,
                       delta: torch.Tensor) -> torch.Tensor:
    """P(bin of width delta around v_tilde) under Laplace(means, scales), floored."""
    scales = scales.clamp(min=1e-6)
    c = (v_tilde - means).abs()  # the Laplace is symmetric: integrate on the upper tail side
    upper = laplace_cdf((-c + delta / 2) / scales)
    lower = laplace_cdf((-c - delta / 2) / scales)
    return (upper - lower).clamp(min=LIKELIHOOD_MIN)


class PerChannelLaplace(nn.Module):
    """The fixed top prior: one learned Laplace (mean, log scale) per channel.

    Its parameters are learned over the training set and do not depend on the image
    (``top_prior_parameters()`` of a model returns them so they can be optimised apart)."""

    def __init__(self, channels: int, init_scale: float = 1.0, learn_mean: bool = True):
        super().__init__()
        self.learn_mean = learn_mean
        self.means = nn.Parameter(torch.zeros(channels), requires_grad=learn_mean)
        self.log_scales = nn.Parameter(torch.full((channels,), math.log(init_scale)))

    def forward(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(means, scales) broadcast to ``like``'s shape (N, C, H, W)."""
        shape = (1, -1, 1, 1)
        return (self.means.reshape(shape).expand_as(like),
                torch.exp(self.log_scales).reshape(shape).expand_as(like))


# ---- discretised parameters: what the coder and the estimate see ---------------------------

def discretize(means: torch.Tensor, scales: torch.Tensor, delta: float
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(means_q on the 1/MEAN_GRID grid, scale indices into SCALE_TABLE for scale / delta)."""
    means_q = torch.round(means.double() * MEAN_GRID) / MEAN_GRID
    log_s = torch.log(scales.double().clamp(min=1e-30) / float(delta))
    idx = torch.round((log_s - math.log(SCALE_MIN)) / _LOG_STEP)
    return means_q, idx.clamp(0, SCALE_LEVELS - 1).to(torch.int64)


def to_symbols(v: torch.Tensor, means_q: torch.Tensor, delta: float) -> torch.Tensor:
    return torch.round((v.double() - means_q) / float(delta)).to(torch.int64)


def from_symbols(k: torch.Tensor, means_q: torch.Tensor, delta: float) -> torch.Tensor:
    return (means_q + k.double() * float(delta)).float()


def varint_len(n: np.ndarray) -> np.ndarray:
    """Bytes of the unsigned LEB128 varint of each value."""
    n = np.asarray(n, dtype=np.uint64)
    out = np.ones(n.shape, dtype=np.int64)
    n = n >> np.uint64(7)
    while np.any(n):
        out += (n > 0)
        n = n >> np.uint64(7)
    return out


def symbol_bits(k: np.ndarray, scale_idx: np.ndarray) -> np.ndarray:
    """-log2 P(k) under the coded model (tails folded into the escape symbols), plus the exact
    size of each escape value; float64, one entry per symbol."""
    k = np.asarray(k, dtype=np.int64)
    b = SCALE_TABLE[np.asarray(scale_idx)]
    a = np.minimum(np.abs(k), ESCAPE_AT + 1).astype(np.float64)
    # P(|k|=a) for a Laplace of scale b on unit bins; a = ESCAPE_AT+1 carries the whole tail
    upper = np.where(a == 0, 0.5, a - 0.5)
    p_tail_hi = 0.5 * np.exp(-(a + 0.5) / b)
    p_tail_lo = 0.5 * np.exp(-upper / b)
    p = np.where(a == 0, 1 - 2 * p_tail_hi, p_tail_lo - p_tail_hi)
    p = np.where(a == ESCAPE_AT + 1, p_tail_lo, p)
    bits = -np.log2(np.maximum(p, 2.0**-24))
    esc = np.abs(k) > ESCAPE_AT
    if np.any(esc):
        bits[esc] += 8 * varint_len(np.abs(k[esc]) - ESCAPE_AT - 1)
    return bits


def estimate_bits(k: torch.Tensor, scale_idx: torch.Tensor) -> float:
    """Likelihood estimate (bits) of coding symbols ``k`` with discretised scales."""
    k, idx = k.reshape(-1).cpu().numpy(), scale_idx.reshape(-1).cpu().numpy()
    return float(symbol_bits(k, idx).sum())
