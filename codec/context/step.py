"""THE context step: entropy parameters at a set of positions from the window they can see.

``context_step(weights, y_hat_pad, psi, rows, cols)`` computes, for the P positions
``(rows[p], cols[p])``, the context model's output from only their causal windows (k*k//2
neighbours each, gathered by index; receptive-field-only) and the hyper features there.
Encoder, wavefront decoder and serial reference decoder all call it, and so will the C++/CUDA
kernels of issue 6, which is why its interface is plain tensors:

* ``y_hat_pad``: (C, H + r, W + 2r) decoded latents, zero padded r rows on top and r columns on
  each side (r = kernel // 2); ``psi``: (Ch, H, W) hyper features; ``rows``/``cols``: (P,) int64.
* With ``IntStepWeights`` everything is int64 fixed point (``codec.context.intmath``) and the
  result is exact; with ``FloatStepWeights`` it is the float twin (for measuring what the
  integer conversion costs, never for coding).

``discretize_fixed`` then turns (means, log-scales) into the coder's integers (mean grid index,
scale table index) with integer arithmetic only.
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .intmath import (
    ACT_BITS,
    WEIGHT_BITS,
    int_linear,
    int_matmul,
    int_prelu,
    linear_to_fixed,
    prelu_to_fixed,
    rshift_round,
)
from .masked import ContextModel, causal_offsets


@dataclass
class StepWeights:
    """Weights of the step in execution order; ``layers`` are (w (O, K), b (O,)) and ``slopes``
    the PReLU slopes, consumed in the order documented in ``context_step``."""

    kernel: int
    channels: int
    offsets: torch.Tensor                        # (n_off, 2) int64: (di, dj)
    layers: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    slopes: list[torch.Tensor] = field(default_factory=list)
    n_blocks: int = 0
    integer: bool = True

    def to(self, device) -> StepWeights:
        return StepWeights(self.kernel, self.channels, self.offsets.to(device),
                           [(w.to(device), b.to(device)) for w, b in self.layers],
                           [s.to(device) for s in self.slopes], self.n_blocks, self.integer)


def _ctx_weight_taps(model: ContextModel) -> torch.Tensor:
    """The masked kxk weight restricted to the causal taps: (O, C * n_off), channel-major."""
    r = model.kernel // 2
    w = model.ctx.weight.detach()
    taps = [w[:, :, r + di, r + dj] for di, dj in causal_offsets(model.kernel)]
    return torch.stack(taps, dim=2).reshape(w.shape[0], -1)


def _ordered_layers(model: ContextModel):
    """(conv, prelu-or-None) pairs in execution order, the masked layer first."""
    out = [(model.ctx, model.ctx_act)]
    for blk in model.blocks:
        out += [(blk.conv1, blk.act), (blk.conv2, None)]
    out += [(model.head[0], model.head_acts[0]), (model.head[1], model.head_acts[1]),
            (model.head[2], None)]
    return out


def step_weights(model: ContextModel, integer: bool = True) -> StepWeights:
    """Convert a (trained, float) context model to the step's weights."""
    offsets = torch.tensor(causal_offsets(model.kernel), dtype=torch.int64).reshape(-1, 2)
    sw = StepWeights(model.kernel, model.channels, offsets, n_blocks=len(model.blocks),
                     integer=integer)
    for i, (conv, act) in enumerate(_ordered_layers(model)):
        if i == 0:
            w = _ctx_weight_taps(model)
            proxy = torch.nn.Linear(w.shape[1], w.shape[0])
            proxy.weight.data, proxy.bias.data = w, conv.bias.detach()
            conv = proxy
        if integer:
            sw.layers.append(linear_to_fixed(conv, what=f"context layer {i}"))
            if act is not None:
                sw.slopes.append(prelu_to_fixed(act, conv.weight.shape[0]))
        else:
            w = conv.weight.detach().double()
            sw.layers.append((w.reshape(w.shape[0], -1), conv.bias.detach().double()))
            if act is not None:
                a = act.weight.detach().double().reshape(-1)
                sw.slopes.append(a.expand(conv.weight.shape[0]).clone())
    return sw


