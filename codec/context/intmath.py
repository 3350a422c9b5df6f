"""Fixed-point arithmetic for the entropy-parameter path (Balle et al. 2019, "Integer networks
for data compression").

Why: the coder's parameters (means, scale indices) must come out bit-identical on the encoder's
and the decoder's machine. Float convolutions are not: the summation order changes with the
thread count, the kernel and the device, and a value near a rounding boundary then lands in a
different bin. Integer arithmetic is associative, so any order gives the same answer.

Conventions (one place for each):

* An activation ``a`` is stored as the int64 ``round(a * 2**ACT_BITS)``.
* A weight or a PReLU slope ``w`` is stored as ``round(w * 2**WEIGHT_BITS)``; a bias as
  ``round(b * 2**(ACT_BITS + WEIGHT_BITS))`` (the scale of the accumulator).
* A layer accumulates ``sum(x * w) + b`` exactly in int64, then ``rshift_round`` by
  ``WEIGHT_BITS`` (round half up) and clamps to ``+-ACT_LIMIT``. ``check_no_overflow`` proves
  at conversion time that no accumulator can leave int64.
* A value with no int64 form (NaN, infinity, or beyond +-2**62 once scaled: broken weights)
  is refused by ``to_fixed`` with a ``FixedPointError``, a ``codec.coding.CodingError``: a
  cast would turn it into INT64_MIN, whose absolute value wraps negative, and every check
  after it would pass.

Everything here takes and returns plain int64 tensors so a C++/CUDA kernel can replace it.
"""

from __future__ import annotations

import torch
from torch import nn

from ..coding import CodingError

ACT_BITS = 16                 # fractional bits of activations
WEIGHT_BITS = 16              # fractional bits of weights and PReLU slopes
ACT_LIMIT = 2**30 - 1         # activations are clamped to +-(2**14 in real units)
INT64_SAFE = 2**62            # accumulators stay below this (headroom for the bias add)


class FixedPointError(CodingError):
    """A float network that cannot be converted safely (overflow or unrepresentable value);
    a ``CodingError`` as the float path's non-finite parameters are."""


def to_fixed(x: torch.Tensor, bits: int, what: str = "a value") -> torch.Tensor:
    """round(x * 2**bits) as int64 (round half to even, as torch.round; exact for dyadic x).
    ``FixedPointError`` (naming ``what``) if some value is NaN, infinite or, scaled, not
    within +-2**62 (``INT64_SAFE``): a cast would make it INT64_MIN, silently."""
    scaled = torch.round(x.detach().double() * float(2**bits))
    if scaled.numel() and not float(scaled.abs().max()) < INT64_SAFE:  # NaN compares false
        bad = scaled[~(scaled.abs() < INT64_SAFE)].reshape(-1)[0]
        raise FixedPointError(f"{what} has no fixed-point form ({float(bad) / 2**bits:g} at "
                              f"{bits} fractional bits): non-finite or huge weights?")
    return scaled.to(torch.int64)


def from_fixed(x: torch.Tensor, bits: int) -> torch.Tensor:
    return x.double() / float(2**bits)


def rshift_round(x: torch.Tensor, bits: int) -> torch.Tensor:
    """round(x / 2**bits), halves rounded up; torch's >> on int64 is an arithmetic shift."""
    if bits == 0:
        return x
    return (x + (1 << (bits - 1))) >> bits


