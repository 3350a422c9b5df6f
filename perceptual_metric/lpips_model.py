"""The LPIPS metric and the BAPPS ranking head.

Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric", CVPR 2018::

    x, y in [0,1] -> 2x-1 -> (. - shift) / scale -> trunk -> taps f_l(x), f_l(y)     (l = 1..L)
    d(x, y) = sum_l mean_hw( sum_c w_lc * (f_l(x)/|f_l(x)| - f_l(y)/|f_l(y)|)_c^2 ),  w_lc >= 0

|.| is the norm over channels at each position. Modes: ``lin`` (frozen ImageNet trunk, fit w),
``tune`` (fit trunk and w), ``scratch`` (random trunk, fit both).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
from torch import nn

from plic.fsio import sha256_file

from .trunks import CHANNELS, NETS, Trunk, build_trunk

MODES = ("lin", "tune", "scratch")
# lpips' input scaling, applied to [-1,1] images (ImageNet mean/std in that range)
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10
DEFAULT_RANGE_TOL = 0.05
MIN_SIZE = 32
# sha256 of the lpips 0.1.4 package's v0.1 linear-layer files
LPIPS_V01_SHA256 = {
    "alex": "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
    "vgg": "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
    "squeeze": "4a5350f23600cb79923ce65bb07cbf57dca461329894153e05a1346bd531cf76",
}


class InputError(ValueError):
    """Images that the metric cannot take (range, shape, dtype)."""


def check_images(x: torch.Tensor, y: torch.Tensor, tol: float = DEFAULT_RANGE_TOL) -> None:
    """Float N x 3 x H x W pairs in [0,1] (within ``tol``), same shape; else InputError."""
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor):
            raise InputError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise InputError(f"{name}: dtype {t.dtype}; convert uint8 images with x.float() / 255")
        if t.dim() != 4 or t.shape[1] != 3:
            raise InputError(f"{name}: shape {tuple(t.shape)}, expected N x 3 x H x W")
        if min(t.shape[2:]) < MIN_SIZE:
            raise InputError(f"{name}: {tuple(t.shape[2:])} pixels; the trunks need at least "
                             f"{MIN_SIZE} x {MIN_SIZE}")
    if x.shape != y.shape:
        raise InputError(f"x and y differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.device != y.device:
        raise InputError(f"x is on {x.device}, y on {y.device}: put both on one device")
    with torch.no_grad():
        lo, hi = torch.minimum(x.min(), y.min()).item(), torch.maximum(x.max(), y.max()).item()
    if not (lo >= -tol and hi <= 1 + tol):  # also catches NaN
        raise InputError(f"inputs span [{lo:.3g}, {hi:.3g}]; the metric takes images in [0,1] "
                         f"(tolerance {tol}). Images in [-1,1]? use (x + 1) / 2; else clamp.")


def unit_normalise(taps: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each tap divided by its channel norm at each position (LPIPS's normalisation)."""
    return [f / (f.pow(2).sum(1, keepdim=True).sqrt() + EPS) for f in taps]


