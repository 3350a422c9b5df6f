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
import torch.nn.functional as F
from tqdm import tqdm

from plic.checkpoint import load_checkpoint
from plic.quality import psnr

from .labels import TripletDataset
from .lpips_model import LPIPS, RankHead
from .official import METRIC_KIND

DEFAULT_LIN_STEPS = 3000  # at most, by default
LIN_MIN_STEPS = 1000
LIN_EPOCHS = 100
DEFAULT_EPOCHS = 5


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


def label_weights(n, cap: int):
    """A trial's weight in the loss: its judgments ``n``, at most ``cap`` (0: no cap)."""
    return n if cap <= 0 else n.clamp(max=cap)


def rank_loss(head: RankHead, d_a: torch.Tensor, d_b: torch.Tensor, p_b: torch.Tensor,
              n: torch.Tensor) -> torch.Tensor:
    """BCE of the head's logit against the soft label, each trial weighted by its judgments."""
    return F.binary_cross_entropy_with_logits(head(d_a, d_b), p_b, weight=n,
                                              reduction="sum") / n.sum()


HEAD_WARMUP_LR = 1e-3
HEAD_WARMUP_TRIALS = 512  # tune/scratch: trials whose distances the warm-up computes


def warm_up_head(head, d_a: torch.Tensor, d_b: torch.Tensor, p_b: torch.Tensor,
                 n: torch.Tensor, steps: int, lr: float = HEAD_WARMUP_LR) -> None:
    """Fit a fresh ranking head alone (full batch, Adam) on the current metric's distances.

    A freshly initialised BAPPS head is a random MLP of (d_A, d_B): for some seeds it maps a
    larger d_A to a *lower* probability of B. Fitted jointly from there, the non-negative linear
    weights can follow the head and turn the metric upside down (measured: held-out 2AFC 0.42 on
    one of eight seeds of the simulated Kodak study, with labels that agree with the metric).
    Orienting the head on the labels first, with the weights still, removes that."""
    opt = torch.optim.Adam(head.parameters(), lr=lr, betas=(0.5, 0.999))
    d_a, d_b = d_a.detach(), d_b.detach()
    for _ in range(steps):
        loss = rank_loss(head, d_a, d_b, p_b, n)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


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
    if not d.get("weight_cap"):             # the default: as metrics fitted before it existed
        d.pop("weight_cap", None)
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
