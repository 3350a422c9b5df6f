"""Per-image quality of one decoded image against its reference, cached by content.

PSNR and MS-SSIM come from ``plic.quality`` (their one home; MS-SSIM as ``ms_ssim_f32``, in
float32); LPIPS from
``perceptual_metric.official`` (v0.1 linear layers on offline ImageNet trunks; the Squeeze trunk
may be the Keras SqueezeNet, named ``lpips-squeeze-keras``), DISTS from
``perceptual_metric.dists`` and the fitted metric from ``perceptual_metric.load``. Values are
cached as JSON keyed by (reference sha256, decoded sha256, metric names), so a rerun measures
nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from plic.fsio import atomic_write_text
from plic.image_io import to_tensor
from plic.quality import ms_ssim_f32, ms_ssim_scales, psnr

LPIPS_NETS = ("alex", "vgg", "squeeze")
LPIPS_COLUMNS = {"alex": "lpips_alex", "vgg": "lpips_vgg", "squeeze": "lpips_squeeze"}
FITTED_COLUMN = "metric_fitted"
DISTS_COLUMN = "dists"


class Measurer:
    """Every quality column of decoded images against their reference, cached by content.

    ``measure_image(ref, decs)``: the fast path, one reference and all its decoded versions;
    each trunk runs once per image and once for the reference (``perceptual_metric.bank``).
    ``measurer(ref, dec, ...)``: the reference path, one pair at a time with each metric called
    on its own (``measure_pair``). Both give the same numbers (1e-6;
    ``tests/codec/evaluate/test_fast_path.py``) and share one cache.

    ``names`` maps each column to the metric's own name (``lpips-squeeze-keras`` and so on);
    ``unavailable`` maps a column to why it is empty (weights missing: the message says the fix).
    """

    def __init__(self, nets=LPIPS_NETS, fitted: str | None = None,
                 cache_dir: str | Path | None = None, dists: bool = True):
        import perceptual_metric

        self.metrics: dict = {}
        self.names: dict[str, str] = {}
        self.unavailable: dict[str, str] = {}
        for net in nets or ():
            col = LPIPS_COLUMNS[net]
            try:
                m = perceptual_metric.official(net, download=False)
            except Exception as e:  # noqa: BLE001 - a missing trunk empties one column
                self.unavailable[col] = f"{type(e).__name__}: {e}"
                continue
            self.metrics[col], self.names[col] = m, getattr(m, "name", f"lpips-{net}")
        if dists:
            try:
                m = perceptual_metric.dists(download=False)
            except Exception as e:  # noqa: BLE001 - missing weights empty one column
                self.unavailable[DISTS_COLUMN] = f"{type(e).__name__}: {e}"
            else:
                self.metrics[DISTS_COLUMN], self.names[DISTS_COLUMN] = m, m.name
        if fitted:
            m = perceptual_metric.load(fitted)
            self.metrics[FITTED_COLUMN], self.names[FITTED_COLUMN] = m, m.name
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._tag = hashlib.sha256(json.dumps(self.names, sort_keys=True).encode()
                                   + (Path(fitted).read_bytes() if fitted else b"")).hexdigest()
        self._bank = None

    @property
    def columns(self) -> list[str]:
        return [*LPIPS_COLUMNS.values(), DISTS_COLUMN, FITTED_COLUMN]

    @property
    def bank(self):
        if self._bank is None:
            from perceptual_metric.bank import MetricBank

            self._bank = MetricBank(self.metrics)
        return self._bank

    def _cache_path(self, ref_sha: str, dec_sha: str) -> Path | None:
        if self.cache_dir is None or not (ref_sha and dec_sha):
            return None
        key = hashlib.sha256(f"{ref_sha}:{dec_sha}:{self._tag}".encode()).hexdigest()
        return self.cache_dir / key[:2] / f"{key}.json"

    def cached(self, ref_sha: str, dec_sha: str) -> dict | None:
        path = self._cache_path(ref_sha, dec_sha)
        return json.loads(path.read_text()) if path is not None and path.is_file() else None

    def _store(self, out: dict, ref_sha: str, dec_sha: str) -> dict:
        for col in self.columns:
            out.setdefault(col, None)
        path = self._cache_path(ref_sha, dec_sha)
        if path is not None:
            atomic_write_text(path, json.dumps(out))
        return out

    def __call__(self, ref: np.ndarray, dec: np.ndarray, ref_sha: str = "",
                 dec_sha: str = "") -> dict:
        hit = self.cached(ref_sha, dec_sha)
        if hit is not None:
            return hit
        return self._store(measure_pair(ref, dec, self.metrics), ref_sha, dec_sha)

    def measure_image(self, ref: np.ndarray | Callable[[], np.ndarray], decs,
                      ref_sha: str = "") -> list[dict]:
        """One dict per ``(dec, dec_sha)`` of ``decs``; ``ref`` and each ``dec`` may be arrays
        or functions returning one (called only when the values are not cached)."""
        out: list[dict | None] = [self.cached(ref_sha, sha) for _, sha in decs]
        todo = [i for i, v in enumerate(out) if v is None]
        if todo:
            ref = ref() if callable(ref) else ref
            x = to_tensor(ref)
            ref_feats = self.bank.reference(x) if self.metrics else None
            for i in todo:
                dec, sha = decs[i]
                dec = dec() if callable(dec) else dec
                vals = quality_pair(ref, dec)
                if ref_feats is not None:
                    vals.update(self.bank.scores(ref_feats, to_tensor(dec)))
                out[i] = self._store(vals, ref_sha, sha)
        return out


def quality_pair(ref: np.ndarray, dec: np.ndarray) -> dict:
    """PSNR and MS-SSIM (with its scale count) of one pair."""
    if ref.shape != dec.shape:
        raise ValueError(f"reference {ref.shape} and decoded {dec.shape} differ in shape")
    p = psnr(ref, dec)
    # float32 on [0, 255]: 5x faster than plic.quality.ms_ssim's float64, same to ~1e-7
    m = ms_ssim_f32(ref, dec)
    return {"psnr": p if math.isfinite(p) else None, "ms_ssim": m,
            "ms_ssim_scales": ms_ssim_scales(*ref.shape[:2])}


def measure_pair(ref: np.ndarray, dec: np.ndarray, metrics: dict | None = None) -> dict:
    """PSNR, MS-SSIM and each ``metrics`` column for one pair, each metric called on its own."""
    import torch

    out = quality_pair(ref, dec)
    if metrics:
        x, y = to_tensor(ref), to_tensor(dec)
        with torch.inference_mode():
            for col, m in metrics.items():
                out[col] = float(m(x, y).reshape(-1)[0])
    return out