def gather_windows(y_hat_pad: torch.Tensor, offsets: torch.Tensor, kernel: int,
                   rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """(P, C * n_off) causal windows of the positions, channel-major like the weights."""
    r = kernel // 2
    c, _, wp = y_hat_pad.shape
    flat = y_hat_pad.reshape(c, -1)
    idx = (rows.unsqueeze(0) + r + offsets[:, :1]) * wp + cols.unsqueeze(0) + r + offsets[:, 1:]
    win = flat[:, idx.reshape(-1)].reshape(c, offsets.shape[0], rows.shape[0])
    return win.permute(2, 0, 1).reshape(rows.shape[0], -1)


def _linear(x, wb, integer):
    w, b = wb
    return int_linear(x, w, b) if integer else x @ w.t() + b


def _prelu(x, slope, integer):
    return int_prelu(x, slope) if integer else torch.where(x >= 0, x, x * slope)


def context_step(sw: StepWeights, y_hat_pad: torch.Tensor, psi: torch.Tensor,
                 rows: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(means_hat, log_scales), each (P, C), at the positions (rows, cols).

    Layer order: masked layer + PReLU; per residual block 1x1 + PReLU, 1x1 (+ skip);
    concat hyper features; 1x1 + PReLU, 1x1 + PReLU, 1x1 -> (means, log_scales)."""
    integer = sw.integer
    h = _prelu(_linear(gather_windows(y_hat_pad, sw.offsets, sw.kernel, rows, cols),
                       sw.layers[0], integer), sw.slopes[0], integer)
    li, si = 1, 1
    for _ in range(sw.n_blocks):
        t = _prelu(_linear(h, sw.layers[li], integer), sw.slopes[si], integer)
        h = h + _linear(t, sw.layers[li + 1], integer)
        li, si = li + 2, si + 1
    h = torch.cat([h, psi[:, rows, cols].t()], dim=1)
    for _ in range(2):
        h = _prelu(_linear(h, sw.layers[li], integer), sw.slopes[si], integer)
        li, si = li + 1, si + 1
    out = _linear(h, sw.layers[li], integer)
    return out[:, :sw.channels], out[:, sw.channels:]


def hyper_partial(sw: StepWeights, psi: torch.Tensor) -> torch.Tensor:
    """(hidden, H, W) int64: the hyper-feature half of the first head layer's sum,
    ``W[:, ctx:] @ psi`` at every position, exact and unrounded (a kernel adds it to the
    context half before the rounding shift, so the step's result does not change). A float64
    product when every partial sum is an integer below 2**53 (exact in any order), else int64."""
    w, _ = sw.layers[1 + 2 * sw.n_blocks]
    ch, h, wd = psi.shape
    w_psi = w[:, w.shape[1] - ch:]
    flat = psi.reshape(ch, -1)
    if flat.numel() == 0 or w_psi.numel() == 0:
        return torch.zeros((w.shape[0], h, wd), dtype=torch.int64, device=psi.device)
    bound = int(flat.abs().max()) * int(w_psi.abs().sum(1).max())
    if bound < 2**53:
        out = (w_psi.double() @ flat.double()).to(torch.int64)
    else:
        out = int_matmul(flat.t(), w_psi).t()
    return out.reshape(w.shape[0], h, wd).contiguous()


# ---- discretisation: (means, log-scales) -> the coder's integers ----------------------------

@dataclass(frozen=True)
class ParamGrid:
    """The coder's parameter grids: means on multiples of 2**-mean_bits; scale / delta snapped
    to the log-spaced table exp(log_min + log_step * idx), idx in [0, levels)."""

    mean_bits: int
    log_min: float
    log_step: float
    levels: int

    @classmethod
    def from_entropy(cls) -> ParamGrid:
        """The grids of ``codec.entropy`` (the codec core's coder)."""
        from .. import entropy as e
        return cls(int(round(math.log2(e.MEAN_GRID))), math.log(e.SCALE_MIN), e._LOG_STEP,
                   e.SCALE_LEVELS)


def delta_parts(delta: float) -> tuple[int, int]:
    """(num, lshift) with k * delta at ACT_BITS = (k * num) << lshift (lshift >= 0), else
    rshift_round(k * num, -lshift): delta = num / 2**shift exactly (any float is such a ratio;
    the bitstream stores a float32, so num < 2**24), lshift = ACT_BITS - shift."""
    num, den = float(delta).as_integer_ratio()
    if delta <= 0 or num >= 2**31:
        raise ValueError(f"delta={delta!r} must be positive with a mantissa below 2**31")
    return num, ACT_BITS - (den.bit_length() - 1)


def delta_times(k: torch.Tensor, delta: float) -> torch.Tensor:
    """k * delta at ACT_BITS with integer arithmetic (``delta_parts``), rounded half up."""
    num, lshift = delta_parts(delta)
    if lshift >= 0:
        return (k * num) << lshift
    return rshift_round(k * num, -lshift)


@functools.lru_cache(maxsize=64)
def scale_constants(grid: ParamGrid, delta: float) -> tuple[int, int]:
    """(log(delta) + log_min at ACT_BITS, 1 / log_step at WEIGHT_BITS) as Python ints."""
    return (round((math.log(delta) + grid.log_min) * 2**ACT_BITS),
            round(2**WEIGHT_BITS / grid.log_step))


def discretize_fixed(means_fx: torch.Tensor, log_scales_fx: torch.Tensor, grid: ParamGrid,
                     delta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean grid index m: means_q = m * 2**-mean_bits, scale index), int64, integer-only.

    idx = round((log_scale - log(delta) - log_min) / log_step): the offset and 1 / log_step are
    two scalars rounded to fixed point once (from the same doubles on both sides)."""
    m = rshift_round(means_fx, ACT_BITS - grid.mean_bits)
    offset, inv_step = scale_constants(grid, float(delta))
    idx = rshift_round((log_scales_fx - offset) * inv_step, ACT_BITS + WEIGHT_BITS)
    return m, idx.clamp(0, grid.levels - 1)


def discretize_float(means: torch.Tensor, log_scales: torch.Tensor, grid: ParamGrid,
                     delta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The float twin of ``discretize_fixed`` (rate-cost measurements only)."""
    m = torch.round(means * 2**grid.mean_bits).to(torch.int64)
    idx = torch.round((log_scales - math.log(delta) - grid.log_min) / grid.log_step)
    return m, idx.clamp(0, grid.levels - 1).to(torch.int64)


def whole_tensor_params(model: ContextModel, y_hat: torch.Tensor, psi: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference for tests: the float model on whole tensors, (C, H, W) each, float64."""
    m = copy.deepcopy(model).double()
    with torch.no_grad():
        means, log_scales = m.raw(y_hat.double().unsqueeze(0), psi.double().unsqueeze(0))
    return means[0], log_scales[0]


def pad_latent(y_hat: torch.Tensor, kernel: int) -> torch.Tensor:
    """(C, H, W) -> (C, H + r, W + 2r), zeros on top, left and right."""
    r = kernel // 2
    return F.pad(y_hat, (r, r, r, 0))
