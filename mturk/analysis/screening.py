"""Observer screening for rating studies: ITU-R BT.500 (Annex 2, section 2.3.1), kurtosis-based.

We follow BT.500-14's screening of DSIS/DSCQS-type scores (not the newer P.913 recommendation).
Per stimulus ``j`` (BT.500's "presentation"; here one (reference, distortion) view) over the
``N_j`` scores ``u_ij`` it received:

    mean  u_j = sum_i u_ij / N_j
    S_j   = sqrt(sum_i (u_ij - u_j)^2 / (N_j - 1))
    m_k   = sum_i (u_ij - u_j)^k / N_j,     beta2_j = m_4 / m_2^2      (kurtosis)

A score is *high* when ``u_ij >= u_j + c_j S_j`` and *low* when ``u_ij <= u_j - c_j S_j``, with
``c_j = 2`` when ``2 <= beta2_j <= 4`` (scores about normal) and ``c_j = sqrt(20)`` otherwise.
``P_i`` counts observer ``i``'s high scores, ``Q_i`` their low ones. Observer ``i`` is rejected
when

    (P_i + Q_i) / n_i > 0.05   and   |P_i - Q_i| / (P_i + Q_i) < 0.3

with ``n_i`` the number of scores they gave (BT.500's J x K x L, the complete design's count;
in a crowd study each worker sees only some stimuli). The second condition keeps observers whose
outliers all lie on one side: a consistent bias, which the bias model (``mturk.analysis.sureal``)
corrects, is not noise. Two choices the recommendation leaves open, for discrete scales: a
stimulus whose scores all agree (``S_j = 0``) marks nobody, and a stimulus needs at least
``min_scores`` (default 4) scores to take part (fewer say nothing about outliers). One pass, as
in BT.500: rejecting never recomputes the statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

NORMAL_KURTOSIS = (2.0, 4.0)
C_NORMAL, C_OTHER = 2.0, math.sqrt(20.0)
MAX_OUTLIER_SHARE = 0.05
MAX_ASYMMETRY = 0.3


@dataclass(frozen=True)
class StimulusStats:
    mean: float
    sd: float            # S_j, sample standard deviation (N - 1)
    kurtosis: float      # beta2_j = m4 / m2^2 (nan when m2 = 0)
    c: float             # 2 or sqrt(20)


def stimulus_stats(scores) -> StimulusStats:
    u = np.asarray(scores, dtype=float)
    mean = float(u.mean())
    d = u - mean
    m2, m4 = float(np.mean(d ** 2)), float(np.mean(d ** 4))
    sd = float(math.sqrt(np.sum(d ** 2) / (len(u) - 1))) if len(u) > 1 else 0.0
    beta2 = m4 / m2 ** 2 if m2 > 0 else math.nan
    normal = NORMAL_KURTOSIS[0] <= beta2 <= NORMAL_KURTOSIS[1]
    return StimulusStats(mean, sd, beta2, C_NORMAL if normal else C_OTHER)


def bt500_screen(ratings: pd.DataFrame, min_scores: int = 4, worker: str = "worker_id",
                 stimulus: str = "stimulus_id", score: str = "score") -> pd.DataFrame:
    """Per worker: ``n`` scores, ``P``, ``Q``, ``outlier_share``, ``asymmetry``, ``rejected``
    (index: worker id). ``ratings`` has one row per (worker, stimulus) score."""
    p: dict[str, int] = {}
    q: dict[str, int] = {}
    for _sid, g in ratings.groupby(stimulus, sort=True):
        if len(g) < min_scores:
            continue
        st = stimulus_stats(g[score])
        if st.sd == 0:
            continue
        hi, lo = st.mean + st.c * st.sd, st.mean - st.c * st.sd
        for w, u in zip(g[worker], g[score]):
            if u >= hi:
                p[w] = p.get(w, 0) + 1
            if u <= lo:
                q[w] = q.get(w, 0) + 1
    rows = []
    for w, n in ratings.groupby(worker).size().items():
        pw, qw = p.get(w, 0), q.get(w, 0)
        share = (pw + qw) / n
        asym = abs(pw - qw) / (pw + qw) if pw + qw else math.nan
        rejected = bool(share > MAX_OUTLIER_SHARE and asym < MAX_ASYMMETRY)
        rows.append(dict(worker_id=w, n=int(n), P=pw, Q=qw, outlier_share=share,
                         asymmetry=asym, rejected=rejected))
    return pd.DataFrame(rows).set_index("worker_id")
