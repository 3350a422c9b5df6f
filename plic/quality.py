"""The quality formulas. Each has exactly one home, here; every package calls these.

Conventions (those of the published anchors in ``../shared/anchors``):

* PSNR is computed on RGB per image (all three channels pooled, peak 255) and averaged over images
  by the caller (``mean_psnr``). PSNR of identical images is ``inf``.
* MS-SSIM comes from ``pytorch-msssim`` on RGB in [0, 255] with its default 11x11 Gaussian window
  and the five standard scale weights. Five scales need both sides > 160 px; smaller images use as
  many scales as fit (weights renormalised), and ``ms_ssim_scales`` says how many were used.
* bpp = 8 x bytes of the whole file / pixels of the image; ``est_bpp`` = estimated bits / pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MSSSIM_WIN = 11


def bpp(num_bytes: int, height: int, width: int) -> float:
    """Bits per pixel of a file of ``num_bytes`` coding an image of ``height`` x ``width``."""
    if height <= 0 or width <= 0:
        raise ValueError(f"bad image size {width}x{height}")
    return 8.0 * num_bytes / (height * width)


def est_bpp(bits, height: int, width: int):
    """A likelihood estimate in bits (a float or a tensor of them) per pixel of the image:
    what ``bpp`` would be if the file held exactly the estimated bits."""
    if height <= 0 or width <= 0:
        raise ValueError(f"bad image size {width}x{height}")
    return bits / (height * width)


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) RGB images, got {a.shape}")
    return a, b


def mse(a: np.ndarray, b: np.ndarray) -> float:
    a, b = _pair(a, b)
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB of two uint8 RGB images (H, W, 3); ``inf`` when identical."""
    return psnr_from_mse(mse(a, b), peak)


def psnr_from_mse(m: float, peak: float = 255.0) -> float:
    """PSNR in dB of a mean squared error on the [0, peak] scale; ``inf`` at 0."""
    return math.inf if m == 0 else 10.0 * math.log10(peak * peak / m)


def mean_psnr(values: Iterable[float]) -> float:
    """Average of per-image PSNRs (the anchors' convention: not PSNR of the pooled MSE)."""
    vals = list(values)
    return float(np.mean(vals)) if vals else math.nan


def ms_ssim_scales(height: int, width: int) -> int:
    """Number of MS-SSIM scales that fit an image: 5 needs min side > 160 px."""
    side = min(height, width)
    for k in range(len(MSSSIM_WEIGHTS), 0, -1):
        if side > (MSSSIM_WIN - 1) * 2 ** (k - 1):
            return k
    raise ValueError(f"image {width}x{height} too small for MS-SSIM (min side must exceed 10 px)")


def ms_ssim_torch(x, y, data_range: float = 255.0):
    """MS-SSIM of float batches N x 3 x H x W (per image, shape (N,)), differentiable.

    Five scales go straight to pytorch-msssim. Smaller images run the same per-scale computation
    (pytorch-msssim's own ``_ssim``) over the scales that fit, with the weights renormalised;
    pytorch-msssim itself refuses them.
    """
    import torch
    import torch.nn.functional as F
    from pytorch_msssim import ms_ssim as _ms_ssim
    from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim

    k = ms_ssim_scales(x.shape[-2], x.shape[-1])
    if k == len(MSSSIM_WEIGHTS):
        return _ms_ssim(x, y, data_range=data_range, size_average=False)
    w = torch.tensor(MSSSIM_WEIGHTS[:k], dtype=x.dtype, device=x.device)
    w = w / w.sum()
    win = _fspecial_gauss_1d(MSSSIM_WIN, 1.5).to(x).repeat(x.shape[1], 1, 1, 1)
    mcs = []
    for i in range(k):
        ssim_pc, cs = _ssim(x, y, win=win, data_range=data_range, size_average=False,
                            K=(0.01, 0.03))
        if i < k - 1:
            mcs.append(torch.relu(cs))
            pad = [s % 2 for s in x.shape[2:]]
            x = F.avg_pool2d(x, kernel_size=2, padding=pad)
            y = F.avg_pool2d(y, kernel_size=2, padding=pad)
    stack = torch.stack(mcs + [torch.relu(ssim_pc)], dim=0)
    return torch.prod(stack ** w.view(-1, 1, 1), dim=0).mean(1)


def ms_ssim_f32(a: np.ndarray, b: np.ndarray) -> float:
    """``ms_ssim`` computed in float32 on [0, 255], as ``codec.evaluate`` measures it and the
    demo's simulated crowd scores with it (``--oracle plic.quality:ms_ssim_f32``): on a Kodak
    image it agrees with ``ms_ssim`` to about 1e-7 and takes about a quarter of the time on a
    CPU."""
    import torch

    from .image_io import to_tensor

    a, b = _pair(a, b)
    with torch.inference_mode():
        return float(ms_ssim_torch(to_tensor(a, unit=False), to_tensor(b, unit=False),
                                   data_range=255.0)[0])


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two uint8 RGB images (H, W, 3), computed in float64."""
    import torch

    from .image_io import to_tensor

    a, b = _pair(a, b)
    ta = to_tensor(a, unit=False, dtype=torch.float64)
    tb = to_tensor(b, unit=False, dtype=torch.float64)
    return float(ms_ssim_torch(ta, tb, data_range=255.0)[0])
