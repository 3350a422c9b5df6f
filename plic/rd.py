"""Rate-distortion curves: the published anchors and the Bjontegaard delta rate.

Anchors are the CompressAI-format JSON files in ``../shared/anchors/rd_kodak`` (or
``$PLIC_ANCHORS``): ``{"name", "results": {"bpp": [...], "psnr-rgb": [...], "ms-ssim-rgb" or
"ms-ssim-db-rgb": [...]}}``. They are a local
mirror: callers treat a missing folder as "no anchors".

BD-rate (Bjontegaard, VCEG-M33) is the average bitrate difference, in percent, of a test curve
against an anchor curve over their overlapping quality range; negative means the test codec needs
fewer bits. ``method="pchip"`` (default) integrates piecewise-cubic Hermite interpolants of
log-rate over quality, as current JVET/CompressAI tooling does; ``"cubic"`` is the original
third-order polynomial fit.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .paths import REPO_ROOT

ANCHORS_ENV = "PLIC_ANCHORS"


@dataclass
class RDCurve:
    name: str
    bpp: list[float]
    psnr: list[float] = field(default_factory=list)
    ms_ssim: list[float] = field(default_factory=list)
    source: str = ""


def anchors_dir() -> Path | None:
    if os.environ.get(ANCHORS_ENV):
        return Path(os.environ[ANCHORS_ENV])
    d = REPO_ROOT.parent / "shared" / "anchors" / "rd_kodak"
    return d if d.is_dir() else None


def load_anchor(name_or_path: str | os.PathLike) -> RDCurve:
    """An anchor by file stem (e.g. ``bpg_444_x265_ycbcr``) or path."""
    p = Path(name_or_path)
    if not p.suffix:
        d = anchors_dir()
        if d is None:
            raise FileNotFoundError(f"no anchors folder (set ${ANCHORS_ENV}) for {name_or_path}")
        p = d / f"{p.name}.json"
    d = json.loads(p.read_text())
    res = d["results"]
    if "ms-ssim-rgb" in res:
        msssim = list(res["ms-ssim-rgb"])
    elif "ms-ssim-db-rgb" in res:
        msssim = [1 - 10 ** (-v / 10) for v in res["ms-ssim-db-rgb"]]
    else:
        msssim = []
    return RDCurve(name=d.get("name", p.stem), bpp=list(res["bpp"]),
                   psnr=list(res.get("psnr-rgb", [])), ms_ssim=msssim, source=p.stem)


def _sorted(rate, dist):
    r, d = np.asarray(rate, float), np.asarray(dist, float)
    if r.shape != d.shape or r.size < 2:
        raise ValueError("a curve needs at least two (rate, quality) points of equal count")
    if np.any(r <= 0):
        raise ValueError("rates must be positive")
    o = np.argsort(d)
    return np.log(r[o]), d[o]


def bd_rate(anchor_rate, anchor_dist, test_rate, test_dist, method: str = "pchip") -> float:
    """Average rate difference (%) of test vs anchor at equal quality; nan without overlap."""
    la, da = _sorted(anchor_rate, anchor_dist)
    lt, dt = _sorted(test_rate, test_dist)
    lo, hi = max(da.min(), dt.min()), min(da.max(), dt.max())
    if not hi > lo:
        return math.nan
    if method == "cubic":
        if len(da) < 4 or len(dt) < 4:
            raise ValueError("the cubic method needs four points per curve")
        pa, pt = np.polyint(np.polyfit(da, la, 3)), np.polyint(np.polyfit(dt, lt, 3))
        ia = np.polyval(pa, hi) - np.polyval(pa, lo)
        it = np.polyval(pt, hi) - np.polyval(pt, lo)
    elif method == "pchip":
        from scipy.interpolate import PchipInterpolator

        ia = PchipInterpolator(da, la).integrate(lo, hi)
        it = PchipInterpolator(dt, lt).integrate(lo, hi)
    else:
        raise ValueError(f"unknown BD-rate method {method!r}")
    return float((math.exp((it - ia) / (hi - lo)) - 1) * 100)


def bd_quality(anchor_rate, anchor_dist, test_rate, test_dist) -> float:
    """Average quality difference (e.g. BD-PSNR in dB) of test vs anchor at equal rate."""
    from scipy.interpolate import PchipInterpolator

    ra, qa = np.log(np.asarray(anchor_rate, float)), np.asarray(anchor_dist, float)
    rt, qt = np.log(np.asarray(test_rate, float)), np.asarray(test_dist, float)
    oa, ot = np.argsort(ra), np.argsort(rt)
    lo, hi = max(ra.min(), rt.min()), min(ra.max(), rt.max())
    if not hi > lo:
        return math.nan
    ia = PchipInterpolator(ra[oa], qa[oa]).integrate(lo, hi)
    it = PchipInterpolator(rt[ot], qt[ot]).integrate(lo, hi)
    return float((it - ia) / (hi - lo))
