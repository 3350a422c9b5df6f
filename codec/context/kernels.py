"""Compiled kernels of the integer context step (``csrc/``), with the PyTorch reference as twin.

``context_step(sw, y_hat_pad, psi, rows, cols)`` has the signature of its twin beside it,
``codec.context.step.context_step``, and gives the same int64 results bit for bit: the C++ kernel
for integer weights on CPU tensors, the CUDA kernel on CUDA tensors, the reference otherwise
(float weights, ``PLIC_KERNELS=0``, or a build that failed or is missing: then ONE warning per
kernel and process, and the reference from then on).

The extensions are JIT-built with ``torch.utils.cpp_extension.load`` into a cache folder,
``$PLIC_BUILD`` or ``build/kernels`` at the repository root, named after a hash of the sources
and the torch version, so a test run reuses the build and an edited source rebuilds.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import warnings
import weakref
from pathlib import Path

import torch

from .intmath import ACT_BITS, ACT_LIMIT, WEIGHT_BITS
from .step import (
    ParamGrid,
    StepWeights,
    delta_parts,
    hyper_partial,
    scale_constants,
)
from .step import context_step as reference_step
from .wavefront import commit_step as reference_commit
from .wavefront import step_params as reference_params

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"
_COMMON = ["context_step.h", "context_step_host.h"]
SOURCES = {"cpu": ["context_step_cpu.cpp"], "cuda": ["context_step_cuda.cu"]}

_lock = threading.Lock()
_loaded: dict[str, object] = {}      # kind -> extension module, or None after a failure
_errors: dict[str, str] = {}


class KernelWarning(RuntimeWarning):
    """A compiled kernel is unavailable; the PyTorch reference is used instead."""


def enabled() -> bool:
    return os.environ.get("PLIC_KERNELS", "1").strip().lower() not in ("0", "off", "false", "no")


def build_dir() -> Path:
    return Path(os.environ.get("PLIC_BUILD") or ROOT / "build") / "kernels"


def _source_hash(kind: str) -> str:
    h = hashlib.sha256(torch.__version__.encode())
    for name in _COMMON + SOURCES[kind]:
        h.update(name.encode() + b"\0" + (CSRC / name).read_bytes())
    return h.hexdigest()[:12]


def _build(kind: str, verbose: bool = False):
    from torch.utils import cpp_extension

    name = f"plic_ctx_{kind}_{_source_hash(kind)}"
    folder = build_dir() / name
    folder.mkdir(parents=True, exist_ok=True)
    srcs = [str(CSRC / s) for s in SOURCES[kind]]
    flags = ["-O3"]
    if kind == "cpu":
        return cpp_extension.load(name, srcs, extra_cflags=flags,
                                  build_directory=str(folder), verbose=verbose)
    return cpp_extension.load(name, srcs, extra_cflags=flags, extra_cuda_cflags=["-O3"],
                              build_directory=str(folder), verbose=verbose)


def load(kind: str = "cpu", verbose: bool = False):
    """The built extension for ``kind`` ('cpu' or 'cuda'), building it on first use (or
    reusing the cache), or None: silently when ``PLIC_KERNELS=0``; after a failed build with
    one ``KernelWarning``, and the build is not retried in this process."""
    if not enabled():
        return None
    with _lock:
        if kind in _loaded:
            return _loaded[kind]
        try:
            mod = _build(kind, verbose)
        except Exception as e:  # compiler missing, nvcc missing, compile error, bad cache
            _errors[kind] = f"{type(e).__name__}: {e}"
            mod = None
            warnings.warn(f"plic: the {kind} context-step kernel is unavailable, using the "
                          f"PyTorch reference ({_errors[kind].splitlines()[0][:300]})",
                          KernelWarning, stacklevel=3)
        _loaded[kind] = mod
        return mod


def error(kind: str) -> str | None:
    """Why ``kind``'s build failed in this process (None: not tried, or it worked)."""
    return _errors.get(kind)


def reset() -> None:
    """Forget loaded/failed builds (tests)."""
    with _lock:
        _loaded.clear()
        _errors.clear()


def backend(sw: StepWeights, device: torch.device | str) -> str:
    """Which implementation ``context_step`` uses for these weights on this device:
    'cpu' or 'cuda' (compiled) or 'reference'."""
    if not sw.integer:
        return "reference"
    kind = "cuda" if torch.device(device).type == "cuda" else "cpu"
    if torch.device(device).type not in ("cpu", "cuda"):
        return "reference"
    return kind if load(kind) is not None else "reference"


def step_hooks(sw: StepWeights, device: torch.device | str):
    """The coder's per-step functions for these weights on this device: ``(params_fn,
    commit_fn)`` of the compiled kernel (built on first use, then cached), or ``(None, None)``
    for the PyTorch reference (float weights, ``PLIC_KERNELS=0``, or no build: one warning).
    Both give the same integers, so streams decode identically either way."""
    if not enabled():
        return None, None
    kind = backend(sw, device)
    if kind == "reference":
        return None, None
    mod = load(kind)
    return (functools.partial(compiled_params, mod), functools.partial(compiled_commit, mod))


