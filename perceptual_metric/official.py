"""Ready-made metrics: ``official(net)`` (lpips v0.1) and ``load(path)`` (a fitted checkpoint).

Both return a frozen ``LPIPS`` module: ``d(x, y) -> (N,)`` on float N x 3 x H x W in [0,1], on the
inputs' device, differentiable with respect to the inputs. ``d.name`` says what it is; wherever
the SqueezeNet trunk is not torchvision's it reads ``lpips-squeeze-keras``.
"""

from __future__ import annotations

import os

from plic.checkpoint import CheckpointError, load_checkpoint

from .lpips_model import LPIPS
from .trunks import NETS, Trunk

METRIC_KIND = "metric"
_ALIASES = {"alex": "alex", "alexnet": "alex", "vgg": "vgg", "vgg16": "vgg",
            "squeeze": "squeeze", "squeezenet": "squeeze"}


def metric_name(net: str, trunk_id: str, fitted: bool = False) -> str:
    name = f"lpips-{net}"
    if net == "squeeze" and trunk_id == "lpips-squeeze-keras":
        name = "lpips-squeeze-keras"
    return name + ("-fitted" if fitted else "")


def official(net: str = "alex", weights: str | os.PathLike | None = None,
             download: bool | None = None) -> LPIPS:
    """LPIPS v0.1 (the lpips package's linear weights) on the resolved ImageNet trunk."""
    key = _ALIASES.get(str(net).lower())
    if key is None:
        raise ValueError(f"unknown LPIPS network {net!r}; choose one of {NETS}")
    model = LPIPS.build(key, "lin", weights=weights, linear="v0.1", download=download)
    model.name = metric_name(key, model.trunk_id)
    return model.freeze()


def load(path: str | os.PathLike, map_location: str = "cpu") -> LPIPS:
    """A fitted metric from ``runs/metric.pt`` (checkpoint kind ``metric``), frozen."""
    ckpt = load_checkpoint(path, kind=METRIC_KIND, map_location=map_location)
    cfg = ckpt["config"]
    try:
        net, mode, trunk_id = cfg["net"], cfg["mode"], cfg["trunk_id"]
    except KeyError as e:
        raise CheckpointError(f"{path}: metric config lacks {e}") from e
    model = LPIPS(net, mode, Trunk(net), trunk_id, float(cfg.get("range_tol", 0.05)))
    sd = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith("head.")}
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match a {net} LPIPS: {e}") from e
    if any((p < 0).any() for p in model.lins):
        raise CheckpointError(f"{path}: negative linear weights; not a valid LPIPS checkpoint")
    model.name = ckpt["model"]
    model.provenance = ckpt["provenance"]
    return model.freeze()
