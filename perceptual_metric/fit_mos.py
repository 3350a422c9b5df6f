"""Fit the metric on opinion scores: ``python -m perceptual_metric.fit --labels mos.csv``.

``perceptual_metric.fit`` hands a ``mos.csv`` (``mturk.mos``; ``mturk.schema.MOS_COLUMNS``) to
``fit_on_mos``. The score of a stimulus is its DMOS when every distorted stimulus has one (ACR
with hidden references), else its MOS (DSIS); hidden references are not fitted (their distance
to themselves is 0 whatever the weights).

**Loss: a pairwise ranking loss on MOS differences.** Every pair of distorted stimuli ``(i, j)``
(across references too: opinion scores are on one absolute scale) becomes a soft 2AFC label

    p_ij = Phi((s_j - s_i) / sqrt(se_i^2 + se_j^2)),     se = ci / 1.96 (floored at 0.05)

the probability that ``j`` truly scores higher given both intervals, and the metric is fitted
with BCE to ``P(j better) = sigmoid(k (d_i - d_j))`` (RankNet, Burges et al. 2005; ``k > 0``
learnt, reported as ``rank_scale``): the order of the distances alone carries the scores, so
the metric stays a distance (non-negative linear weights over a frozen trunk, ``lin`` mode only).
No BAPPS head is fitted or saved: on a few dozen stimuli the head's MLP learnt to fit the pairs
while the distances' order got worse on held-out references (SROCC 0.94 -> 0.74 where RankNet
went 0.94 -> 0.98, constructed scores, 40 stimuli). Train/validation split by reference image.

**Evaluation** on the validation references' stimuli (distance averaged over fixed crops):
SROCC of ``-d`` with the score, PLCC after the usual monotonic 4-parameter logistic mapping of
``d`` to the score (VQEG; fitted on the same stimuli, linear when the fit fails), each with a
95% percentile bootstrap interval over stimuli; beside them the 2AFC agreement on the
validation pairs' soft labels and PSNR's SROCC on the same crops.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import optimize, stats

from mturk.analysis.sureal import Z95
from mturk.schema import LABELS_COLUMNS, MOS_COLUMNS, MOS_ID
from plic.checkpoint import save_checkpoint
from plic.fsio import atomic_write_text
from plic.schedule import lr_at
from plic.tables import read_table, resolve_path

from .labels import LabelsError, Trial, TripletDataset, group_split, labels_sha256
from .lpips_model import LPIPS
from .official import METRIC_KIND, metric_name
from .scoring import two_afc

SE_FLOOR = 0.05


def is_mos_table(path) -> bool:
    """Whether ``path`` is a ``mos.csv`` (by its header) rather than a 2AFC ``labels.csv``."""
    try:
        with open(path, encoding="utf-8") as f:
            header = f.readline().strip().split(",")
    except OSError:
        return False
    return header == MOS_COLUMNS and header != LABELS_COLUMNS


def read_mos(path) -> tuple[list[Trial], np.ndarray, np.ndarray, str]:
    """(one Trial per distorted stimulus with a = b = the stimulus, scores, standard errors,
    the score's name)."""
    df = read_table(path, MOS_COLUMNS, MOS_ID)
    df = df[df.hidden_ref.astype(str) != "1"]
    if len(df) < 3:
        raise LabelsError(f"{path}: {len(df)} distorted stimuli; a fit needs at least 3")
    col = "dmos" if (df.dmos != "").all() else "mos"
    ci_col = col + "_ci"
    try:
        s = df[col].astype(float).to_numpy()
        ci = df[ci_col].replace("", "nan").astype(float).to_numpy()
    except ValueError as e:
        raise LabelsError(f"{path}: {col}/{ci_col} are not numbers ({e})") from e
    if not np.isfinite(s).all():
        raise LabelsError(f"{path}: {col} has empty or non-finite values")
    se = np.maximum(np.nan_to_num(ci / Z95, nan=1.0), SE_FLOOR)
    trials = []
    for r in df.to_dict("records"):
        ref, p = resolve_path(r["ref_path"], path), resolve_path(r["path"], path)
        for f in (ref, p):
            if not Path(f).is_file():
                raise LabelsError(f"{path}: stimulus {r['stimulus_id']!r}: {f} not found")
        trials.append(Trial(r["stimulus_id"], r["ref_id"], r["stimulus_id"], r["stimulus_id"],
                            ref, p, p, 0.5, 1, r["codec"], r["codec"]))
    return trials, s, se, col


def pair_labels(s: np.ndarray, se: np.ndarray, idx: list[int]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs (i < j) of ``idx`` with ``p_ij = Phi((s_j - s_i) / sqrt(se_i^2 + se_j^2))``."""
    i, j = np.triu_indices(len(idx), 1)
    gi, gj = np.asarray(idx)[i], np.asarray(idx)[j]
    p = stats.norm.cdf((s[gj] - s[gi]) / np.sqrt(se[gi] ** 2 + se[gj] ** 2))
    return gi, gj, p


def logistic4(d, b1, b2, b3, b4):
    return b2 + (b1 - b2) / (1 + np.exp(-(d - b3) / abs(b4)))


def mapped_plcc(d: np.ndarray, s: np.ndarray) -> float:
    """PLCC between the score and the 4-parameter logistic mapping of ``d`` (linear fallback)."""
    try:
        p0 = [s.min(), s.max(), float(np.median(d)), float(np.std(d)) or 1.0]
        with np.errstate(over="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)   # no covariance needed
            b, _ = optimize.curve_fit(logistic4, d, s, p0=p0, maxfev=20000)
            pred = logistic4(d, *b)
        if not np.isfinite(pred).all() or np.std(pred) == 0:
            raise RuntimeError("degenerate mapping")
    except (RuntimeError, ValueError):
        pred = -d
    return float(stats.pearsonr(pred, s)[0])


def correlations(d: np.ndarray, s: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict:
    """SROCC and PLCC with 95% percentile bootstrap intervals over stimuli (PLCC refits its
    mapping per resample, so it takes at most 300 of them: curve fits are slow)."""
    d, s = np.asarray(d, float), np.asarray(s, float)
    out = dict(srocc=float(stats.spearmanr(-d, s)[0]), plcc=mapped_plcc(d, s), n=len(s))
    rng = np.random.default_rng(seed)
    for key, fn, n in (("srocc", lambda d, s: stats.spearmanr(-d, s)[0], n_boot),
                       ("plcc", mapped_plcc, min(n_boot, 300))):
        v = []
        for _ in range(n):
            k = rng.integers(0, len(s), len(s))
            if np.ptp(s[k]) > 0 and np.ptp(d[k]) > 0:
                v.append(fn(d[k], s[k]))
        out[key + "_ci"] = [float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975))]
    return out


def fit_on_mos(cfg, log=print) -> dict:
    """``perceptual_metric.fit`` on a ``mos.csv`` (``cfg``: its ``FitConfig``)."""
    from .fit_common import (
        _done_before,
        make_views,
        psnr_distances,
        total_steps,
        view_terms,
    )

    if cfg.mode != "lin":
        raise ValueError(f"--mode {cfg.mode}: fitting on opinion scores supports lin only")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    t0 = time.time()
    labels_hash = labels_sha256(cfg.labels)
    if _done_before(cfg, labels_hash):
        log(f"{cfg.out} is already fitted on these scores with this config; nothing to do "
            "(--force refits)")
        from plic.checkpoint import load_checkpoint
        return load_checkpoint(cfg.out, METRIC_KIND)["provenance"]
    trials, s, se, score_name = read_mos(cfg.labels)
    train_idx, val_idx = group_split(trials, cfg.val_fraction, cfg.seed)
    patch = cfg.patch or None
    ds = TripletDataset(trials, patch, train=True, flip=cfg.flip, seed=cfg.seed)
    model = LPIPS.build(cfg.trunk, cfg.mode, weights=cfg.trunk_weights,
                        linear=cfg.linear_init).to(cfg.device)
    log_k = torch.zeros((), requires_grad=True)
    opt = torch.optim.Adam(list(model.lins) + [log_k], lr=cfg.lr,
                           betas=(cfg.beta1, 0.999))
    views = make_views(ds, list(range(len(trials))), cfg.views, cfg.seed, cfg.flip)
    terms = view_terms(model, ds, list(range(len(trials))), views)[:, :, 0]   # (N, V, S)
    n_views = torch.tensor([float(len(v)) for v in views])
    gi, gj, p = pair_labels(s, se, train_idx)
    if len(p) == 0:
        raise LabelsError(f"{cfg.labels}: no training pairs (too few stimuli)")
    total = total_steps(cfg, len(p))
    log(f"{len(train_idx)} training / {len(val_idx)} validation stimuli ({len(p)} training "
        f"pairs, score {score_name}); {total} steps; trunk {model.trunk_id}")
    gen = torch.Generator().manual_seed(cfg.seed)
    pi, pj, pt = torch.from_numpy(gi), torch.from_numpy(gj), torch.tensor(p, dtype=torch.float32)
    torch.set_num_threads(1)
    losses = []
    for step in range(total):
        b = torch.randint(0, len(pt), (min(cfg.batch_size, len(pt)),), generator=gen)
        vi = (torch.rand(len(b), generator=gen) * n_views[pi[b]]).long()
        vj = (torch.rand(len(b), generator=gen) * n_views[pj[b]]).long()
        d_i = model.combine(terms[pi[b], vi]).sum(1)
        d_j = model.combine(terms[pj[b], vj]).sum(1)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, cfg.lr, decay_fraction=cfg.decay_fraction)
        loss = F.binary_cross_entropy_with_logits(log_k.exp() * (d_i - d_j), pt[b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.project()
        losses.append(loss.item())
    model.eval()
    prov = {"labels_path": str(cfg.labels), "labels_sha256": labels_hash, "labels_kind": "mos",
            "score": score_name, "simulated_labels": _simulated(cfg.labels),
            "trunk_id": model.trunk_id, "n_train": len(train_idx), "n_val": len(val_idx),
            "val_refs": sorted({trials[i].ref_id for i in val_idx}), "steps": total,
            "final_loss": float(np.mean(losses[-max(1, total // 10):])),
            "rank_scale": float(log_k.detach().exp())}
    if len(val_idx) >= 3:
        with torch.no_grad():
            mean_terms = terms.sum(1) / n_views.view(-1, 1)
            d = model.combine(mean_terms).sum(1).double().numpy()
        v = np.asarray(val_idx)
        prov["val"] = correlations(d[v], s[v], seed=cfg.seed)
        vi_, vj_, vp = pair_labels(s, se, val_idx)
        agree = two_afc(d[vi_], d[vj_], vp)
        prov["val_2afc"] = float(agree.mean())
        d_psnr = psnr_distances(ds, val_idx, [views[i] for i in val_idx])[:, 0]
        prov["val_psnr_srocc"] = float(stats.spearmanr(-d_psnr, s[v])[0])
        val = prov["val"]
        log(f"validation ({len(v)} stimuli): SROCC {val['srocc']:.3f} "
            f"[{val['srocc_ci'][0]:.3f}, {val['srocc_ci'][1]:.3f}], PLCC {val['plcc']:.3f} "
            f"[{val['plcc_ci'][0]:.3f}, {val['plcc_ci'][1]:.3f}], 2AFC on MOS pairs "
            f"{prov['val_2afc']:.3f}; PSNR SROCC {prov['val_psnr_srocc']:.3f}")
    prov["fit_seconds"] = round(time.time() - t0, 2)
    config = {**model.config(), "fit": dataclasses.asdict(cfg)}
    state = model.state_dict()
    name = metric_name(cfg.trunk, model.trunk_id, fitted=True)
    save_checkpoint(cfg.out, METRIC_KIND, name, config, state, prov)
    atomic_write_text(Path(cfg.out).with_suffix(".json"), json.dumps(
        {"model": name, "config": config, "provenance": prov}, indent=2) + "\n")
    log(f"wrote {cfg.out} ({name}) fitted on {score_name} in {prov['fit_seconds']} s")
    return prov


def _simulated(path) -> bool:
    meta = Path(path).parent / "mos.json"
    try:
        return bool(json.loads(meta.read_text()).get("simulated"))
    except (OSError, ValueError, AttributeError):
        return False