def unit_terms(ux: list[torch.Tensor], uy: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per tapped layer, (N, C_l): the spatial mean of the squared difference of two images'
    unit-normalised features (``LPIPS.unit_features``); ``LPIPS.combine`` weights and sums them."""
    return [(a - b).pow(2).mean(dim=(2, 3)) for a, b in zip(ux, uy)]


def lpips_v01_path(net: str) -> Path:
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the lpips package (pip install 'plic[metric]') ships the v0.1 "
                                "linear weights; it is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "weights" / "v0.1" / f"{net}.pth"


def load_v01_linear(net: str, path: str | os.PathLike | None = None) -> list[torch.Tensor]:
    """The lpips v0.1 per-layer linear weights for ``net``: a list of (C_l,) tensors."""
    path = Path(path) if path is not None else lpips_v01_path(net)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: lpips v0.1 linear weights not found")
    digest = sha256_file(path)
    if digest != LPIPS_V01_SHA256[net]:
        raise ValueError(f"{path}: sha256 {digest} is not lpips 0.1.4's v0.1 {net}.pth")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    want = [f"lin{i}.model.1.weight" for i in range(len(CHANNELS[net]))]
    if sorted(sd) != sorted(want):
        raise ValueError(f"{path}: keys {sorted(sd)} != {want}")
    out = []
    for key, c in zip(want, CHANNELS[net]):
        if tuple(sd[key].shape) != (1, c, 1, 1):
            raise ValueError(f"{path}: {key} has shape {tuple(sd[key].shape)}, want (1,{c},1,1)")
        out.append(sd[key].reshape(c).float())
    return out


class LPIPS(nn.Module):
    """d(x, y) -> (N,) on float N x 3 x H x W in [0,1]; see the module docstring."""

    def __init__(self, net: str = "alex", mode: str = "lin", trunk: Trunk | None = None,
                 trunk_id: str = "random", range_tol: float = DEFAULT_RANGE_TOL):
        super().__init__()
        if net not in NETS:
            raise ValueError(f"unknown trunk {net!r}; choose one of {NETS}")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
        self.net, self.mode, self.trunk_id, self.range_tol = net, mode, trunk_id, range_tol
        self.trunk = trunk if trunk is not None else Trunk(net)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        # one non-negative weight per channel per tapped layer (lpips' 1x1 conv without bias)
        self.lins = nn.ParameterList(
            [nn.Parameter(torch.full((c,), 1.0 / c)) for c in CHANNELS[net]])
        if mode == "lin":
            self.trunk.requires_grad_(False)

    @classmethod
    def build(cls, net: str = "alex", mode: str = "lin", weights: str | None = None,
              linear: str = "uniform", download: bool | None = None) -> LPIPS:
        """An ImageNet (``lin``/``tune``) or random (``scratch``) trunk; ``linear`` is
        ``uniform`` (1/C each) or ``v0.1`` (the lpips package's weights)."""
        trunk, trunk_id = build_trunk(net, pretrained=mode != "scratch", weights=weights,
                                      download=download)
        model = cls(net, mode, trunk, trunk_id)
        if linear == "v0.1":
            model.set_linear(load_v01_linear(net))
        elif linear != "uniform":
            raise ValueError(f"unknown linear init {linear!r}: 'uniform' or 'v0.1'")
        return model

    def set_linear(self, weights: list[torch.Tensor]) -> None:
        if len(weights) != len(self.lins):
            raise ValueError(f"{len(weights)} linear layers for {len(self.lins)} taps")
        with torch.no_grad():
            for p, w in zip(self.lins, weights):
                if w.shape != p.shape:
                    raise ValueError(f"linear weight of shape {tuple(w.shape)}, want "
                                     f"{tuple(p.shape)}")
                p.copy_(w)

    @torch.no_grad()
    def project(self) -> None:
        """Clamp the linear weights to be non-negative (after every optimiser step)."""
        for p in self.lins:
            p.clamp_(min=0)

    def follow(self, x: torch.Tensor) -> None:
        """Move to the inputs' device (the result is on the inputs' device)."""
        if self.shift.device != x.device:
            self.to(x.device)

    def unit_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The trunk's taps of images in [0,1], unit-normalised over channels at each position
        (no input checks: callers check)."""
        return unit_normalise(self.trunk((x * 2 - 1 - self.shift) / self.scale))

    def channel_terms(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """Per tapped layer, (N, C_l): spatial mean of the squared unit-feature differences.
        d(x, y) is linear in the weights given these (the fast path of ``lin`` fitting)."""
        check_images(x, y, self.range_tol)
        self.follow(x)
        n = x.shape[0]
        f = self.unit_features(torch.cat([x, y]))
        return unit_terms([t[:n] for t in f], [t[n:] for t in f])

    def triplet_terms(self, ref: torch.Tensor, a: torch.Tensor, b: torch.Tensor
                      ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``channel_terms`` of (ref, a) and (ref, b), running the trunk on ``ref`` once."""
        check_images(ref, a, self.range_tol)
        check_images(ref, b, self.range_tol)
        self.follow(ref)
        n = ref.shape[0]
        f = self.unit_features(torch.cat([ref, a, b]))
        fr = [t[:n] for t in f]
        return (unit_terms(fr, [t[n:2 * n] for t in f]),
                unit_terms(fr, [t[2 * n:] for t in f]))

    def combine(self, terms: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """(N, L) per-layer distances from ``channel_terms`` (a list, or its layers concatenated
        along dim 1)."""
        if isinstance(terms, torch.Tensor):
            terms = terms.split(list(self.trunk.channels), 1)
        return torch.stack([(t * w).sum(1) for t, w in zip(terms, self.lins)], 1)

    def pair_distances(self, ref: torch.Tensor, a: torch.Tensor, b: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """d(ref, a), d(ref, b) with one trunk pass over ``ref``."""
        ta, tb = self.triplet_terms(ref, a, b)
        return self.combine(ta).sum(1), self.combine(tb).sum(1)

    def layer_distances(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(N, L): the per-layer terms that sum to d(x, y)."""
        return self.combine(self.channel_terms(x, y))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.layer_distances(x, y).sum(1)

    def config(self) -> dict:
        return {"net": self.net, "mode": self.mode, "trunk_id": self.trunk_id,
                "range_tol": float(self.range_tol)}

    def freeze(self) -> LPIPS:
        """Evaluation mode, no parameter gradients (inputs stay differentiable)."""
        self.eval()
        self.requires_grad_(False)
        return self


class RankHead(nn.Module):
    """BAPPS head: (d0, d1) -> P(people choose side 1 as closer to the reference)."""

    def __init__(self, hidden: int = 32, eps: float = 0.1):
        super().__init__()
        self.eps = eps
        self.net = nn.Sequential(nn.Linear(5, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, 1))

    def forward(self, d0: torch.Tensor, d1: torch.Tensor) -> torch.Tensor:
        """Logit of choosing side 1 (use BCE-with-logits; sigmoid gives the probability)."""
        feats = torch.stack([d0, d1, d0 - d1, d0 / (d1 + self.eps), d1 / (d0 + self.eps)], 1)
        return self.net(feats).squeeze(1)
