"""Integer-exact evaluation of a hyper decoder (``h_s``): the parameter path's other half.

``integer_program(seq)`` converts an ``nn.Sequential`` of Conv2d, ConvTranspose2d, GDN/IGDN,
ChannelNorm, Upsample2x (bilinear), ReLU and PReLU into fixed-point operations
(``codec.context.intmath`` conventions) on int64 tensors (N, C, H, W) at ACT_BITS.
``ExactSequential`` is an ``nn.Sequential`` (same state_dict keys) that runs in float while
training and through the integer program in eval mode, so the hyper features reaching the
context model are the same integers on every machine.

Integer-friendly forms used here:

* Convolution: exact integer sum. It runs as a float64 convolution when the data-dependent bound
  max|x| * max_o sum|w_o| + max|b| is below 2**53: every product and partial sum is then an
  integer a double holds exactly, so no summation order or FMA can round (cuDNN, whose FFT and
  Winograd algorithms do round, is switched off). Otherwise an int64 loop over the taps.
* GDN / IGDN: ``x / isqrt(beta + gamma . x**2)`` with the integer square root.
* ChannelNorm: ``intmath.int_channel_norm`` (floor divisions and ``isqrt``).
* Bilinear 2x upsampling: weights 1/4 and 3/4, both passes unrounded, one rounding shift.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .intmath import (
    ACT_BITS,
    ACT_LIMIT,
    WEIGHT_BITS,
    FixedPointError,
    check_no_overflow,
    clamp_act,
    from_fixed,
    int_channel_norm,
    isqrt,
    rshift_round,
    to_fixed,
)

EXACT_F64 = 2**53
SQUARE_LIMIT = 2**40          # x**2 at ACT_BITS is clamped here inside GDN (|x| < 2**12)
# float32 holds integers below 2**24 exactly (ExactSequential's float32 outputs)
F32_EXACT_LIMIT = 2**24 - 1


def _conv_acc(x: torch.Tensor, w: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """Exact int64 sum_{i,ky,kx} x * w (no bias, no shift)."""
    bound = int(x.abs().max()) * int(w.abs().flatten(1).sum(1).max()) if x.numel() else 0
    if bound < EXACT_F64:
        with torch.backends.cudnn.flags(enabled=False):
            acc = F.conv2d(x.double(), w.double(), None, stride, padding)
        return acc.to(torch.int64)
    n, _, h, wd = x.shape
    o, i, kh, kw = w.shape
    xp = F.pad(x, (padding,) * 4)
    ho, wo = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    acc = torch.zeros((n, o, ho * wo), dtype=torch.int64, device=x.device)
    for ky in range(kh):
        for kx in range(kw):
            xs = xp[:, :, ky:ky + stride * ho:stride, kx:kx + stride * wo:stride]
            acc += w[:, :, ky, kx] @ xs.reshape(n, i, -1)
    return acc.reshape(n, o, ho, wo)


class IntConv:
    def __init__(self, conv: nn.Conv2d):
        if conv.groups != 1 or conv.dilation != (1, 1):
            raise NotImplementedError("grouped or dilated convolutions in the parameter path")
        self.w = to_fixed(conv.weight.detach(), WEIGHT_BITS, "a hyper decoder's weight")
        b = conv.bias.detach() if conv.bias is not None else torch.zeros(self.w.shape[0])
        self.b = to_fixed(b, ACT_BITS + WEIGHT_BITS, "a hyper decoder's bias").reshape(1, -1, 1, 1)
        # no accumulator (nor _conv_acc's bound) can wrap around int64
        check_no_overflow(self.w, self.b.reshape(-1), "hyper decoder convolution")
        self.stride, self.padding = conv.stride[0], conv.padding[0]

    def __call__(self, x):
        return clamp_act(rshift_round(_conv_acc(x, self.w, self.stride, self.padding) + self.b,
                                      WEIGHT_BITS))


class IntConvTranspose:
    """Transposed convolution, exact: float64 under the same bound (per output, the weights
    that can meet it are w[:, o] of every input channel and tap), else an error."""

    def __init__(self, conv: nn.ConvTranspose2d):
        if conv.groups != 1 or conv.dilation != (1, 1):
            raise NotImplementedError("grouped or dilated convolutions in the parameter path")
        self.conv = conv
        self.w = to_fixed(conv.weight.detach(), WEIGHT_BITS,          # (in, out, kh, kw)
                          "a hyper decoder's weight")
        b = conv.bias.detach() if conv.bias is not None else torch.zeros(self.w.shape[1])
        self.b = to_fixed(b, ACT_BITS + WEIGHT_BITS, "a hyper decoder's bias").reshape(1, -1, 1, 1)
        check_no_overflow(self.w.transpose(0, 1), self.b.reshape(-1),
                          "hyper decoder transposed convolution")
        self.col_sum = int(self.w.abs().sum((0, 2, 3)).max())  # < 2**32: checked above

    def __call__(self, x):
        if int(x.abs().max()) * self.col_sum >= EXACT_F64:
            raise FixedPointError("transposed convolution outside the exact float64 range")
        c = self.conv
        with torch.backends.cudnn.flags(enabled=False):
            acc = F.conv_transpose2d(x.double(), self.w.double(), None, c.stride, c.padding,
                                     c.output_padding)
        return clamp_act(rshift_round(acc.to(torch.int64) + self.b, WEIGHT_BITS))


class IntGDN:
    """y = x / sqrt(beta + gamma x^2) (IGDN: times); needs ACT_BITS == WEIGHT_BITS so that
    beta + gamma . x^2 lands at 2 * ACT_BITS and its integer square root at ACT_BITS."""

    def __init__(self, gdn: nn.Module):
        assert ACT_BITS == WEIGHT_BITS
        c = gdn.beta().shape[0]
        self.inverse = gdn.inverse
        self.gamma = to_fixed(gdn.gamma().detach().reshape(c, c, 1, 1), WEIGHT_BITS)
        self.beta = to_fixed(gdn.beta().detach(), 2 * ACT_BITS).reshape(1, -1, 1, 1)
        check_no_overflow(self.gamma, self.beta.reshape(-1), "GDN", SQUARE_LIMIT)

    def __call__(self, x):
        sq = rshift_round(x * x, ACT_BITS).clamp(max=SQUARE_LIMIT)
        norm = isqrt((_conv_acc(sq, self.gamma, 1, 0) + self.beta).clamp(min=0))
        if self.inverse:
            return clamp_act(rshift_round(x * norm.clamp(max=ACT_LIMIT), ACT_BITS))
        return clamp_act(torch.div(x << ACT_BITS, norm.clamp(min=1), rounding_mode="floor"))


class IntChannelNorm:
    def __init__(self, cn: nn.Module):
        self.w = to_fixed(cn.weight.detach().reshape(-1), WEIGHT_BITS)
        self.b = to_fixed(cn.bias.detach().reshape(-1), ACT_BITS)
        self.eps = int(round(cn.eps * 2 ** (2 * ACT_BITS)))

    def __call__(self, x):
        return int_channel_norm(x, self.w, self.b, self.eps)


def _up2(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Unnormalised bilinear 2x along ``dim`` (weights 1 and 3: result at +2 bits)."""
    n = x.shape[dim]
    prev = torch.cat([x.narrow(dim, 0, 1), x.narrow(dim, 0, n - 1)], dim)
    nxt = torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim)
    even, odd = 3 * x + prev, 3 * x + nxt
    out = torch.stack([even, odd], dim + 1)
    shape = list(x.shape)
    shape[dim] = 2 * n
    return out.reshape(shape)


