"""The context model inside codec models (hific + context, mbt2018) and through codec.api."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap

import pytest
import torch

from codec import api
from codec.coding import EscapeReader, EscapeWriter
from codec.context.latent import WavefrontLatentCoder
from codec.models import build

REPO = __import__("pathlib").Path(__file__).resolve().parents[3]
CONTEXT_TINY = {"hific": dict(context=True, coding_order="wavefront"), "mbt2018": {}}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _model(name="hific", seed=0):
    torch.manual_seed(seed)
    m = build(name, "tiny", **CONTEXT_TINY[name])
    with torch.no_grad():  # one noisy step away from the init, so parameters are not symmetric
        for p in m.context.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


def _x(seed=1, size=64):
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _latents(m, seed=1, size=64):
    x = _x(seed, size)
    with torch.no_grad():
        lat = m.analysis(x)
        z_hat = torch.round(lat[1])
        return lat[0], m.h_s[0](z_hat)


@pytest.mark.parametrize("name", ["hific", "mbt2018"])
def test_api_round_trip_decodes_the_encoders_latents(name, sample_images):
    m = _model(name)
    img = next(iter(sample_images.values()))[:64, :128]
    res = api.encode(img, m, bin_width=0.75)
    dec = api.decode(res.data, m)
    assert dec.est_bits == pytest.approx(res.est_bits, rel=0, abs=1e-6)
    assert dec.image.shape == img.shape
    y, feats = _latents(m)
    coder = WavefrontLatentCoder()
    esc = EscapeWriter()
    code = coder.encode(m, y, feats, 0.75, esc)
    for serial in (False, True):
        out = WavefrontLatentCoder(serial=serial).decode(m, code.data, feats, y.shape, 0.75,
                                                         EscapeReader(bytes(esc.buf)))
        assert torch.equal(out.v_hat, code.v_hat) and torch.equal(out.symbols, code.symbols)
    assert float((code.v_hat - y).abs().max()) <= 0.75 / 2 + 1e-3


def test_parameters_do_not_depend_on_threads_or_float_precision():
    m = _model("hific")
    y, feats = _latents(m)
    esc = EscapeWriter()
    ref = WavefrontLatentCoder().encode(m, y, feats, 1.0, esc).data
    torch.set_num_threads(2)
    y2, feats2 = _latents(m)
    two = WavefrontLatentCoder().encode(m, y, feats2, 1.0, EscapeWriter()).data
    torch.set_num_threads(1)
    m64 = copy.deepcopy(m).double()
    z_hat = torch.round(m.analysis(torch.rand(1, 3, 64, 64))[1])
    with torch.no_grad():
        feats64 = m64.h_s[0](z_hat.double())
        assert torch.equal(feats64, m.h_s[0](z_hat).double())  # integer-exact hyper decoder
        feats64 = m64.h_s[0](torch.round(m.analysis(_x())[1]).double())
    dbl = WavefrontLatentCoder().encode(m64, y.double(), feats64, 1.0, EscapeWriter()).data
    assert ref == two == dbl


def test_training_forward_trains_the_context_model():
    m = _model("hific").train()
    out = m(torch.rand(2, 3, 64, 64), delta=1.0)
    out["bits"]["y"].sum().backward()
    grads = [p.grad for p in m.context.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)
    assert torch.equal(out["y_hat"], out["y_hat"])  # the context saw the likelihood's y_hat


def test_context_is_switchable():
    assert build("hific", "paper").config["context"] is True
    off = build("hific", "small", context=False, coding_order="parallel")
    assert not off.has_context
    old = build("hific", "small", coding_order="parallel")  # a config from before the context
    assert not old.has_context and old.config["context"] is False
    with pytest.raises(ValueError):
        build("hific", "tiny", coding_order="wavefront")
    with pytest.raises(ValueError):
        build("mbt2018", "tiny", context=False)


ENCODE = """
import sys, torch
torch.set_num_threads(1)
from codec import api
from codec.coding import EscapeWriter
from codec.context.latent import WavefrontLatentCoder
m = api.load(sys.argv[1])
g = torch.Generator().manual_seed(1)
with torch.no_grad():
    lat = m.analysis(torch.rand(1, 3, 64, 64, generator=g))
    feats = m.h_s[0](torch.round(lat[1]))
esc = EscapeWriter()
code = WavefrontLatentCoder().encode(m, lat[0], feats, 0.5, esc)
def u8(b):
    return torch.tensor(list(b), dtype=torch.uint8)
torch.save({"data": u8(code.data), "esc": u8(esc.buf), "y_hat": code.v_hat,
            "z_hat": torch.round(lat[1])}, sys.argv[2])
"""

DECODE = """
import sys, torch
torch.set_num_threads(2)
from codec import api
from codec.coding import EscapeReader
from codec.context.latent import WavefrontLatentCoder
m = api.load(sys.argv[1]).double()
s = torch.load(sys.argv[2])
with torch.no_grad():
    feats = m.h_s[0](s["z_hat"].double())
out = WavefrontLatentCoder().decode(m, bytes(s["data"].tolist()), feats, s["y_hat"].shape,
                                    0.5, EscapeReader(bytes(s["esc"].tolist())))
assert torch.equal(out.v_hat, s["y_hat"]), "latents differ"
print("same")
"""


def test_encode_in_one_process_decode_in_another(tmp_path):
    ckpt = api.save(_model("hific"), tmp_path / "m.pt")
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"}
    for script, arg in ((ENCODE, "s.pt"), (DECODE, "s.pt")):
        r = subprocess.run([sys.executable, "-c", textwrap.dedent(script), str(ckpt),
                            str(tmp_path / arg)], capture_output=True, text=True, env=env,
                           cwd=REPO, timeout=300)
        assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "same"


def test_hyper_stage_parameters_are_exact_and_on_the_coder_grid():
    from codec.entropy import SCALE_TABLE, discretize

    m = _model("hific")
    w_hat = torch.round(torch.randn(1, 4, 1, 1) * 3)
    torch.set_num_threads(2)
    means, scales = m.stage_params(1, w_hat)
    torch.set_num_threads(1)
    m64 = copy.deepcopy(m).double()
    means64, scales64 = m64.stage_params(1, w_hat.double())
    means_q, idx = discretize(means, scales, 1.0)
    means_q64, idx64 = discretize(means64, scales64, 1.0)
    assert torch.equal(means_q, means.double())  # already on the mean grid
    assert torch.equal(means_q, means_q64) and torch.equal(idx, idx64)
    assert torch.equal(torch.from_numpy(SCALE_TABLE)[idx].float(), scales)  # table entries
