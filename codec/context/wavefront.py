"""Parallel autoregressive coding of the latent: the wavefront schedule and its coder.

With a kxk causal mask (r = k // 2) a position (i, j) needs (i - 1, j + r) and (i, j - 1) before
it. Coding every position with ``t = (r + 1) * i + j`` at step t satisfies both, so a step codes
all positions of one anti-diagonal-like front at once: ``(r + 1) * (H - 1) + W`` steps instead of
H * W (5x5: 3H + W, 573 for a 128 x 192 Kodak latent).

The symbols are written in that order (step by step, positions by row, channels innermost). The
serial reference decoder walks the very same order one position at a time, so both decode the
same stream; both call ``codec.context.step.context_step`` through ``run_schedule``, which the
encoder uses too. Only the symbol source differs: the encoder quantises ``y``, a decoder pops
symbols from the ANS stream.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..coding import EscapeReader, SymbolStream, check_symbols
from .intmath import ACT_BITS
from .step import (
    ParamGrid,
    StepWeights,
    context_step,
    delta_times,
    discretize_fixed,
    discretize_float,
    pad_latent,
)

Schedule = list[tuple[torch.Tensor, torch.Tensor]]


def wavefront_steps(h: int, w: int, kernel: int = 5) -> int:
    """How many steps ``wavefront_schedule(h, w, kernel)`` has, without building it."""
    return (kernel // 2 + 1) * (h - 1) + w


def wavefront_schedule(h: int, w: int, kernel: int = 5) -> Schedule:
    """[(rows, cols)] per step t = (r + 1) * i + j, rows ascending within a step."""
    s = kernel // 2 + 1
    out = []
    for t in range(wavefront_steps(h, w, kernel)):
        i_lo = max(0, -(-(t - w + 1) // s))
        rows = torch.arange(i_lo, min(h - 1, t // s) + 1, dtype=torch.int64)
        out.append((rows, t - s * rows))
    return out


def serial_schedule(h: int, w: int, kernel: int = 5) -> Schedule:
    """The wavefront order, one position per step (the serial reference)."""
    return [(r[p:p + 1], c[p:p + 1]) for r, c in wavefront_schedule(h, w, kernel)
            for p in range(r.shape[0])]


def schedule_order(schedule: Schedule) -> tuple[torch.Tensor, torch.Tensor]:
    """All (rows, cols) in coding order."""
    return torch.cat([r for r, _ in schedule]), torch.cat([c for _, c in schedule])


# A symbol source: (step, rows, cols, m, idx) -> k, all (P, C) int64; m is the mean grid index.
SymbolSource = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
                        torch.Tensor]


def step_params(sw: StepWeights, grid: ParamGrid, delta: float, y_hat_pad: torch.Tensor,
                psi: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The coder's integers (mean grid index m, scale index), each (P, C) int64, at the
    positions: ``context_step`` then the discretisation (``codec.context.kernels.compiled_params``
    does both in one kernel call)."""
    means, log_scales = context_step(sw, y_hat_pad, psi, rows, cols)
    if sw.integer:
        return discretize_fixed(means, log_scales, grid, delta)
    return discretize_float(means, log_scales, grid, delta)


def run_schedule(sw: StepWeights, grid: ParamGrid, psi: torch.Tensor, shape: tuple, delta: float,
                 schedule: Schedule, symbols: SymbolSource, params_fn=None, commit_fn=None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Walk ``schedule``: parameters by ``step_params``, symbols from ``symbols`` (checked
    against the format's bound, ``codec.coding.check_symbols``, before they can reach the
    int64 buffer), then ``commit_step`` writes y_hat = means_q + k * delta into the window
    buffer. Returns
    (y_hat (C, H, W), k, idx) with k and idx (C, H, W) int64. Integer weights: y_hat is int64
    at ACT_BITS, exact. ``params_fn``/``commit_fn`` replace the two per-step functions (the
    compiled kernels, ``codec.context.kernels.step_hooks``); same signatures, same integers."""
    step_params_ = params_fn or step_params
    commit_step_ = commit_fn or commit_step
    c, h, w = shape
    r = sw.kernel // 2
    integer = sw.integer
    dtype = torch.int64 if integer else torch.float64
    y_pad = pad_latent(torch.zeros((c, h, w), dtype=dtype, device=psi.device), sw.kernel)
    k_all = torch.zeros((c, h, w), dtype=torch.int64, device=psi.device)
    idx_all = torch.zeros_like(k_all)
    on_device = not schedule or schedule[0][0].device == psi.device
    for t, (rows, cols) in enumerate(schedule):
        if not on_device:
            rows, cols = rows.to(psi.device), cols.to(psi.device)
        m, idx = step_params_(sw, grid, delta, y_pad, psi, rows, cols)
        k = symbols(t, rows, cols, m, idx)
        check_symbols(k, delta)
        commit_step_(grid, delta, y_pad, k_all, idx_all, rows, cols, m, k, idx)
    return y_pad[:, r:, r:w + r], k_all, idx_all


def commit_step(grid: ParamGrid, delta: float, y_pad: torch.Tensor, k_all: torch.Tensor,
                idx_all: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, m: torch.Tensor,
                k: torch.Tensor, idx: torch.Tensor) -> None:
    """A coded step into the buffers: y_hat = means_q + k * delta into the window buffer
    ``y_pad`` (int64 at ACT_BITS, exact; float64 for float weights), k and idx into their
    (C, H, W) maps (``codec.context.kernels.compiled_commit`` does the same in one kernel call)."""
    r = (y_pad.shape[2] - k_all.shape[2]) // 2
    if y_pad.dtype == torch.int64:
        v = (m << (ACT_BITS - grid.mean_bits)) + delta_times(k, delta)
    else:
        v = m.double() / 2**grid.mean_bits + k.double() * delta
    y_pad[:, rows + r, cols + r] = v.t()
    k_all[:, rows, cols] = k.t()
    idx_all[:, rows, cols] = idx.t()


def quantizer_source(y: torch.Tensor, grid: ParamGrid, delta: float) -> SymbolSource:
    """The encoder's symbols: k = round((y - means_q) / delta) (float64; the encoder decides)."""
    def source(t, rows, cols, m, idx):
        v = y[:, rows, cols].t().double()
        return torch.round((v - m.double() / 2**grid.mean_bits) / delta).to(torch.int64)
    return source


def ordered_symbols(k: torch.Tensor, idx: torch.Tensor, schedule: Schedule
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(k, idx) (C, H, W) -> flat, in coding order (positions in schedule order, channels
    innermost), ready for ``codec.coding.encode_symbols``."""
    rows, cols = schedule_order(schedule)
    return k[:, rows, cols].t().reshape(-1), idx[:, rows, cols].t().reshape(-1)


class StreamSource:
    """The decoder's symbols: pops each step's symbols off the ANS stream that
    ``codec.coding.encode_symbols`` wrote for the whole latent in coding order."""

    def __init__(self, data: bytes, escapes: EscapeReader):
        self.stream = SymbolStream(data, escapes, what="latent")

    def __call__(self, t, rows, cols, m, idx):
        return self.stream.pop(idx, where=f" at step {t}")

    def finish(self) -> None:
        self.stream.finish()
