"""codec.fastpath: the training fast paths compute what the plain formulas compute.

Each fast path is checked against the straightforward formula it replaces (PLIC_TRAIN_FAST=0):
same values and gradients to float rounding, the eval path bit-identical (decoded pixels must not
move), the same state-dict keys and the shipped checkpoints still loading strictly.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from codec import fastpath
from codec.layers import GDN, IGDN
from codec.train.discriminator import Discriminator
from codec.train.losses import lpips_to_reference, perceptual

torch.set_num_threads(1)
CL = torch.channels_last  # the GDN fast path takes either memory order
REPO = Path(__file__).resolve().parents[2]


def close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-5) -> bool:
    """Equal up to float rounding, relative to the tensor's scale."""
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max()) <= rtol * max(float(b.abs().max()), 1e-12)


def run_both(fn):
    """fn() with the fast paths on and with them off."""
    with fastpath.switched(True):
        fast = fn()
    with fastpath.switched(False):
        plain = fn()
    return fast, plain


def test_the_switch_and_the_thread_environment():
    assert fastpath.ENV == "PLIC_TRAIN_FAST"
    with fastpath.switched(False):
        assert not fastpath.enabled()
        env = {}
        assert not fastpath.apply_thread_env(env) and env == {}
    with fastpath.switched(True):
        env = {"OMP_WAIT_POLICY": "ACTIVE"}  # a user's own setting wins
        assert fastpath.apply_thread_env(env) and env == {"OMP_WAIT_POLICY": "ACTIVE"}
        env = {}
        fastpath.apply_thread_env(env)
        assert env == fastpath.THREAD_ENV


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_gdn_training_path_matches_the_plain_formula(inverse, layout):
    torch.manual_seed(0)
    gdn = (IGDN if inverse else GDN)(16).train()
    with torch.no_grad():  # a non-diagonal gamma, so the channel mixing is exercised
        gdn.gamma.param.add_(0.05 * torch.rand_like(gdn.gamma.param))
    x0 = torch.randn(3, 16, 12, 10)
    if layout == "channels_last":
        x0 = x0.contiguous(memory_format=CL)
    g = torch.randn(3, 16, 12, 10)

    def values_and_grads():
        gdn.zero_grad()
        x = x0.clone().requires_grad_()
        out = gdn(x)
        out.backward(g)
        return out.detach(), x.grad, gdn.gamma.param.grad.clone(), gdn.beta.param.grad.clone()

    fast, plain = run_both(values_and_grads)
    for a, b in zip(fast, plain):
        assert close(a, b)


def test_gdn_eval_and_no_grad_paths_are_the_plain_formula_bit_for_bit():
    torch.manual_seed(1)
    for gdn in (GDN(8), IGDN(8)):
        x = torch.randn(2, 8, 9, 7)
        gdn.eval()
        fast, plain = run_both(lambda gdn=gdn, x=x: gdn(x))
        assert torch.equal(fast, plain)
        gdn.train()
        with torch.no_grad():
            fast, plain = run_both(lambda gdn=gdn, x=x: gdn(x))
        assert torch.equal(fast, plain)


def _disc_pair():
    torch.manual_seed(2)
    fast = Discriminator(width=4, latent_channels=5)
    plain = Discriminator(width=4, latent_channels=5)
    plain.load_state_dict(fast.state_dict())
    return fast, plain


@pytest.mark.parametrize("groups", [1, 2])
def test_discriminator_split_first_layer_matches_the_concatenation(groups):
    d_fast, d_plain = _disc_pair()
    n = 3
    x0 = torch.rand(groups * n, 3, 64, 64)
    y = torch.randn(n, 5, 4, 4)
    g = torch.randn(groups * n, 1, 4, 4)
    results = {}
    for flag, d in ((True, d_fast), (False, d_plain)):
        with fastpath.switched(flag):
            x = x0.clone().requires_grad_()
            out = d(x, y)
            out.backward(g)
            results[flag] = [out.detach(), x.grad] + [p.grad for p in d.parameters()]
    for a, b in zip(results[True], results[False]):
        assert close(a, b)
    # one power iteration per call either way: the spectral-norm state moved identically
    for (k, a), (_, b) in zip(d_fast.state_dict().items(), d_plain.state_dict().items()):
        if k.endswith(("_u", "_v")):
            assert torch.equal(a, b), k