def compiled_step(mod, sw: StepWeights, y_hat_pad: torch.Tensor, psi: torch.Tensor,
                  rows: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Call a built extension directly (no fallback): (means, log_scales), each (P, C)."""
    c = lambda t: t.contiguous()  # noqa: E731
    means, log_scales = mod.context_step(
        c(y_hat_pad), c(psi), c(rows), c(cols), c(sw.offsets), sw.kernel, sw.channels,
        sw.n_blocks, [c(w) for w, _ in sw.layers], [c(b) for _, b in sw.layers],
        [c(s) for s in sw.slopes], WEIGHT_BITS, ACT_LIMIT)
    return means, log_scales


def compiled_params(mod, sw: StepWeights, grid: ParamGrid, delta: float,
                    y_hat_pad: torch.Tensor, psi: torch.Tensor, rows: torch.Tensor,
                    cols: torch.Tensor, split: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``discretize_fixed(*compiled_step(...), grid, delta)`` in one call of a built extension:
    (m, idx), each (P, C) int64. ``split``: the CPU kernel gets the first head layer's hyper
    half precomputed for the whole latent (``hyper_partial``, once per decode), so a step
    multiplies only the context half; same integers (the CUDA kernel reads psi itself)."""
    split = split and psi.device.type == "cpu"
    offset, inv_step = scale_constants(grid, float(delta))
    c = lambda t: t.contiguous()  # noqa: E731
    m, idx = mod.context_params(
        c(y_hat_pad), c(psi), c(rows), c(cols), c(sw.offsets), sw.kernel, sw.channels,
        sw.n_blocks, [c(w) for w, _ in sw.layers], [c(b) for _, b in sw.layers],
        [c(s) for s in sw.slopes], WEIGHT_BITS, ACT_LIMIT, ACT_BITS - grid.mean_bits, offset,
        inv_step, ACT_BITS + WEIGHT_BITS, grid.levels,
        _psi_head(sw, psi) if split else _NO_TENSOR)
    return m, idx


_NO_TENSOR = torch.empty(0, dtype=torch.int64)
_psi_head_cache: list = []   # [(key, psi_head)]: the last one (a decoder calls with one psi)


def _psi_head(sw: StepWeights, psi: torch.Tensor) -> torch.Tensor:
    """``hyper_partial(sw, psi)``, computed once per (psi, weights) and reused by every step of
    a decode: the key holds weak references and the in-place version counters, so a new or
    modified tensor is never matched."""
    w = sw.layers[1 + 2 * sw.n_blocks][0]
    if _psi_head_cache:
        (psi_ref, psi_ver, w_ref, w_ver), val = _psi_head_cache[0]
        if psi_ref() is psi and psi_ver == psi._version and w_ref() is w and w_ver == w._version:
            return val
    val = hyper_partial(sw, psi)
    _psi_head_cache[:] = [((weakref.ref(psi), psi._version, weakref.ref(w), w._version), val)]
    return val


def compiled_commit(mod, grid: ParamGrid, delta: float, y_pad: torch.Tensor,
                    k_all: torch.Tensor, idx_all: torch.Tensor, rows: torch.Tensor,
                    cols: torch.Tensor, m: torch.Tensor, k: torch.Tensor,
                    idx: torch.Tensor) -> None:
    """``codec.context.wavefront.commit_step`` in one call of a built extension (int64
    buffers); the reference otherwise."""
    if y_pad.dtype != torch.int64:
        return reference_commit(grid, delta, y_pad, k_all, idx_all, rows, cols, m, k, idx)
    num, lshift = delta_parts(delta)
    c = lambda t: t.contiguous()  # noqa: E731
    mod.commit_step(y_pad, k_all, idx_all, c(rows), c(cols), c(m), c(k), c(idx),
                    ACT_BITS - grid.mean_bits, num, lshift)


def step_params(sw: StepWeights, grid: ParamGrid, delta: float, y_hat_pad: torch.Tensor,
                psi: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``codec.context.wavefront.step_params`` on the fastest available implementation."""
    kind = backend(sw, y_hat_pad.device)
    if kind == "reference":
        return reference_params(sw, grid, delta, y_hat_pad, psi, rows, cols)
    return compiled_params(_loaded[kind], sw, grid, delta, y_hat_pad, psi, rows, cols)


def context_step(sw: StepWeights, y_hat_pad: torch.Tensor, psi: torch.Tensor,
                 rows: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``codec.context.step.context_step``, on the fastest available implementation."""
    kind = backend(sw, y_hat_pad.device)
    if kind == "reference":
        return reference_step(sw, y_hat_pad, psi, rows, cols)
    return compiled_step(_loaded[kind], sw, y_hat_pad, psi, rows, cols)
