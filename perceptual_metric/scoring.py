"""The 2AFC agreement score and the distances it is computed from.

For a trial with soft label ``p_b`` (fraction of people choosing B as closer to the reference), a
metric that finds B closer (d_B < d_A) agrees with a fraction ``p_b`` of people, one that finds A
closer with ``1 - p_b``, and a tie counts one half. The score is the mean over trials (BAPPS);
``ceiling`` is the best any metric can get, mean(max(p_b, 1 - p_b)). Intervals: percentile
bootstrap over trials.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from plic.checkpoint import load_checkpoint
from plic.quality import ms_ssim, psnr

from .labels import TripletDataset, group_split
from .official import load, official
from .trunks import WeightsError


def two_afc(d_a: np.ndarray, d_b: np.ndarray, p_b: np.ndarray) -> np.ndarray:
    """Per-trial agreement in [0,1] (see the module docstring)."""
    d_a, d_b, p_b = (np.asarray(v, dtype=np.float64) for v in (d_a, d_b, p_b))
    return np.where(d_b < d_a, p_b, np.where(d_a < d_b, 1 - p_b, 0.5))


def ceiling(p_b: np.ndarray) -> np.ndarray:
    p_b = np.asarray(p_b, dtype=np.float64)
    return np.maximum(p_b, 1 - p_b)


def bootstrap_ci(scores: np.ndarray, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``scores``."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for i in range(0, n_boot, 256):  # chunks keep memory flat for big label sets
        k = min(256, n_boot - i)
        means[i:i + k] = scores[rng.integers(0, len(scores), (k, len(scores)))].mean(1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def image_distance(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """Classical baselines as distances on uint8 RGB: lower means closer."""
    if name == "psnr":
        return lambda r, x: -psnr(r, x)  # identical images: -inf, closest
    if name == "ms-ssim":
        return lambda r, x: 1.0 - ms_ssim(r, x)
    raise ValueError(f"unknown baseline {name!r}: 'psnr' or 'ms-ssim'")


def classical_distances(name: str, ds: TripletDataset, indices: Sequence[int]
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(d_A, d_B) of a classical baseline on the same crops the learned metrics see."""
    fn = image_distance(name)
    d_a, d_b = [], []
    for i in tqdm(indices, desc=name, leave=False, disable=len(indices) < 200):
        ref, a, b = ds.images(i)
        y, x, h, w = ds.crop_box(*ref.shape[:2])
        ref, a, b = (im[y:y + h, x:x + w] for im in (ref, a, b))
        d_a.append(fn(ref, a))
        d_b.append(fn(ref, b))
    return np.array(d_a), np.array(d_b)


@torch.no_grad()
def metric_distances(metric: torch.nn.Module, ds: TripletDataset, indices: Sequence[int],
                     batch_size: int = 16, desc: str = "metric") -> tuple[np.ndarray, np.ndarray]:
    """(d_A, d_B) of a torch metric ``d(x, y) -> (N,)`` over the trials ``indices``."""
    if ds.train:
        raise ValueError("score on an evaluation dataset (train=False): no random crops")
    dev = next(iter(metric.buffers()), torch.empty(0)).device
    d_a, d_b = [], []
    indices = list(indices)
    for s in tqdm(range(0, len(indices), batch_size), desc=desc, leave=False,
                  disable=len(indices) < 200):
        items = [ds[i] for i in indices[s:s + batch_size]]
        groups = [items] if ds.patch_size is not None else [[it] for it in items]
        for group in groups:  # whole images may differ in size between trials
            ref, a, b = (torch.stack([it[k] for it in group]).to(dev) for k in range(3))
            if hasattr(metric, "pair_distances"):  # one trunk pass over the reference
                da, db = metric.pair_distances(ref, a, b)
            else:
                da, db = metric(ref, a), metric(ref, b)
            d_a.append(da)
            d_b.append(db)
    return (torch.cat(d_a).cpu().numpy().astype(np.float64),
            torch.cat(d_b).cpu().numpy().astype(np.float64))


# -- what both evaluations score (perceptual_metric.evaluate on labels, evaluate_mos on MOS) --

def val_indices(args, ap, trials: Sequence) -> list[int]:
    """The rows of ``trials`` the first ``--metric`` checkpoint's fit held out (its seed and
    fraction), for ``--split val``."""
    if not args.metric:
        ap.error("--split val needs --metric (the split comes from its fit config)")
    fit_cfg = load_checkpoint(args.metric[0], "metric")["config"].get("fit", {})
    return group_split(trials, float(fit_cfg.get("val_fraction", 0.2)),
                       int(fit_cfg.get("seed", 0)))[1]


def scored_distances(args, ap, baselines: Sequence[str], ds: TripletDataset,
                     indices: Sequence[int], skip_to=None):
    """(name, ``*_distances`` result) for each fitted ``--metric`` and each of ``--baselines``
    (an unknown one is an ``ap.error``); an LPIPS baseline without its weights is skipped with
    a line on ``skip_to`` (None: stdout)."""
    for path in args.metric:
        m = load(path)
        yield m.name, metric_distances(m, ds, indices, desc=m.name)
    for b in [b for b in args.baselines.split(",") if b]:
        if b not in baselines:
            ap.error(f"unknown baseline {b!r}; choose from {baselines}")
        if b in ("psnr", "ms-ssim"):
            yield b, classical_distances(b, ds, indices)
            continue
        try:
            m = official(b.split("-", 1)[1])
        except WeightsError as e:
            print(f"skipping {b}: {e}", file=skip_to)
            continue
        yield m.name, metric_distances(m, ds, indices, desc=m.name)
