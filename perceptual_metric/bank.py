"""Several full-reference metrics, one reference, many distorted versions of it: each image's
features are computed once per distinct trunk, the reference's only once.

    bank = MetricBank({"lpips_alex": official("alex"), "dists": dists(), ...})
    ref = bank.reference(x)             # x: float 1 x 3 x H x W in [0,1]
    bank.scores(ref, y)                 # {"lpips_alex": 0.31, "dists": 0.18, ...}

Every score comes from the metric's own formula (``LPIPS.unit_features`` / ``unit_terms`` /
``combine``, ``DISTS.features`` / ``moments`` / ``score``), so it equals ``metric(x, y)`` up to
float rounding (``tests/perceptual_metric/test_bank.py``: 1e-6). What is saved: the reference's
trunk pass (and DISTS's reference moments) for every image after the first, and one trunk pass per
image for metrics that compute the same features: LPIPS metrics on equal frozen trunks (an official
LPIPS-Alex and a metric fitted in ``lin`` mode on the same AlexNet) share one. LPIPS-VGG and DISTS
share VGG16's first stage (conv1_1, conv1_2 at full resolution, about a quarter of a VGG16 pass on a
CPU); after it LPIPS max-pools and DISTS L2-pools, so the rest is their own. That stage runs on
DISTS's input normalisation ((x - mean) / std), which is LPIPS's ((2x - 1 - shift) / scale) with the
same constants: the two differ by float rounding only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .dists import DISTS
from .lpips_model import LPIPS, check_images, unit_normalise, unit_terms


def _same_lpips_features(a: LPIPS, b: LPIPS) -> bool:
    """True when ``a.unit_features`` and ``b.unit_features`` compute the same thing."""
    if a.net != b.net or not (torch.equal(a.shift, b.shift) and torch.equal(a.scale, b.scale)):
        return False
    sa, sb = a.trunk.state_dict(), b.trunk.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _same_stem(a, b, n_layers: int) -> bool:
    """True when the first ``n_layers`` of two trunks' ``features`` hold equal weights."""
    keys = [k for k in a.state_dict() if int(k.split(".")[1]) < n_layers]
    sa, sb = a.state_dict(), b.state_dict()
    return bool(keys) and all(k in sb and torch.equal(sa[k], sb[k]) for k in keys)


class Reference:
    """The features (per trunk group) of one reference image, for ``MetricBank.scores``."""

    def __init__(self, x: torch.Tensor, feats: dict):
        self.x, self.feats = x, feats


class MetricBank:
    """``metrics``: name -> an ``LPIPS``, a ``DISTS`` or any ``d(x, y) -> (N,)`` (run as is)."""

    def __init__(self, metrics: dict[str, Callable]):
        self.metrics = dict(metrics)
        self.group_of: dict[str, int] = {}  # metric name -> index of its feature group
        self.groups: list = []  # representative module whose features the group shares
        for name, m in self.metrics.items():
            if isinstance(m, LPIPS):
                for i, g in enumerate(self.groups):
                    if isinstance(g, LPIPS) and _same_lpips_features(g, m):
                        self.group_of[name] = i
                        break
                else:
                    self.group_of[name] = len(self.groups)
                    self.groups.append(m)
            elif isinstance(m, DISTS):
                self.group_of[name] = len(self.groups)
                self.groups.append(m)
        # (LPIPS-VGG group, DISTS group, layers): VGG16's first stage computed once for both
        self.stem = None
        vgg = [i for i, g in enumerate(self.groups) if isinstance(g, LPIPS) and g.net == "vgg"]
        ds = [i for i, g in enumerate(self.groups) if isinstance(g, DISTS)]
        if vgg and ds:
            n = self.groups[ds[0]].trunk.cuts[0]
            if _same_stem(self.groups[vgg[0]].trunk, self.groups[ds[0]].trunk, n):
                self.stem = (vgg[0], ds[0], n)

    @property
    def passes_per_image(self) -> int:
        """Trunk passes per distorted image (metrics without a known trunk count as one each)."""
        return len(self.groups) + sum(1 for n in self.metrics if n not in self.group_of)

    def _features(self, x: torch.Tensor) -> dict:
        out = {}
        if self.stem is not None:
            i_l, i_d, n = self.stem
            lp, d = self.groups[i_l], self.groups[i_d]
            lp.follow(x)
            d.to(x.device)
            f1 = d.trunk.features[:n](d.normalise(x))
            out[i_l] = unit_normalise([f1, *lp.trunk(f1, first=1)])
            f = [x, f1, *d.trunk(f1, first=1)]
            out[i_d] = (f, d.moments(f))
        for i, g in enumerate(self.groups):
            if i in out:
                continue
            if isinstance(g, LPIPS):
                g.follow(x)
                out[i] = g.unit_features(x)
            else:
                f = g.features(x)
                out[i] = (f, g.moments(f))
        return out

    @torch.inference_mode()
    def reference(self, x: torch.Tensor) -> Reference:
        if x.shape[0] != 1:
            raise ValueError(f"one reference image at a time, got a batch of {x.shape[0]}")
        return Reference(x, self._features(x))

    @torch.inference_mode()
    def scores(self, ref: Reference, y: torch.Tensor) -> dict[str, float]:
        """Every metric of ``y`` (1 x 3 x H x W in [0,1]) against the reference."""
        check_images(ref.x, y)
        fy = self._features(y)
        out = {}
        for name, m in self.metrics.items():
            i = self.group_of.get(name)
            if i is None:
                out[name] = float(m(ref.x, y).reshape(-1)[0])
            elif isinstance(m, LPIPS):
                out[name] = float(m.combine(unit_terms(ref.feats[i], fy[i])).sum(1)[0])
            else:
                (fx, mx), (f, my) = ref.feats[i], fy[i]
                out[name] = float(m.score(fx, f, mx, my)[0])
        return out
