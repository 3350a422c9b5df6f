"""Helpers of ``make demo`` (``scripts/demo.sh``).

``ms_ssim_oracle`` is the simulated crowd's oracle there (``python -m mturk.sim.crowd --oracle
codec.demo:ms_ssim_oracle``): the MS-SSIM of ``plic.quality`` (pytorch-msssim on RGB in [0, 255],
the same scales) computed in float32 instead of float64, as ``codec.evaluate`` measures it. On a
Kodak image it agrees with ``plic.quality.ms_ssim`` to about 1e-7 and takes about a quarter of
the time on a CPU, which is most of the simulated study's cost.
"""

from __future__ import annotations

import numpy as np


def ms_ssim_oracle(ref: np.ndarray, img: np.ndarray) -> float:
    """MS-SSIM of two uint8 RGB images (H, W, 3) of the same shape, in float32."""
    import torch

    from plic.quality import ms_ssim_torch

    if ref.shape != img.shape or ref.ndim != 3 or ref.shape[2] != 3:
        raise ValueError(f"need two RGB images of one shape, got {ref.shape} and {img.shape}")
    x, y = (torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()
            for a in (ref, img))
    with torch.inference_mode():
        return float(ms_ssim_torch(x, y, data_range=255.0)[0])
