"""CUDA context-step kernel (issue 6): the sources compile here (in the default run, so CI checks
it: about 4 min of nvcc on a 2-core box the first time, then the build cache; skipped where there is
no nvcc), and on a GPU its three entry points (context_step, context_params, commit_step: the CPU
kernel's) equal the PyTorch reference exactly and a stream encoded on the GPU decodes on the CPU
(C++ kernel) to identical latents (marked gpu)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import codec.context.wavefront as wavefront
from codec.coding import EscapeReader, EscapeWriter, encode_symbols
from codec.context import kernels
from codec.context.intmath import ACT_BITS, to_fixed
from codec.context.step import context_step, discretize_fixed, pad_latent, step_weights
from codec.context.wavefront import (
    StreamSource,
    ordered_symbols,
    quantizer_source,
    run_schedule,
    wavefront_schedule,
)

from .test_kernels import GRID, SHAPES, _assert_same, _latents, _model, _position_sets

CUDA_HOME = os.environ.get("CUDA_HOME") or "/usr/local/cuda"
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_cuda_sources_compile():
    if not Path(CUDA_HOME, "bin", "nvcc").exists() and shutil.which("nvcc") is None:
        pytest.skip(f"no nvcc under {CUDA_HOME}")
    if torch.version.cuda is None:
        pytest.skip("this torch is a CPU-only build: CUDA extensions need torch's CUDA build")
    env = {**os.environ, "CUDA_HOME": CUDA_HOME, "PLIC_KERNELS": "1",
           "TORCH_CUDA_ARCH_LIST": os.environ.get("TORCH_CUDA_ARCH_LIST", "9.0")}
    code = ("import warnings, codec.context.kernels as k;"
            "warnings.simplefilter('error', k.KernelWarning);"
            "m = k.load('cuda'); print(m.__file__, all(callable(getattr(m, f)) for f in "
            "('context_step', 'context_params', 'commit_step')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=1200, env=env)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert out.stdout.strip().endswith("True")


@pytest.fixture(scope="module")
def cuda_ext():
    mod = kernels.load("cuda")
    assert mod is not None, kernels.error("cuda")
    return mod


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("c,ch,h,w,kernel,blocks", SHAPES + [(192, 384, 6, 9, 5, 1)])
def test_cuda_kernel_equals_reference(cuda_ext, c, ch, h, w, kernel, blocks):
    sw = step_weights(_model(c, ch, kernel, blocks, seed=h * w + c))
    y_pad, psi = _latents(c, ch, h, w, kernel, seed=blocks)
    sw_d, y_d, psi_d = sw.to("cuda"), y_pad.cuda(), psi.cuda()
    for rows, cols in _position_sets(h, w, kernel):
        got = kernels.compiled_step(cuda_ext, sw_d, y_d, psi_d, rows.cuda(), cols.cuda())
        _assert_same([t.cpu() for t in got], context_step(sw, y_pad, psi, rows, cols))
    assert kernels.backend(sw_d, "cuda") == "cuda"


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("delta", [1.0, 0.37, 1e-6, 5000.0])
@pytest.mark.parametrize("c,ch,h,w,kernel,blocks", SHAPES[:3])
def test_cuda_fused_params_equal_step_then_discretize(cuda_ext, c, ch, h, w, kernel, blocks,
                                                      delta):
    sw = step_weights(_model(c, ch, kernel, blocks, seed=h + w))
    y_pad, psi = _latents(c, ch, h, w, kernel, seed=blocks + 7)
    sw_d, y_d, psi_d = sw.to("cuda"), y_pad.cuda(), psi.cuda()
    for rows, cols in _position_sets(h, w, kernel):
        ref = discretize_fixed(*context_step(sw, y_pad, psi, rows, cols), GRID, delta)
        got = kernels.compiled_params(cuda_ext, sw_d, GRID, delta, y_d, psi_d, rows.cuda(),
                                      cols.cuda())
        _assert_same([t.cpu() for t in got], ref)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("delta", [1.0, 0.375, 3.0, 5000.0, 0.37, 1e-6])
def test_cuda_commit_equals_the_reference(cuda_ext, delta):
    delta = float(torch.tensor(delta, dtype=torch.float32))  # as the bitstream stores it
    c, h, w, kernel = 5, 7, 9, 5
    g = torch.Generator().manual_seed(int(delta * 100))
    bufs = [pad_latent(torch.randint(-99, 99, (c, h, w), generator=g), kernel),
            torch.randint(-9, 9, (c, h, w), generator=g),
            torch.randint(0, 9, (c, h, w), generator=g)]
    bufs_d = [t.cuda() for t in bufs]
    for rows, cols in _position_sets(h, w, kernel):
        p = rows.numel()
        m = torch.randint(-(1 << 40), 1 << 40, (p, c), generator=g)
        k = torch.randint(-(1 << 45), 1 << 45, (p, c), generator=g)
        k[0, :3] = torch.tensor([0, -1, 1])
        idx = torch.randint(0, 64, (p, c), generator=g)
        wavefront.commit_step(GRID, delta, *bufs, rows, cols, m, k, idx)
        kernels.compiled_commit(cuda_ext, GRID, delta, *bufs_d, *(t.cuda() for t in
                                                                  (rows, cols, m, k, idx)))
        _assert_same([t.cpu() for t in bufs_d], bufs)


@pytest.mark.gpu
@needs_gpu
def test_gpu_encode_cpu_decode_identical_latents(cuda_ext):
    c, ch, h, w, kernel, delta = 6, 8, 9, 13, 5, 1.0
    sw = step_weights(_model(c, ch, kernel, 1, seed=11))
    g = torch.Generator().manual_seed(5)
    y = torch.randn(c, h, w, generator=g) * 3.0
    psi = to_fixed(torch.randn(ch, h, w, generator=g), ACT_BITS)
    sched = wavefront_schedule(h, w, kernel)
    sw_d = sw.to("cuda")
    hooks = kernels.step_hooks(sw_d, "cuda")  # the GPU encoder's path: all three entry points
    assert all(f.func in (kernels.compiled_params, kernels.compiled_commit) for f in hooks)
    y_enc, k, idx = run_schedule(sw_d, GRID, psi.cuda(), (c, h, w), delta, sched,
                                 quantizer_source(y.cuda(), GRID, delta), *hooks)
    ks, ids = ordered_symbols(k.cpu(), idx.cpu(), sched)
    esc = EscapeWriter()
    data = encode_symbols(ks, ids, esc)
    src = StreamSource(data, EscapeReader(bytes(esc.buf)))
    y_dec, _, _ = run_schedule(sw, GRID, psi, (c, h, w), delta, sched, src)
    src.finish()
    assert torch.equal(y_dec, y_enc.cpu())