def clamp_act(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(-ACT_LIMIT, ACT_LIMIT)


def int_matmul(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Exact int64 ``x @ w.T`` for x (P, K), w (O, K). CPU has an int64 GEMM; elsewhere a
    broadcast multiply-sum (exact too: integer sums do not depend on their order)."""
    if x.device.type == "cpu":
        return x @ w.t()
    return (x.unsqueeze(1) * w.unsqueeze(0)).sum(-1)


def int_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """One fixed-point layer on rows: x (P, K) at ACT_BITS, w (O, K) at WEIGHT_BITS,
    b (O,) at ACT_BITS + WEIGHT_BITS -> (P, O) at ACT_BITS."""
    return clamp_act(rshift_round(int_matmul(x, w) + b, WEIGHT_BITS))


def int_prelu(x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    """PReLU with per-channel fixed-point slopes; channels on the last axis."""
    return torch.where(x >= 0, x, rshift_round(x * slope, WEIGHT_BITS))


def isqrt(n: torch.Tensor) -> torch.Tensor:
    """floor(sqrt(n)) of a non-negative int64 tensor, exactly (Newton's method on integers).

    For integer-friendly normalisation (ChannelNorm/GDN in fixed point): a float sqrt of a
    large integer is not guaranteed to round the same way everywhere; this is."""
    if bool((n < 0).any()):
        raise ValueError("isqrt of a negative number")
    # start above the root: 2**ceil(bits/2) >= sqrt(n)
    bits = torch.where(n > 0, torch.floor(torch.log2(n.double().clamp(min=1))) + 1,
                       torch.zeros_like(n, dtype=torch.float64)).to(torch.int64)
    x = torch.ones_like(n) << ((bits + 1) // 2)
    n1 = n.clamp(min=1)  # n = 0 is patched at the end; keeps x >= 1
    for _ in range(64):
        y = (x + n1 // x) >> 1
        done = y >= x
        x = torch.where(done, x, y)
        if bool(done.all()):
            break
    return torch.where(n == 0, torch.zeros_like(n), x)


def int_channel_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                     eps_fx: int) -> torch.Tensor:
    """HiFiC's ChannelNorm in fixed point over axis 1 of (N, C, ...) int64 at ACT_BITS:
    ``(x - mean) / sqrt(var + eps) * weight + bias`` with floor divisions and ``isqrt``.

    ``weight`` at WEIGHT_BITS, ``bias`` at ACT_BITS, ``eps_fx`` = eps at 2 * ACT_BITS."""
    c = x.shape[1]
    mean = torch.div(x.sum(1, keepdim=True), c, rounding_mode="floor")
    d = x - mean
    var = torch.div((d * d).sum(1, keepdim=True), c, rounding_mode="floor")  # 2*ACT_BITS
    std = isqrt(var + eps_fx).clamp(min=1)                                     # ACT_BITS
    normed = torch.div(d << ACT_BITS, std, rounding_mode="floor")             # ACT_BITS
    shape = (1, c) + (1,) * (x.dim() - 2)
    out = rshift_round(normed * weight.reshape(shape), WEIGHT_BITS) + bias.reshape(shape)
    return clamp_act(out)


def check_no_overflow(w_fx: torch.Tensor, b_fx: torch.Tensor, what: str,
                      input_limit: int = ACT_LIMIT) -> None:
    """Fail at conversion if some accumulator sum(|w|) * input_limit + |b| could reach 2**62.
    The bound is summed in float64 (relative error under 1e-12 here), so that neither |INT64_MIN|
    nor a row's sum can wrap around 64 bits and pass."""
    w = w_fx.reshape(w_fx.shape[0], -1).double().abs()
    worst = (float(w.sum(1).max()) if w.numel() else 0.0) * input_limit
    worst += float(b_fx.double().abs().max()) if b_fx.numel() else 0.0
    if not worst < INT64_SAFE:
        raise FixedPointError(f"{what}: accumulator bound {worst:.3e} exceeds 2**62")


def linear_to_fixed(layer: nn.Module, mask: torch.Tensor | None = None,
                    what: str = "layer") -> tuple[torch.Tensor, torch.Tensor]:
    """A Conv2d (any kernel; flattened to (O, Cin*kh*kw)) or Linear -> (w_fx, b_fx)."""
    w = layer.weight.detach()
    if mask is not None:
        w = w * mask
    w_fx = to_fixed(w.reshape(w.shape[0], -1), WEIGHT_BITS, f"{what}'s weight")
    b = layer.bias.detach() if layer.bias is not None else torch.zeros(w.shape[0])
    b_fx = to_fixed(b, ACT_BITS + WEIGHT_BITS, f"{what}'s bias")
    check_no_overflow(w_fx, b_fx, what)
    return w_fx, b_fx


def prelu_to_fixed(layer: nn.PReLU, channels: int, what: str = "PReLU") -> torch.Tensor:
    a = layer.weight.detach().reshape(-1)
    if a.numel() == 1:
        a = a.expand(channels)
    return to_fixed(a, WEIGHT_BITS, f"{what}'s slope")