def int_upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Bilinear 2x (align_corners=False) in fixed point."""
    return rshift_round(_up2(_up2(x, 2), 3), 4)


def _convert(mod: nn.Module):
    from ..layers import GDN, ChannelNorm, Upsample2x

    if isinstance(mod, nn.Conv2d):
        return IntConv(mod)
    if isinstance(mod, nn.ConvTranspose2d):
        return IntConvTranspose(mod)
    if isinstance(mod, GDN):
        return IntGDN(mod)
    if isinstance(mod, ChannelNorm):
        return IntChannelNorm(mod)
    if isinstance(mod, Upsample2x):
        return int_upsample2x
    if isinstance(mod, nn.ReLU):
        return lambda x: x.clamp(min=0)
    if isinstance(mod, nn.PReLU):
        a = to_fixed(mod.weight.detach(), WEIGHT_BITS).reshape(1, -1, 1, 1)
        return lambda x: torch.where(x >= 0, x, rshift_round(x * a, WEIGHT_BITS))
    if isinstance(mod, nn.Identity):
        return lambda x: x
    raise NotImplementedError(f"no integer form for {type(mod).__name__} in the parameter path")


def integer_program(seq: nn.Sequential) -> list:
    return [_convert(m) for m in seq]


def run_integer(program: list, x_fx: torch.Tensor) -> torch.Tensor:
    for op in program:
        x_fx = op(x_fx)
    return x_fx


class ExactSequential(nn.Sequential):
    """Float while training; in eval mode the integer program, returned as floats that hold the
    fixed-point values exactly (|value| < 2**(24 - ACT_BITS) in float32, checked), so
    ``to_fixed(out, ACT_BITS)`` recovers the integers on any machine."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return super().forward(x)
        out = self.forward_fixed(to_fixed(x, ACT_BITS))
        if x.dtype != torch.float64 and bool((out.abs() > F32_EXACT_LIMIT).any()):
            raise FixedPointError("hyper features too large to pass exactly as float32")
        return from_fixed(out, ACT_BITS).to(x.dtype)

    def forward_fixed(self, x_fx: torch.Tensor) -> torch.Tensor:
        """int64 in, int64 out, both at ACT_BITS."""
        with torch.no_grad():
            return run_integer(integer_program(self), x_fx)
