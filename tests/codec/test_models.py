"""Layers, the model registry and the training forward."""

from __future__ import annotations

import pytest
import torch

from codec import models
from codec.entropy import laplace_likelihood, quantize
from codec.layers import GDN, IGDN, ChannelNorm
from codec.models.bmshj2018 import Bmshj2018Factorized, Bmshj2018Hyperprior
from codec.models.hific import Hific

torch.set_num_threads(2)


def test_registry_builds_exactly_each_class():
    expected = {"hific": Hific, "bmshj2018-factorized": Bmshj2018Factorized,
                "bmshj2018-hyperprior": Bmshj2018Hyperprior}
    for name, cls in expected.items():
        assert name in models.names() and models.model_class(name) is cls
    classes = [models.model_class(n) for n in models.names()]
    assert len(set(classes)) == len(classes)  # one class per name, no aliases
    for name in models.names():  # the built-in ones and any a module registers (mbt2018)
        m = models.build(name, "tiny")
        assert type(m) is models.model_class(name) and m.name == name
        assert set(models.presets(name)) >= {"paper", "small", "tiny"}
        assert m.config["preset"] == "tiny"


def test_config_rebuilds_the_same_model():
    m = models.build("hific", "tiny", res_blocks=2, delta_range=(0.25, 4))
    m2 = models.build(m.name, **m.config)
    assert m2.config == m.config and m.config["delta_range"] == [0.25, 4.0]
    assert {k: v.shape for k, v in m.state_dict().items()} == \
           {k: v.shape for k, v in m2.state_dict().items()}


def test_build_rejects_unknown_names_and_keys():
    with pytest.raises(KeyError, match="unknown model"):
        models.build("nope")
    with pytest.raises(ValueError, match="no preset"):
        models.build("hific", "huge")
    with pytest.raises(ValueError, match="unknown config keys"):
        models.build("hific", "tiny", widht=3)


def test_small_presets_under_16mb():
    for name in models.names():
        m = models.build(name, "small")
        assert sum(t.numel() * t.element_size() for t in m.state_dict().values()) < 16e6


def test_paper_preset_shapes():
    c = models.build("hific", "paper").config
    assert c["channels"] == 384 and c["kernel"] == 5 and c["latent_channels"] == 12
    assert c["res_blocks"] == 6


@pytest.mark.parametrize("name", ["hific", "bmshj2018-factorized", "bmshj2018-hyperprior"])
def test_forward_contract(name):
    torch.manual_seed(0)
    m = models.build(name, "tiny")
    x = torch.rand(2, 3, 64, 64)
    out = m(x, delta=torch.tensor([1.0, 2.0]))
    assert out["x_hat"].shape == x.shape
    assert set(out["bits"]) == set(m.stages) == set(out["likelihoods"])
    for b in out["bits"].values():
        assert b.shape == (2,) and torch.all(b > 0)
    s = m.stride
    assert out["y"].shape[-1] == 64 // (4 if name == "hific" else 16) and 64 % s == 0
    loss = sum(b.sum() for b in out["bits"].values()) + out["x_hat"].square().mean()
    loss.backward()
    assert all(p.grad is not None for p in m.top_prior_parameters())
    ids = {id(p) for p in m.top_prior_parameters()}
    assert not ids & {id(p) for p in m.main_parameters()}
    assert len(ids) + len(m.main_parameters()) == len([p for p in m.parameters()
                                                       if p.requires_grad])


def test_larger_delta_means_fewer_latent_bits():
    torch.manual_seed(0)
    m = models.build("hific", "tiny").eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        small, large = m(x, 0.5)["bits"]["y"], m(x, 4.0)["bits"]["y"]
    assert large < small


def test_gdn_igdn_and_channelnorm():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 5, 5)
    g = GDN(6)
    # with gamma = 0.1 I and beta = 1, GDN is x / sqrt(1 + 0.1 x^2) elementwise
    assert torch.allclose(g(x), x / torch.sqrt(1 + 0.1 * x * x), atol=1e-5)
    assert torch.allclose(IGDN(6)(x), x * torch.sqrt(1 + 0.1 * x * x), atol=1e-5)
    cn = ChannelNorm(6)
    y = cn(x)
    assert torch.allclose(y.mean(1), torch.zeros(2, 5, 5), atol=1e-5)
    assert torch.allclose(y.var(1, unbiased=False), torch.ones(2, 5, 5), atol=1e-2)
    # the reparametrised beta stays above its bound even when pushed below
    with torch.no_grad():
        g.beta.param.fill_(-5.0)
    assert torch.all(g.beta() >= 1e-6 - 1e-9)


@pytest.mark.parametrize("mode", ["noise", "ste", "universal"])
def test_quantizers(mode):
    torch.manual_seed(0)
    v = torch.randn(1000, requires_grad=True)
    means = torch.full_like(v, 0.3)
    d = torch.tensor(2.0)
    q = quantize(v, means, d, mode, training=True)
    assert torch.all((q - v).abs() <= 2.0 + 1e-5)
    if mode == "ste":  # straight-through rounding lands on the grid mean + k * delta
        k = (q - means) / d
        assert torch.allclose(k, k.round(), atol=1e-4)
    q.sum().backward()
    assert torch.allclose(v.grad, torch.ones_like(v))
    ev = quantize(v, means, d, mode, training=False)
    assert torch.allclose(ev, means + d * torch.round((v - means) / d))


def test_laplace_likelihood_sums_to_one():
    grid = torch.arange(-200, 201, dtype=torch.float64) * 0.5
    for mean, scale, delta in [(0.0, 1.0, 0.5), (0.3, 3.0, 0.5), (-1.1, 0.2, 0.5)]:
        p = laplace_likelihood(grid + mean, torch.tensor(mean, dtype=torch.float64),
                               torch.tensor(scale, dtype=torch.float64), torch.tensor(delta))
        assert abs(float(p.sum()) - 1) < 1e-6
