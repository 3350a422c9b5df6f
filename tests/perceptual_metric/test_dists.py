"""DISTS against the authors' implementation (the dists-pytorch wheel's own DISTS class), given
the same VGG16 weights by state dict; weights resolution and its errors; input checks."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from perceptual_metric import InputError
from perceptual_metric.dists import (
    WEIGHTS_SHA256,
    DISTSWeightsError,
    L2Pool,
    dists,
    load_alpha_beta,
    weights_path,
)
from perceptual_metric.trunks import WeightsError, resolve_weights

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def ours():
    try:
        return dists(download=False)
    except (DISTSWeightsError, WeightsError) as e:
        pytest.skip(f"DISTS weights not here: {e}")


@pytest.fixture(scope="module")
def reference(ours):
    """The wheel's DISTS, its VGG16 built without a download and given our trunk's weights."""
    dists_pt = pytest.importorskip("DISTS_pytorch.DISTS_pt")
    import torchvision

    feats = {k[len("features."):]: v for k, v in
             resolve_weights("vgg", download=False).state_dict.items()}

    class NoDownload:  # stands in for torchvision.models inside DISTS_pt
        @staticmethod
        def vgg16(pretrained=True, **_):
            net = torchvision.models.vgg16(weights=None)
            net.features.load_state_dict(feats, strict=True)
            return net

    real = dists_pt.models
    dists_pt.models = NoDownload
    try:
        ref = dists_pt.DISTS(load_weights=False)
    finally:
        dists_pt.models = real
    alpha, beta, _ = load_alpha_beta(weights_path())
    ref.alpha.data, ref.beta.data = alpha.clone(), beta.clone()
    return ref.eval()


def _jpeg(a: np.ndarray, q: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=q)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).copy()


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255


@pytest.fixture(scope="module")
def pairs(sample_images):
    imgs = list(sample_images.values())
    a = imgs[0][64:320, 96:352].copy()          # 256 x 256
    b = imgs[1][:200, :296].copy()               # odd-ish sizes: 200 x 296
    rng = np.random.default_rng(0)
    noisy = np.clip(a.astype(int) + rng.integers(-25, 26, a.shape), 0, 255).astype(np.uint8)
    blurred = np.array(Image.fromarray(a).resize((64, 64)).resize((256, 256),
                                                                    Image.BILINEAR))
    other = imgs[2][64:320, 96:352].copy()
    return {"jpeg20": (a, _jpeg(a, 20)), "jpeg5": (b, _jpeg(b, 5)), "noise": (a, noisy),
            "blur": (a, blurred), "other image": (a, other), "same": (a, a.copy())}


def test_matches_the_authors_implementation(ours, reference, pairs):
    got, want = {}, {}
    with torch.no_grad():
        for name, (x, y) in pairs.items():
            got[name] = float(ours(_t(x), _t(y))[0])
            want[name] = float(reference(_t(x), _t(y)))
    for name in pairs:
        assert got[name] == pytest.approx(want[name], abs=1e-5), name
    # and the values mean something: identical images score ~0, distortions order sensibly
    assert abs(got["same"]) < 1e-5
    assert 0.02 < got["jpeg20"] < got["jpeg5"] < 1
    assert got["other image"] > max(got["jpeg20"], got["noise"])


def test_batch_is_per_image(ours, pairs):
    (x0, y0), (x1, y1) = pairs["jpeg20"], pairs["noise"]
    with torch.no_grad():
        both = ours(torch.cat([_t(x0), _t(x1)]), torch.cat([_t(y0), _t(y1)]))
        one = [float(ours(_t(x), _t(y))[0]) for x, y in ((x0, y0), (x1, y1))]
    assert both.shape == (2,)
    assert both.tolist() == pytest.approx(one, abs=1e-6)


def test_l2pool_is_the_hanning_pool():
    pool = L2Pool(2)
    g = torch.tensor([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]]) / 4
    assert torch.equal(pool.filter[1, 0], g)
    x = torch.full((1, 2, 8, 8), 3.0)
    y = pool(x)
    assert y.shape == (1, 2, 4, 4)
    # interior: a constant stays constant (weights sum to 1); the zero-padded border shrinks
    assert y[0, :, 1:, 1:] == pytest.approx(torch.full((2, 3, 3), 3.0), abs=1e-5)
    assert (y[0, :, 0, 0] < 3.0).all()
    assert "filter" not in pool.state_dict()


def test_input_checks(ours):
    x = torch.rand(1, 3, 64, 64)
    with pytest.raises(InputError, match=r"\[0,1\]"):
        ours(x * 2 - 1, x)
    with pytest.raises(InputError, match="uint8"):
        ours((x * 255).to(torch.uint8), (x * 255).to(torch.uint8))


def test_weights_errors(tmp_path, monkeypatch):
    with pytest.raises(DISTSWeightsError, match="not found"):
        weights_path(tmp_path / "missing.pt")
    bad = tmp_path / "weights.pt"
    torch.save({"alpha": torch.ones(1, 1475, 1, 1), "beta": torch.ones(1, 1475, 1, 1)}, bad)
    with pytest.raises(DISTSWeightsError, match="refusing"):
        load_alpha_beta(bad)
    # nothing installed and nothing given: one message naming the wheel and the fix
    import importlib.util
    import sys

    monkeypatch.delenv("PLIC_DISTS_WEIGHTS", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "empty"))
    with pytest.raises(DISTSWeightsError, match="pip install --no-deps dists-pytorch==0.1"):
        weights_path()


def test_installed_weights_are_the_wheels(ours):
    assert ours.weights_id.endswith(WEIGHTS_SHA256[:12])
    assert float(ours.alpha.min()) >= 0 and float(ours.beta.min()) >= 0
