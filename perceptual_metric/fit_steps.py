"""What both fits share (``perceptual_metric.fit`` on 2AFC labels, ``perceptual_metric.fit_mos``
on opinion scores): the step schedule, the views of each trial, their channel terms from the
trunk, PSNR on the same crops, and whether an output was already fitted with these settings.
``cfg`` is a ``perceptual_metric.fit.FitConfig``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from plic.checkpoint import load_checkpoint
from plic.quality import psnr

from .labels import TripletDataset
from .lpips_model import LPIPS
from .official import METRIC_KIND

DEFAULT_LIN_STEPS = 3000  # at most, by default
LIN_MIN_STEPS = 1000
LIN_EPOCHS = 100
DEFAULT_EPOCHS = 5


def lr_at(step: int, total: int, base: float, decay_fraction: float) -> float:
    """Constant ``base``, then linear decay to 0 over the last ``decay_fraction`` of steps."""
    decay_steps = max(1, int(round(total * decay_fraction)))
    start = total - decay_steps
    return base if step < start else base * max(0.0, (total - step) / decay_steps)


def total_steps(cfg, n_train: int) -> int:
    per_epoch = math.ceil(n_train / cfg.batch_size)
    if cfg.steps is not None:
        return cfg.steps
    if cfg.epochs is not None:
        return cfg.epochs * per_epoch
    if cfg.mode == "lin":  # steps are cheap, but a few hundred labels need no 3000 of them
        return min(DEFAULT_LIN_STEPS, max(LIN_MIN_STEPS, LIN_EPOCHS * per_epoch))
    return DEFAULT_EPOCHS * per_epoch


def make_views(ds: TripletDataset, idx: list[int], k: int, seed: int, flip: bool) -> list[list]:
    """Per trial of ``idx``, ``k`` (box, flip_h, flip_v) views; one whole view without patches."""
    rng = np.random.default_rng(seed)
    k = 1 if ds.patch_size is None else k
    # identical views (patch-sized images) would only cost trunk passes: keep each once
    return [list(dict.fromkeys(ds.views(i, k, rng, flip))) for i in idx]


@torch.no_grad()
def view_terms(model: LPIPS, ds: TripletDataset, idx: list[int], views: list[list],
               batch_size: int = 32, desc: str = "features") -> torch.Tensor:
    """(len(idx), V, 2, sum C) channel terms of every (trial, view), A then B."""
    items = [(j, v, i, view) for j, (i, vs) in enumerate(zip(idx, views))
             for v, view in enumerate(vs)]
    n_views = max(len(vs) for vs in views)
    out = torch.zeros(len(idx), n_views, 2, sum(model.trunk.channels))
    bs = batch_size if ds.patch_size is not None else 1  # whole images may differ in size
    dev = model.shift.device
    for s in tqdm(range(0, len(items), bs), desc=desc, leave=False, disable=len(items) < 64):
        chunk = items[s:s + bs]
        trip = [ds.crop(i, *view) for _, _, i, view in chunk]
        ref, a, b = (torch.stack([t[k] for t in trip]).to(dev) for k in range(3))
        ta, tb = model.triplet_terms(ref, a, b)
        ta, tb = torch.cat(ta, 1).cpu(), torch.cat(tb, 1).cpu()
        for r, (j, v, _, _) in enumerate(chunk):
            out[j, v, 0], out[j, v, 1] = ta[r], tb[r]
    return out


def view_distances(model: LPIPS, terms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """d_A, d_B from (N, 2, sum C) terms (differentiable in the linear weights)."""
    return model.combine(terms[:, 0]).sum(1), model.combine(terms[:, 1]).sum(1)


def psnr_distances(ds: TripletDataset, idx: list[int], views: list[list]) -> np.ndarray:
    """(N, 2): -PSNR of A and B on the same crops, averaged over views (lower is closer)."""
    out = np.zeros((len(idx), 2))
    for j, (i, vs) in enumerate(zip(idx, views)):
        ref, a, b = ds.images(i)
        for (y, x, h, w), _, _ in vs:
            r = ref[y:y + h, x:x + w]
            out[j, 0] -= psnr(r, a[y:y + h, x:x + w]) / len(vs)
            out[j, 1] -= psnr(r, b[y:y + h, x:x + w]) / len(vs)
    return out


def _comparable(cfg) -> dict:
    """The settings that change the result (not where or how fast it runs)."""
    d = dict(cfg) if isinstance(cfg, dict) else dataclasses.asdict(cfg)
    for k in ("resume", "force", "threads", "device"):
        d.pop(k, None)
    return d


def _done_before(cfg, labels_hash: str) -> bool:
    if cfg.force or not Path(cfg.out).is_file():
        return False
    try:
        ckpt = load_checkpoint(cfg.out, METRIC_KIND)
    except Exception:  # unreadable or other kind: refit
        return False
    return (ckpt["provenance"].get("labels_sha256") == labels_hash
            and _comparable(ckpt["config"].get("fit", {})) == _comparable(cfg))
