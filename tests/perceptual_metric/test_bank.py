"""MetricBank: every metric of many distorted images against one reference, trunks shared,
equal to calling each metric on the pair."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from perceptual_metric.bank import MetricBank
from perceptual_metric.lpips_model import LPIPS
from perceptual_metric.trunks import Trunk, WeightsError

torch.set_num_threads(2)


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255


@pytest.fixture(scope="module")
def images(sample_images):
    ref = next(iter(sample_images.values()))[100:228, 200:392].copy()  # 128 x 192
    outs = []
    for q in (5, 30, 80):
        buf = io.BytesIO()
        Image.fromarray(ref).save(buf, format="JPEG", quality=q)
        outs.append(np.array(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    return ref, outs


@pytest.fixture(scope="module")
def metrics():
    import perceptual_metric

    try:
        alex = perceptual_metric.official("alex", download=False)
        vgg = perceptual_metric.official("vgg", download=False)
    except WeightsError as e:
        pytest.skip(f"no ImageNet trunks here: {e}")
    # a "fitted" metric: the same frozen AlexNet, other non-negative weights
    fitted = LPIPS("alex", "lin", Trunk("alex"), alex.trunk_id)
    fitted.trunk.load_state_dict(alex.trunk.state_dict())
    g = torch.Generator().manual_seed(0)
    fitted.set_linear([torch.rand(len(p), generator=g) for p in fitted.lins])
    tuned = LPIPS("alex", "tune", Trunk("alex"), "random").freeze()  # another trunk
    out = {"lpips_alex": alex, "lpips_vgg": vgg, "fitted": fitted.freeze(), "tuned": tuned,
           "l1": lambda x, y: (x - y).abs().mean(dim=(1, 2, 3))}
    try:
        out["dists"] = perceptual_metric.dists(download=False)
    except Exception:  # noqa: BLE001 - the wheel may be absent; the rest still runs
        pass
    return out


def test_scores_equal_each_metric_alone(metrics, images):
    ref, decs = images
    bank = MetricBank(metrics)
    r = bank.reference(_t(ref))
    for dec in decs:
        got = bank.scores(r, _t(dec))
        assert set(got) == set(metrics)
        with torch.no_grad():
            for name, m in metrics.items():
                want = float(m(_t(ref), _t(dec)).reshape(-1)[0])
                assert got[name] == pytest.approx(want, abs=1e-6), name
    # the bank gives different images different numbers, and the same image zero
    a, b = (bank.scores(r, _t(d))["lpips_alex"] for d in decs[:2])
    assert a != b and bank.scores(r, _t(ref))["lpips_alex"] == pytest.approx(0, abs=1e-7)


def test_equal_frozen_trunks_share_one_pass(metrics):
    bank = MetricBank(metrics)
    assert bank.group_of["lpips_alex"] == bank.group_of["fitted"]
    assert bank.group_of["tuned"] != bank.group_of["lpips_alex"]
    assert "l1" not in bank.group_of
    n_trunks = 3 + ("dists" in metrics)  # alex (shared), alex (tuned), vgg, dists
    assert bank.passes_per_image == n_trunks + 1
    if "dists" in metrics:  # LPIPS-VGG and DISTS: one first VGG16 stage
        assert bank.stem == (bank.group_of["lpips_vgg"], bank.group_of["dists"], 4)


def test_reference_is_one_image(metrics, images):
    ref, _ = images
    with pytest.raises(ValueError, match="one reference"):
        MetricBank(metrics).reference(torch.cat([_t(ref), _t(ref)]))
