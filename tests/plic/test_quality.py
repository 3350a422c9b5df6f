"""The quality formulas against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from plic import quality


def test_bpp():
    assert quality.bpp(1000, 100, 80) == 1.0
    with pytest.raises(ValueError):
        quality.bpp(1, 0, 5)


def test_estimated_bpp_and_psnr_of_an_mse_are_the_same_formulas():
    assert quality.est_bpp(8000.0, 100, 80) == quality.bpp(1000, 100, 80)
    bits = torch.tensor([800.0, 1600.0])  # a batch's estimates (training)
    assert torch.equal(quality.est_bpp(bits, 10, 10), torch.tensor([8.0, 16.0]))
    with pytest.raises(ValueError):
        quality.est_bpp(1.0, 5, 0)
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (6, 5, 3), dtype=np.uint8) for _ in range(2))
    assert quality.psnr(a, b) == quality.psnr_from_mse(quality.mse(a, b))
    assert quality.psnr_from_mse(0.0) == math.inf


def test_psnr_by_hand():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 16  # one error of 16 over 48 values: mse = 256 / 48
    expected = 10 * math.log10(255**2 / (256 / 48))
    assert quality.psnr(a, b) == pytest.approx(expected, abs=1e-12)
    assert quality.psnr(a, a) == math.inf
    # the set convention: mean of per-image values, not PSNR of pooled MSE
    assert quality.mean_psnr([30.0, 40.0]) == 35.0


def test_psnr_shape_mismatch():
    with pytest.raises(ValueError, match="differ"):
        quality.psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))


def test_ms_ssim_matches_pytorch_msssim(sample_images):
    from pytorch_msssim import ms_ssim as ref

    img = next(iter(sample_images.values()))[:256, :256]
    rng = np.random.default_rng(0)
    noisy = np.clip(img.astype(int) + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)
    t = lambda x: torch.from_numpy(x.astype(np.float64)).permute(2, 0, 1)[None]  # noqa: E731
    expected = float(ref(t(img), t(noisy), data_range=255, size_average=True))
    assert quality.ms_ssim(img, noisy) == pytest.approx(expected, abs=1e-9)
    assert quality.ms_ssim(img, img) == pytest.approx(1.0, abs=1e-9)
    assert 0 < quality.ms_ssim(img, noisy) < 1


def test_ms_ssim_scales():
    assert quality.ms_ssim_scales(512, 768) == 5
    assert quality.ms_ssim_scales(161, 400) == 5
    assert quality.ms_ssim_scales(160, 400) == 4
    assert quality.ms_ssim_scales(64, 64) == 3
    with pytest.raises(ValueError):
        quality.ms_ssim_scales(8, 8)
    small = np.random.default_rng(1).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    assert 0.0 < quality.ms_ssim(small, small // 2 + 10) < 1.0
