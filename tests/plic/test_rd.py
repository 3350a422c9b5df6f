"""BD-rate against constructed curves with known answers, and the anchors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from plic import rd


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_rate_of_a_scaled_curve(method):
    rate = np.array([0.1, 0.2, 0.4, 0.8, 1.6])
    psnr = 25 + 4 * np.log2(rate / 0.1)
    # the same qualities at 10% fewer bits: BD-rate -10%
    assert rd.bd_rate(rate, psnr, rate * 0.9, psnr, method) == pytest.approx(-10, abs=1e-6)
    assert rd.bd_rate(rate, psnr, rate, psnr, method) == pytest.approx(0, abs=1e-9)
    # 1 dB better everywhere on a 4 dB/octave curve: 2^(-1/4) - 1 of the rate
    got = rd.bd_rate(rate, psnr, rate, psnr + 1, method)
    assert got == pytest.approx((2 ** -0.25 - 1) * 100, abs=1e-6)


def test_bd_quality_and_no_overlap():
    rate = np.array([0.1, 0.2, 0.4, 0.8])
    psnr = 25 + 4 * np.log2(rate / 0.1)
    assert rd.bd_quality(rate, psnr, rate, psnr + 0.5) == pytest.approx(0.5)
    assert math.isnan(rd.bd_rate(rate, psnr, rate, psnr + 100))
    with pytest.raises(ValueError):
        rd.bd_rate([0.1], [30], [0.1, 0.2], [30, 31])


def test_anchor_loading(shared_dir):
    bpg = rd.load_anchor("bpg_444_x265_ycbcr")
    assert bpg.name.startswith("BPG") and len(bpg.bpp) == len(bpg.psnr) == len(bpg.ms_ssim) > 4
    elic = rd.load_anchor("paper-elic2022_ms-ssim")
    assert all(0.8 < v < 1 for v in elic.ms_ssim)
    # VTM beats BPG on Kodak: a negative BD-rate, as published
    vtm = rd.load_anchor("vtm")
    assert rd.bd_rate(bpg.bpp, bpg.psnr, vtm.bpp, vtm.psnr) < -10
