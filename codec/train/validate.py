"""Validation on a few fixed images: real bpp through the codec's bitstream, PSNR, MS-SSIM and
the perceptual metric.

Real bpp comes from ``codec.api.encode`` (8 x file bytes / pixels, header included) and the
reconstruction from ``codec.api.decompress``. When the bitstream API is not importable the
estimate from the likelihoods is reported instead and flagged ``bpp_is_estimate`` (never mixed
up with the real number).
"""

from __future__ import annotations

import numpy as np
import torch

from plic.image_io import to_image, to_tensor
from plic.quality import est_bpp, ms_ssim, mse, psnr


def _api():
    try:
        from .. import api
    except ImportError:
        return None
    return api if hasattr(api, "encode") and hasattr(api, "decompress") else None


@torch.no_grad()
def validate(model: torch.nn.Module, images: list[tuple[str, np.ndarray]], *, bin_width: float,
             metric=None, device: str = "cpu") -> tuple[dict, list[np.ndarray]]:
    """Mean scores over ``images`` and the reconstructions (uint8)."""
    api = _api()
    was_training = model.training
    model.eval()
    rows, recons = [], []
    try:
        for _id, img in images:
            h, w = img.shape[:2]
            x = to_tensor(img).to(device)
            out = model(x, delta=bin_width)
            est = est_bpp(float(sum(b.sum() for b in out["bits"].values())), h, w)
            if api is not None:
                res = api.encode(img, model, bin_width=bin_width)
                rec = api.decompress(res.data, model)
                bpp = float(res.bpp)
            else:
                rec = to_image(out["x_hat"][0])
                bpp = est
            row = {"bpp": bpp, "est_bpp": est, "mse": mse(img, rec), "psnr": psnr(img, rec),
                   "ms_ssim": ms_ssim(img, rec)}
            if metric is not None:
                r = to_tensor(rec).to(device)
                row["perceptual"] = float(metric(r, x).mean())
            rows.append(row)
            recons.append(rec)
    finally:
        model.train(was_training)
    scores = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    scores["bpp_is_estimate"] = api is None
    return scores, recons