def test_discriminator_pairs_images_with_latents_and_keeps_its_keys():
    d, _ = _disc_pair()
    assert sorted(d.state_dict()) == sorted(
        ["cond.weight", "cond.bias", "net.8.weight", "net.8.bias"]
        + [f"net.{i}.{k}" for i in (0, 2, 4, 6) for k in (
            "bias", "parametrizations.weight.original", "parametrizations.weight.0._u",
            "parametrizations.weight.0._v")])
    x, y = torch.rand(4, 3, 64, 64), torch.randn(2, 5, 4, 4)
    d.eval()  # no power iteration: calls are comparable
    for flag in (True, False):
        with fastpath.switched(flag):
            pairs = d(x, y)  # image i with latent i mod 2
            assert close(pairs, d(x, torch.cat([y, y])))
            with pytest.raises(ValueError, match="latents"):
                d(x[:3], y)


def _random_lpips():
    from perceptual_metric.lpips_model import LPIPS

    torch.manual_seed(3)
    return LPIPS("alex", "lin").freeze()


def test_perceptual_term_with_the_reference_off_the_graph_matches_the_metric():
    metric = _random_lpips()
    x_hat0 = torch.rand(2, 3, 64, 64) * 1.1 - 0.05  # beyond [0, 1]: the clamp is exercised
    x = torch.rand(2, 3, 64, 64)

    def value_and_grad():
        x_hat = x_hat0.clone().requires_grad_()
        p = perceptual(metric, x_hat, x)
        p.backward()
        return p.detach(), x_hat.grad

    fast, plain = run_both(value_and_grad)
    assert close(fast[0], plain[0]) and close(fast[1], plain[1])
    assert close(lpips_to_reference(metric, x_hat0.clamp(0, 1), x), metric(x_hat0.clamp(0, 1), x))


def test_a_training_run_is_the_same_either_way(tmp_path):
    """Two adversarial steps of the real loop: the first step's terms (before any update) agree
    to float rounding, the second's to what two Adam steps of rounding differences allow."""
    from codec.train.config import TrainConfig
    from codec.train.loop import train
    from codec.train.rundir import read_metrics

    rows = {}
    for flag in (True, False):
        cfg = TrainConfig(model="bmshj2018-hyperprior", preset="tiny", steps=2, batch_size=2,
                          crop=64, workers=0, threads=1, val_images=1, val_crop=64, loss="full",
                          perceptual_start=0.0, adversarial_start=0.0,
                          out=str(tmp_path / f"fast{int(flag)}"))
        with fastpath.switched(flag):
            train(cfg, metric=_random_lpips(), progress=False)
        rows[flag] = [r for r in read_metrics(cfg.out) if "loss" in r]
    for k in ("loss", "bpp", "mse", "perceptual", "g_loss", "d_loss"):
        a, b = rows[True][0][k], rows[False][0][k]
        assert abs(a - b) <= 1e-5 * abs(b), k
        a, b = rows[True][1][k], rows[False][1][k]
        assert abs(a - b) <= 1e-3 * abs(b), k


@pytest.mark.parametrize("path", sorted((REPO / "checkpoints").glob("*.pt")),
                         ids=lambda p: p.name)
def test_shipped_checkpoints_load_strictly(path):
    from codec.models import build
    from plic.checkpoint import load_checkpoint

    ck = load_checkpoint(path)
    if ck["kind"] == "postdecode":  # the HEVC post-decoder's stage (codec.postdecode)
        from codec import postdecode

        postdecode.load(path)
        return
    ck = load_checkpoint(path, kind="codec")
    model = build(ck["model"], **ck["config"])
    model.load_state_dict(ck["state_dict"], strict=True)
