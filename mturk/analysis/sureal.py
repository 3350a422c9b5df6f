"""Per-worker bias and inconsistency: the SUREAL-style maximum-likelihood model.

Li and Bampis (2017), "Recover subjective quality scores from noisy measurements" (the
``MLE_CO`` model of Netflix's ``sureal``, without the per-content term)::

    u_ij = psi_j + delta_i + upsilon_i * X_ij,        X_ij ~ N(0, 1)

``psi_j`` is stimulus ``j``'s true score, ``delta_i`` worker ``i``'s bias, ``upsilon_i`` their
inconsistency. Only the scores a worker gave enter (crowd designs are incomplete). The
likelihood's maximum is found by coordinate ascent, each step the exact maximiser of one block::

    delta_i     = mean_j (u_ij - psi_j)
    upsilon_i^2 = mean_j (u_ij - psi_j - delta_i)^2             (floored at upsilon_min^2)
    psi_j       = sum_i w_i (u_ij - delta_i) / sum_i w_i,       w_i = 1 / upsilon_i^2

then ``delta`` is centred (mean 0 over workers) and ``psi`` shifted by the same amount, since
only ``psi_j + delta_i`` is identified. Stops when no value moves by more than ``tol``. 95%
intervals from the Fisher information: ``psi_j +- 1.96 / sqrt(sum_i w_i)`` and
``delta_i +- 1.96 upsilon_i / sqrt(n_i)``. The floor ``upsilon_min`` (default 0.1 scale points)
keeps a worker who matches the consensus exactly from taking infinite weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

Z95 = 1.959963984540054


@dataclass
class SurealFit:
    psi: pd.Series          # per stimulus
    psi_ci: pd.Series       # half-width of the 95% interval
    bias: pd.Series         # delta, per worker
    bias_ci: pd.Series
    noise: pd.Series        # upsilon, per worker
    iterations: int


def fit_sureal(ratings: pd.DataFrame, worker: str = "worker_id", stimulus: str = "stimulus_id",
               score: str = "score", tol: float = 1e-7, max_iter: int = 5000,
               upsilon_min: float = 0.1) -> SurealFit:
    workers, wi = np.unique(ratings[worker].astype(str), return_inverse=True)
    stims, sj = np.unique(ratings[stimulus].astype(str), return_inverse=True)
    u = ratings[score].to_numpy(float)
    nw, ns = len(workers), len(stims)
    n_i = np.bincount(wi, minlength=nw).astype(float)
    psi = np.bincount(sj, u, ns) / np.bincount(sj, minlength=ns)
    delta = np.zeros(nw)
    ups2 = np.ones(nw)
    it = 0
    while it < max_iter:
        it += 1
        old = np.concatenate([psi, delta, ups2])
        delta = np.bincount(wi, u - psi[sj], nw) / n_i
        r = u - psi[sj] - delta[wi]
        ups2 = np.maximum(np.bincount(wi, r * r, nw) / n_i, upsilon_min ** 2)
        w = 1.0 / ups2[wi]
        psi = np.bincount(sj, w * (u - delta[wi]), ns) / np.bincount(sj, w, ns)
        m = delta.mean()
        delta, psi = delta - m, psi + m
        if np.max(np.abs(np.concatenate([psi, delta, ups2]) - old)) < tol:
            break
    info = np.bincount(sj, 1.0 / ups2[wi], ns)
    ups = np.sqrt(ups2)
    return SurealFit(psi=pd.Series(psi, stims), psi_ci=pd.Series(Z95 / np.sqrt(info), stims),
                     bias=pd.Series(delta, workers),
                     bias_ci=pd.Series(Z95 * ups / np.sqrt(n_i), workers),
                     noise=pd.Series(ups, workers), iterations=it)
