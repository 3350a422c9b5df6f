"""Rate targeting: the highest-quality parameter whose real file is at or under a target bpp.

The search runs on a :class:`RateCurve`, which encodes one image with one backend and caches
each parameter's file, so the four default targets share most of their encodes. Integer
parameters (quality, QP) are bisected over integers; continuous ones (a learned codec's bin
width) in log space to the backend's relative tolerance. Every answer is a real file that was
measured, so it is never over the target even where the codec's size is not monotone in the
parameter; a target below the codec's smallest file is reported as unreachable (``None``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from plic.quality import bpp as bits_per_pixel

from .backends.base import Backend

MAX_CONTINUOUS_STEPS = 40


@dataclass(frozen=True)
class Encoded:
    """One real file: the parameter that made it, its bytes and its measured bpp."""

    param: float
    data: bytes
    bpp: float


@dataclass
class RateCurve:
    """Encodes of one image by one backend, cached by parameter."""

    backend: Backend
    image: np.ndarray
    cache: dict = field(default_factory=dict)

    def at(self, param: float) -> Encoded:
        key = self.backend.format_param(param)
        if key not in self.cache:
            p = int(key) if self.backend.param.integer else float(key)
            data = self.backend.encode(self.image, p)
            h, w = self.image.shape[:2]
            self.cache[key] = Encoded(p, data, bits_per_pixel(len(data), h, w))
        return self.cache[key]

    @property
    def encodes(self) -> int:
        return len(self.cache)


def _param_at(spec, t: float) -> float:
    """Map t in [0, 1] (0 = fewest bits) to the parameter."""
    if spec.integer:
        n = int(spec.hi - spec.lo)
        step = int(round(t * n))
        return spec.lo + step if spec.more_bits_when == "higher" else spec.hi - step
    a, b = math.log(spec.lo), math.log(spec.hi)
    u = a + t * (b - a) if spec.more_bits_when == "higher" else b - t * (b - a)
    return math.exp(u)


def search(curve: RateCurve, target_bpp: float) -> Encoded | None:
    """Highest-quality real file at or under ``target_bpp``; None if the smallest is over."""
    if not target_bpp > 0:
        raise ValueError(f"target bpp must be positive, got {target_bpp}")
    spec = curve.backend.param
    fewest = curve.at(_param_at(spec, 0.0))
    if fewest.bpp > target_bpp:
        return None
    if spec.integer:
        return _search_integer(curve, target_bpp)
    return _search_continuous(curve, target_bpp)


def _t_of(spec, p: float) -> float:
    """Inverse of ``_param_at`` for continuous parameters."""
    a, b = math.log(spec.lo), math.log(spec.hi)
    u = (math.log(p) - a) / (b - a)
    return u if spec.more_bits_when == "higher" else 1.0 - u


def _search_continuous(curve: RateCurve, target: float) -> Encoded:
    """Bracketed search in t (log parameter, 0 = fewest bits) to the backend's tolerance.

    Like the integer search: the bracket starts from every cached encode, each step
    interpolates log(bpp) linearly in t (rate is close to a power law of a bin width), and a
    step that did not halve the bracket makes the next one a plain halving. The answer is the
    highest-rate real file at or under the target that was encoded.
    """
    spec = curve.backend.param
    known = {_t_of(spec, e.param): e.bpp for e in curve.cache.values()}
    if 1.0 not in known:
        known[1.0] = curve.at(_param_at(spec, 1.0)).bpp
    lo = max(t for t, b in known.items() if b <= target)
    over = [t for t, b in known.items() if t > lo and b > target]
    hi = min(over) if over else None
    halve = False
    for _ in range(MAX_CONTINUOUS_STEPS):
        if hi is None:
            break
        p_lo, p_hi = _param_at(spec, lo), _param_at(spec, hi)
        if abs(p_hi - p_lo) <= spec.rel_tol * max(p_lo, p_hi):
            break
        width = hi - lo
        if halve:
            t = (lo + hi) / 2
        else:
            f_lo, f_hi = math.log(max(known[lo], 1e-12)), math.log(known[hi])
            frac = (math.log(target) - f_lo) / (f_hi - f_lo) if f_hi > f_lo else 0.5
            # keep clear of the ends, so a step always cuts the bracket
            t = lo + min(0.98, max(0.02, frac)) * width
        b = curve.at(_param_at(spec, t)).bpp
        known[t] = b
        if b <= target:
            lo = t
        else:
            hi = t
        halve = (hi - lo) > width / 2
    fits = [e for e in curve.cache.values() if e.bpp <= target]
    return max(fits, key=lambda e: (e.bpp, _t_of(spec, e.param)))


def _search_integer(curve: RateCurve, target: float) -> Encoded:
    """Bracketed search over integer steps k (0 = fewest bits, n = most bits).

    The bracket starts from every encode already cached (the other targets' work), and each
    step interpolates log(bpp) linearly between the bracket's ends (bits change by a near
    constant factor per QP or quality step), falling back to halving when that did not at
    least halve the bracket. Invariant: step ``lo`` fits the target; step ``hi`` (if known)
    does not. The answer is the largest fitting step next to a non-fitting one, or n.
    """
    spec = curve.backend.param
    n = int(spec.hi - spec.lo)

    def step_of(p: float) -> int:
        return int(p - spec.lo) if spec.more_bits_when == "higher" else int(spec.hi - p)

    known = {step_of(e.param): e.bpp for e in curve.cache.values()}
    lo = max(k for k, b in known.items() if b <= target)
    over = [k for k, b in known.items() if k > lo and b > target]
    hi = min(over) if over else None
    halve = False
    while hi is None or hi - lo > 1:
        width = (n - lo) if hi is None else (hi - lo)
        if hi is None:
            if lo == n:
                break
            k = lo + (n - lo + 1) // 2
        elif halve:
            k = (lo + hi) // 2
        else:
            f_lo, f_hi = math.log(known[lo]), math.log(known[hi])
            frac = (math.log(target) - f_lo) / (f_hi - f_lo) if f_hi > f_lo else 0.5
            k = min(hi - 1, max(lo + 1, int(round(lo + frac * (hi - lo)))))
        b = curve.at(_param_at(spec, k / n)).bpp
        known[k] = b
        if b <= target:
            lo = k
        else:
            hi = k
        new_width = (n - lo) if hi is None else (hi - lo)
        halve = new_width > width / 2
    return curve.at(_param_at(spec, lo / n))
