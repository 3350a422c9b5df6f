"""csrc/ context-step kernels (issue 6): the C++ CPU kernel equals the PyTorch reference
``codec.context.step.context_step`` exactly; the loader caches builds and falls back with one
warning; a stream encoded with the reference decodes with the kernel to identical latents.

The first run builds the extension (about 1.5 min on the 2-core dev box); later runs reuse
``build/kernels`` (or ``$PLIC_BUILD``)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest
import torch

import codec.context.wavefront as wavefront
from codec.coding import EscapeReader, EscapeWriter, encode_symbols
from codec.context import kernels
from codec.context.intmath import ACT_BITS, ACT_LIMIT, WEIGHT_BITS, to_fixed
from codec.context.masked import ContextModel
from codec.context.step import (
    ParamGrid,
    context_step,
    discretize_fixed,
    hyper_partial,
    pad_latent,
    step_weights,
)
from codec.context.wavefront import (
    StreamSource,
    ordered_symbols,
    quantizer_source,
    run_schedule,
    schedule_order,
    wavefront_schedule,
)

GRID = ParamGrid.from_entropy()


@pytest.fixture(scope="module")
def cpu_ext():
    with warnings.catch_warnings():
        warnings.simplefilter("error", kernels.KernelWarning)
        mod = kernels.load("cpu")
    assert mod is not None, kernels.error("cpu")
    return mod


def _model(c, ch, kernel, blocks, seed, gain=2.0):
    torch.manual_seed(seed)
    m = ContextModel(c, ch, kernel=kernel, blocks=blocks)
    with torch.no_grad():  # non-trivial PReLUs and larger weights than the init
        for p in m.parameters():
            p.mul_(gain)
    return m


def _latents(c, ch, h, w, kernel, seed, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    y = to_fixed(torch.randn(c, h, w, generator=g) * scale, ACT_BITS)
    psi = to_fixed(torch.randn(ch, h, w, generator=g), ACT_BITS)
    return pad_latent(y, kernel), psi


def _position_sets(h, w, kernel):
    """Real wavefront steps (first, widest, last), a single position, and every position."""
    sched = wavefront_schedule(h, w, kernel)
    widest = max(sched, key=lambda rc: rc[0].numel())
    rows, cols = schedule_order(sched)
    return [sched[0], widest, sched[len(sched) // 2], sched[-1], (rows[-1:], cols[-1:]),
            (rows, cols)]


def _assert_same(a, b):
    for x, y in zip(a, b):
        assert x.dtype == y.dtype == torch.int64
        assert x.shape == y.shape
        assert torch.equal(x, y), f"{int((x != y).sum())} of {x.numel()} values differ"


SHAPES = [  # C, Ch, H, W, kernel, blocks
    (4, 6, 7, 10, 5, 1),
    (3, 5, 12, 3, 3, 2),
    (12, 24, 9, 14, 5, 1),
    (2, 3, 1, 6, 7, 0),
    (6, 4, 16, 24, 5, 3),
]


@pytest.mark.parametrize("c,ch,h,w,kernel,blocks", SHAPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_cpu_kernel_equals_reference(cpu_ext, c, ch, h, w, kernel, blocks, threads):
    sw = step_weights(_model(c, ch, kernel, blocks, seed=h * w + c))
    y_pad, psi = _latents(c, ch, h, w, kernel, seed=blocks)
    n = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for rows, cols in _position_sets(h, w, kernel):
            _assert_same(kernels.compiled_step(cpu_ext, sw, y_pad, psi, rows, cols),
                         context_step(sw, y_pad, psi, rows, cols))
    finally:
        torch.set_num_threads(n)


def _random_int_weights(c, ch, kernel, blocks, seed, wmax):
    """StepWeights straight from random integers: odd products, negative halves to round,
    and activations that hit the clamp (the reference's edge cases, not a trained model's)."""
    g = torch.Generator().manual_seed(seed)
    sw = step_weights(ContextModel(c, ch, kernel=kernel, blocks=blocks))
    ri = lambda *s, m=wmax: torch.randint(-m, m + 1, s, generator=g)  # noqa: E731
    sw.layers = [(ri(*w.shape), ri(*b.shape, m=wmax << ACT_BITS)) for w, b in sw.layers]
    sw.slopes = [ri(*s.shape, m=1 << WEIGHT_BITS) for s in sw.slopes]
    return sw


@pytest.mark.parametrize("wmax,ymax", [(3, 1 << 24), (1 << 14, 1 << 24), (1 << 18, 1 << 24),
                                       (1 << 33, 1 << 24), (1 << 10, 1 << 40)])
def test_cpu_kernel_equals_reference_on_raw_integers(cpu_ext, wmax, ymax):
    """Weights or inputs beyond int32 (the last two cases) take the kernel's int64 layer,
    the others its int32 one; sums that wrap around int64 wrap alike."""
    c, ch, h, w, kernel = 5, 7, 8, 11, 5
    sw = _random_int_weights(c, ch, kernel, 2, seed=wmax, wmax=wmax)
    g = torch.Generator().manual_seed(1)
    y = torch.randint(-ymax, ymax, (c, h, w), generator=g)
    psi = torch.randint(-(1 << 20), 1 << 20, (ch, h, w), generator=g)
    y_pad = pad_latent(y, kernel)
    rows, cols = schedule_order(wavefront_schedule(h, w, kernel))
    ref = context_step(sw, y_pad, psi, rows, cols)
    if wmax > 1 << 16:  # the clamp is exercised (and int64 sums stay below 2**62)
        assert bool((ref[0].abs() == ACT_LIMIT).any() or (ref[1].abs() == ACT_LIMIT).any())
    _assert_same(kernels.compiled_step(cpu_ext, sw, y_pad, psi, rows, cols), ref)


@pytest.mark.parametrize("split", [True, False])
@pytest.mark.parametrize("delta", [1.0, 0.37, 1e-6, 5000.0])
@pytest.mark.parametrize("c,ch,h,w,kernel,blocks", SHAPES[:3])
def test_fused_params_equal_step_then_discretize(cpu_ext, c, ch, h, w, kernel, blocks, delta,
                                                 split):
    """context_params = discretize_fixed(context_step): mean rounding, scale index clamped at
    both ends (tiny and huge delta), on real steps and on raw integers that wrap; with and
    without the precomputed hyper half of the head (float64 and int64 products)."""
    sw = step_weights(_model(c, ch, kernel, blocks, seed=h + w))
    y_pad, psi = _latents(c, ch, h, w, kernel, seed=blocks + 7)
    cases = [(sw, y_pad, psi, rows, cols) for rows, cols in _position_sets(h, w, kernel)]
    raw = _random_int_weights(c, ch, kernel, blocks, seed=c, wmax=1 << 18)
    rows, cols = schedule_order(wavefront_schedule(h, w, kernel))
    cases.append((raw, y_pad, psi, rows, cols))
    big_psi = torch.randint(-(1 << 40), 1 << 40, psi.shape, generator=torch.Generator())
    cases.append((raw, y_pad, big_psi, rows, cols))  # beyond 2**53: the int64 product
    seen = set()
    for sw_, y_, psi_, rows, cols in cases:
        ref = discretize_fixed(*context_step(sw_, y_, psi_, rows, cols), GRID, delta)
        got = kernels.compiled_params(cpu_ext, sw_, GRID, delta, y_, psi_, rows, cols, split)
        _assert_same(got, ref)
        seen.update(ref[1].unique().tolist())
    if delta in (1e-6, 5000.0):  # the clamp was exercised
        assert {0, GRID.levels - 1} & seen


def test_hyper_partial_is_exact_and_never_stale(cpu_ext):
    c, ch, h, w, kernel = 4, 9, 6, 8, 5
    sw = step_weights(_model(c, ch, kernel, 1, seed=2))
    y_pad, psi = _latents(c, ch, h, w, kernel, seed=3)
    w_psi = sw.layers[3][0][:, -ch:]
    for p in (psi, torch.randint(-(1 << 45), 1 << 45, psi.shape)):
        want = (p.reshape(ch, -1).t() @ w_psi.t()).t().reshape(-1, h, w)  # int64 GEMM
        assert torch.equal(hyper_partial(sw, p), want)
    rows, cols = schedule_order(wavefront_schedule(h, w, kernel))
    for change in (lambda: psi.add_(1 << 12), lambda: sw.layers[3][0].mul_(3)):
        kernels.compiled_params(cpu_ext, sw, GRID, 1.0, y_pad, psi, rows, cols)  # cached
        change()  # in place: the cached hyper half must not be used again
        ref = discretize_fixed(*context_step(sw, y_pad, psi, rows, cols), GRID, 1.0)
        _assert_same(kernels.compiled_params(cpu_ext, sw, GRID, 1.0, y_pad, psi, rows, cols),
                     ref)


@pytest.mark.parametrize("delta", [1.0, 0.375, 3.0, 5000.0, 0.37, 1e-6])
def test_compiled_commit_equals_the_reference(cpu_ext, delta):
    """Window buffer, symbol and index maps written alike, on real steps' positions, with
    symbols and means that make k * delta wrap and round both ways."""
    delta = float(torch.tensor(delta, dtype=torch.float32))  # as the bitstream stores it
    c, h, w, kernel = 5, 7, 9, 5
    g = torch.Generator().manual_seed(int(delta * 100))
    bufs = [pad_latent(torch.randint(-99, 99, (c, h, w), generator=g), kernel),
            torch.randint(-9, 9, (c, h, w), generator=g),
            torch.randint(0, 9, (c, h, w), generator=g)]
    for rows, cols in _position_sets(h, w, kernel):
        p = rows.numel()
        m = torch.randint(-(1 << 40), 1 << 40, (p, c), generator=g)
        k = torch.randint(-(1 << 45), 1 << 45, (p, c), generator=g)
        k[0, :3] = torch.tensor([0, -1, 1])
        idx = torch.randint(0, 64, (p, c), generator=g)
        ref = [t.clone() for t in bufs]
        wavefront.commit_step(GRID, delta, *ref, rows, cols, m, k, idx)
        kernels.compiled_commit(cpu_ext, GRID, delta, *bufs, rows, cols, m, k, idx)
        _assert_same(bufs, ref)


def test_cpu_kernel_rejects_bad_input(cpu_ext):
    c, ch, h, w, kernel = 3, 4, 5, 6, 5
    sw = step_weights(_model(c, ch, kernel, 1, seed=0))
    y_pad, psi = _latents(c, ch, h, w, kernel, seed=0)
    rows, cols = torch.tensor([h]), torch.tensor([0])
    with pytest.raises(RuntimeError, match="outside"):
        kernels.compiled_step(cpu_ext, sw, y_pad, psi, rows, cols)
    with pytest.raises(RuntimeError, match="int64"):
        kernels.compiled_step(cpu_ext, sw, y_pad.double(), psi, rows - 1, cols)
    with pytest.raises(RuntimeError, match="psi"):
        kernels.compiled_step(cpu_ext, sw, y_pad, psi[:, 1:], rows - 1, cols)


def test_dispatch_uses_the_kernel_for_integer_weights_only(cpu_ext):
    model = _model(4, 6, 5, 1, seed=3)
    sw = step_weights(model)
    assert kernels.backend(sw, "cpu") == "cpu"
    assert kernels.backend(step_weights(model, integer=False), "cpu") == "reference"
    y_pad, psi = _latents(4, 6, 7, 10, 5, seed=3)
    rows, cols = wavefront_schedule(7, 10)[9]
    _assert_same(kernels.context_step(sw, y_pad, psi, rows, cols),
                 context_step(sw, y_pad, psi, rows, cols))


def test_disabled_kernels_use_the_reference_silently(monkeypatch):
    monkeypatch.setenv("PLIC_KERNELS", "0")
    sw = step_weights(_model(4, 6, 5, 1, seed=3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernels.backend(sw, "cpu") == "reference"


def test_failed_build_falls_back_with_one_warning(tmp_path, monkeypatch):
    """A real compiler failure (a broken source in a copy of csrc/), not a mocked one."""
    broken = tmp_path / "csrc"
    broken.mkdir()
    for name in kernels._COMMON:
        (broken / name).write_bytes((kernels.CSRC / name).read_bytes())
    (broken / "context_step_cpu.cpp").write_text("#error forced build failure\n")
    monkeypatch.setattr(kernels, "CSRC", broken)
    monkeypatch.setenv("PLIC_BUILD", str(tmp_path / "build"))
    monkeypatch.setattr(kernels, "_loaded", {})
    monkeypatch.setattr(kernels, "_errors", {})
    sw = step_weights(_model(4, 6, 5, 1, seed=4))
    y_pad, psi = _latents(4, 6, 7, 10, 5, seed=4)
    rows, cols = wavefront_schedule(7, 10)[12]
    ref = context_step(sw, y_pad, psi, rows, cols)
    with pytest.warns(kernels.KernelWarning) as record:
        for _ in range(3):
            _assert_same(kernels.context_step(sw, y_pad, psi, rows, cols), ref)
    assert len([r for r in record if issubclass(r.category, kernels.KernelWarning)]) == 1
    assert "forced build failure" in kernels.error("cpu")
    assert kernels.backend(sw, "cpu") == "reference"


def test_build_cache_is_reused_by_a_new_process(cpu_ext):
    so = cpu_ext.__file__
    before = os.stat(so).st_mtime_ns
    code = ("import warnings, codec.context.kernels as k; warnings.simplefilter('error');"
            "m = k.load('cpu'); print(m.__file__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PLIC_KERNELS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == so
    assert os.stat(so).st_mtime_ns == before  # not rebuilt


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("scale,delta", [(3.0, 1.0), (0.3, 0.5), (2000.0, 1.0)])
def test_reference_encode_kernel_decode_identical_latents(cpu_ext, monkeypatch, scale, delta,
                                                          fused):
    c, ch, h, w, kernel = 6, 8, 9, 13, 5
    model = _model(c, ch, kernel, 1, seed=11)
    sw = step_weights(model)
    g = torch.Generator().manual_seed(5)
    y = torch.randn(c, h, w, generator=g) * scale
    psi = to_fixed(torch.randn(ch, h, w, generator=g), ACT_BITS)
    sched = wavefront_schedule(h, w, kernel)
    # the encoder runs the reference
    assert wavefront.context_step is context_step
    assert wavefront.step_params is kernels.reference_params
    y_enc, k, idx = run_schedule(sw, GRID, psi, (c, h, w), delta, sched,
                                 quantizer_source(y, GRID, delta))
    ks, ids = ordered_symbols(k, idx, sched)
    esc = EscapeWriter()
    data = encode_symbols(ks, ids, esc)

    calls = []

    def kernel_step(*args):
        calls.append(1)
        return kernels.compiled_step(cpu_ext, *args)

    def kernel_params(*args):
        calls.append(1)
        return kernels.compiled_params(cpu_ext, *args)

    if fused:  # the decoder's hot loop: step + discretisation, write-back: one call each
        monkeypatch.setattr(wavefront, "step_params", kernel_params)
        monkeypatch.setattr(wavefront, "commit_step",
                            lambda *args: kernels.compiled_commit(cpu_ext, *args))
    else:
        monkeypatch.setattr(wavefront, "context_step", kernel_step)
    src = StreamSource(data, EscapeReader(bytes(esc.buf)))
    y_dec, k_dec, idx_dec = run_schedule(sw, GRID, psi, (c, h, w), delta, sched, src)
    src.finish()
    assert len(calls) == len(sched)
    assert torch.equal(y_dec, y_enc) and torch.equal(k_dec, k) and torch.equal(idx_dec, idx)
