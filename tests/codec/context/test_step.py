"""Context model: schedule validity, the step's receptive field, integer vs float agreement,
serial vs wavefront decoding (issue 5)."""

from __future__ import annotations

import pytest
import torch

from codec.coding import CodingError, EscapeReader, EscapeWriter, encode_symbols
from codec.context.intmath import ACT_BITS, from_fixed, to_fixed
from codec.context.masked import ContextModel, causal_offsets
from codec.context.step import (
    ParamGrid,
    context_step,
    pad_latent,
    step_weights,
    whole_tensor_params,
)
from codec.context.wavefront import (
    StreamSource,
    ordered_symbols,
    quantizer_source,
    run_schedule,
    schedule_order,
    serial_schedule,
    wavefront_schedule,
)

C, CH, H, W = 4, 6, 7, 10
GRID = ParamGrid.from_entropy()


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _model(seed=0, kernel=5):
    torch.manual_seed(seed)
    m = ContextModel(C, CH, kernel=kernel)
    with torch.no_grad():  # a non-trivial PReLU and larger weights than the init
        for p in m.parameters():
            p.mul_(2.0)
    return m


def _inputs(seed=1, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(C, H, W, generator=g) * scale
    psi = torch.randn(CH, H, W, generator=g)
    return y, to_fixed(psi, ACT_BITS)


@pytest.mark.parametrize("kernel,h,w", [(5, 7, 10), (5, 1, 6), (5, 12, 3), (3, 6, 9)])
def test_schedule_visits_each_position_once_after_its_context(kernel, h, w):
    sched = wavefront_schedule(h, w, kernel)
    assert len(sched) == (kernel // 2 + 1) * (h - 1) + w
    step_of = torch.full((h, w), -1)
    for t, (rows, cols) in enumerate(sched):
        assert bool((step_of[rows, cols] == -1).all())
        step_of[rows, cols] = t
    assert bool((step_of >= 0).all())
    for i in range(h):
        for j in range(w):
            for di, dj in causal_offsets(kernel):
                a, b = i + di, j + dj
                if 0 <= a < h and 0 <= b < w:
                    assert step_of[a, b] < step_of[i, j]
    assert len(serial_schedule(h, w, kernel)) == h * w


def test_step_sees_exactly_the_causal_window():
    sw = step_weights(_model())
    y, psi = _inputs()
    y_fx = to_fixed(y, ACT_BITS)
    rows, cols = torch.tensor([3]), torch.tensor([4])
    base = context_step(sw, pad_latent(y_fx, 5), psi, rows, cols)
    causal = {(3 + di, 4 + dj) for di, dj in causal_offsets(5)}
    changed = set()
    for i in range(H):
        for j in range(W):
            y2 = y_fx.clone()
            y2[:, i, j] += 5 << ACT_BITS
            out = context_step(sw, pad_latent(y2, 5), psi, rows, cols)
            if not all(torch.equal(a, b) for a, b in zip(out, base)):
                changed.add((i, j))
    assert changed == causal


def test_integer_step_matches_the_float_model():
    model = _model()
    sw_int, sw_float = step_weights(model), step_weights(model, integer=False)
    y, psi_fx = _inputs()
    y_hat = torch.round(y)
    rows, cols = schedule_order(wavefront_schedule(H, W))
    means, log_scales = whole_tensor_params(model, y_hat, from_fixed(psi_fx, ACT_BITS))
    ref_m, ref_s = means[:, rows, cols].t(), log_scales[:, rows, cols].t()
    fm, fs = context_step(sw_float, pad_latent(y_hat.double(), 5),
                          from_fixed(psi_fx, ACT_BITS), rows, cols)
    assert torch.allclose(fm, ref_m, atol=1e-9) and torch.allclose(fs, ref_s, atol=1e-9)
    im, is_ = context_step(sw_int, pad_latent(to_fixed(y_hat, ACT_BITS), 5), psi_fx, rows, cols)
    assert im.dtype == torch.int64
    # fixed point error: a few units of 2**-12 per layer, far below the 1/64 mean grid
    assert float((from_fixed(im, ACT_BITS) - ref_m).abs().max()) < 0.01
    assert float((from_fixed(is_, ACT_BITS) - ref_s).abs().max()) < 0.01


def _encode(model, y, psi_fx, delta=1.0):
    sw = step_weights(model)
    sched = wavefront_schedule(H, W)
    y_hat, k, idx = run_schedule(sw, GRID, psi_fx, (C, H, W), delta, sched,
                                 quantizer_source(y, GRID, delta))
    ks, ids = ordered_symbols(k, idx, sched)
    esc = EscapeWriter()
    data = encode_symbols(ks, ids, esc)
    return y_hat, data, bytes(esc.buf)


def _decode(model, data, escapes, psi_fx, serial=False, delta=1.0):
    sw = step_weights(model)
    sched = (serial_schedule if serial else wavefront_schedule)(H, W)
    src = StreamSource(data, EscapeReader(escapes))
    y_hat, _, _ = run_schedule(sw, GRID, psi_fx, (C, H, W), delta, sched, src)
    src.finish()
    return y_hat


@pytest.mark.parametrize("scale,delta", [(3.0, 1.0), (0.3, 0.5), (2000.0, 1.0)])
def test_wavefront_and_serial_decode_the_encoders_latents(scale, delta):
    model = _model()
    y, psi_fx = _inputs(scale=scale)
    y_hat, data, esc = _encode(model, y, psi_fx, delta)
    if scale > 1000:
        assert len(esc) > 0  # escapes exercised
    assert float((from_fixed(y_hat, ACT_BITS) - y).abs().max()) <= delta / 2 + 1e-9
    wave = _decode(model, data, esc, psi_fx, delta=delta)
    serial = _decode(model, data, esc, psi_fx, serial=True, delta=delta)
    assert torch.equal(wave, y_hat) and torch.equal(serial, y_hat)


def test_truncated_stream_is_an_error():
    model = _model()
    y, psi_fx = _inputs()
    _, data, esc = _encode(model, y, psi_fx)
    with pytest.raises(CodingError):
        _decode(model, data + b"\x01\x00\x00\x00", esc, psi_fx)


def test_integer_parameters_ignore_threads_and_float_precision():
    model = _model()
    y, psi_fx = _inputs()
    ref, _, _ = _encode(model, y, psi_fx)
    torch.set_num_threads(2)
    two, _, _ = _encode(model, y, psi_fx)
    torch.set_num_threads(1)
    dbl, _, _ = _encode(model.double(), y.double(), psi_fx)
    assert torch.equal(ref, two) and torch.equal(ref, dbl)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fixed_features_accept_the_grid_only(dtype):
    from codec.context.latent import _fixed_features

    g = torch.Generator().manual_seed(0)
    fx = torch.randint(-(1 << 22), 1 << 22, (1, 3, 4, 5), generator=g)
    feats = from_fixed(fx, ACT_BITS).to(dtype)
    assert torch.equal(_fixed_features(feats), fx[0])
    assert torch.equal(_fixed_features(feats), to_fixed(feats[0], ACT_BITS))
    for bad in (2.0**-(ACT_BITS + 1), float("nan"), float("inf")):
        off = feats.clone()
        off[0, 1, 2, 3] += bad
        with pytest.raises(CodingError, match="not integer-exact"):
            _fixed_features(off)
