"""Which test pairs a round asks (``mturk.trials --strategy active``): the acquisition rule.

A study in rounds asks, each round, ``round_trials`` test pairs out of the candidates (every pair
``mturk.trials`` would ask today, same ids, same a/b). Per candidate it knows the current labels
(``labels.csv``: ``p_b`` of ``n`` kept judgments, merged over the rounds by
``mturk.active.study_rounds``) and the current metric's prediction (``predictions.csv``,
``mturk.schema.PREDICTIONS_COLUMNS``: ``p_b`` = the fitted metric's probability that people pick B,
written by ``python -m perceptual_metric.predict``; this package never imports the metric).

**Settled** (never asked again): with ``k = round(p_b * n)`` of ``n`` choosing B, the Jeffreys
posterior Beta(k + 1/2, n - k + 1/2) puts at least ``confidence`` (default 0.9) on one side of
1/2 (2 of 2, 3 of 3, 4 of 5 agreeing settle a pair), or ``n >= max_n`` (default 8: a near-tie
that more judgments will not turn into a side).

**Score** of an unsettled pair, each term in [0, 1], largest first:

    uncertainty  u = 1 - |2 q - 1|           q: the metric's p_b (0.5 without a prediction)
    disagreement g = P(p_true on the other side of 1/2 than q | labels)  (0.5 with no labels)
    score        = u + g

so a pair the metric cannot call, or one whose judgments so far contradict the metric, is asked
first; a pair the metric calls confidently and the crowd has confirmed is asked last.

``--rule gain`` ranks by what one more judgment is expected to teach about the pair's side
instead: with the metric's ``q`` worth ``m = prior_judgments`` judgments and the labels so far,
p_b ~ Beta(k + m q + 1/2, n - k + m (1 - q) + 1/2); the score is the binary entropy of P(p_b < 1/2)
now minus its expectation after one more judgment (drawn from the posterior predictive). It is
large for a pair the metric cannot call or the labels contradict, like ``u + g``, but small for a
near-tie already asked several times (4 of 8 say B: one more answer moves little), which ``u + g``
keeps near the top until ``max_n``. Ties go to
the pair with fewer judgments, then to the seeded order of the candidates (so the first round,
with neither labels nor predictions, is a uniformly random draw). **Coverage**: at most
``max_per_ref`` pairs of one reference per round (default ``ceil(2 * round_trials /
references)``: twice a fair share), so every image keeps being asked about.

**Cost**: one pass of the metric over the candidates per round (``perceptual_metric.predict``;
in ``lin`` mode the trunk features can be reused) and O(candidates) here; the saving is in paid
judgments (``python -m perceptual_metric.active_savings`` measures it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import beta

from plic.config_args import option
from plic.fsio import sha256_file
from plic.tables import read_table

from ..schema import LABELS_COLUMNS, LABELS_ID, PREDICTIONS_COLUMNS, PREDICTIONS_ID

STRATEGIES = ("random", "active")
RULES = ("score", "gain")


@dataclass
class RoundConfig:
    strategy: str = option("random", "random: every pair once (today's study); active: the "
                                     "round_trials pairs the metric and the labels know least "
                                     "(mturk.active.acquire)")
    labels: str = option("", "active: labels so far (merged over rounds by "
                             "mturk.active.study_rounds; empty: none yet)")
    predictions: str = option("", "active: the current metric's predictions.csv "
                                  "(perceptual_metric.predict; empty: none yet)")
    round_trials: int = option(96, "active: test pairs in this round")
    max_per_ref: int = option(0, "active: at most this many pairs of one reference (0: twice a "
                                 "fair share)")
    confidence: float = option(0.9, "active: a pair is settled when its posterior is this sure of "
                                    "a side")
    max_n: int = option(8, "active: a pair with this many judgments is settled whatever they say")
    rule: str = option("score", "active: score (u + g: metric uncertainty + disagreement of the "
                                "labels) or gain (expected information one more judgment brings "
                                "on the pair's side, the metric's prediction as prior)")
    explore: float = option(0.0, "active: share of a round's pairs drawn uniformly at random "
                                 "among the unsettled ones, the rest by the rule (keeps the "
                                 "labels representative of all pairs)")
    prior_judgments: float = option(2.0, "active, rule gain: how many judgments the metric's "
                                         "prediction is worth")

    def check(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"--strategy {self.strategy!r}: one of {', '.join(STRATEGIES)}")
        if self.round_trials < 1 or self.max_per_ref < 0 or self.max_n < 1:
            raise ValueError("--round-trials and --max-n must be >= 1, --max-per-ref >= 0")
        if not 0.5 < self.confidence < 1:
            raise ValueError(f"--confidence {self.confidence}: must be in (0.5, 1)")
        if self.rule not in RULES:
            raise ValueError(f"--rule {self.rule!r}: one of {', '.join(RULES)}")
        if not 0 <= self.explore <= 1:
            raise ValueError(f"--explore {self.explore}: must be in [0, 1]")
        if self.prior_judgments < 0:
            raise ValueError("--prior-judgments must be >= 0")
        if self.strategy == "random" and (self.labels or self.predictions):
            raise ValueError("--labels and --predictions are for --strategy active")


def side_doubt(p_b, n) -> np.ndarray:
    """Posterior probability that the true p_b lies below 1/2 (Jeffreys prior)."""
    p_b, n = np.asarray(p_b, dtype=np.float64), np.asarray(n, dtype=np.float64)
    k = np.rint(p_b * n)
    return beta.cdf(0.5, k + 0.5, n - k + 0.5)


def settled(p_b, n, confidence: float = 0.9, max_n: int = 8) -> np.ndarray:
    """The documented rule: sure of a side, or asked ``max_n`` times already."""
    below = side_doubt(p_b, n)
    n = np.asarray(n)
    return (n >= max_n) | ((n > 0) & (np.maximum(below, 1 - below) >= confidence))


def scores(q, p_b, n) -> np.ndarray:
    """``u + g`` of the module docstring, per pair (``n = 0``: no labels)."""
    q, n = np.asarray(q, dtype=np.float64), np.asarray(n, dtype=np.float64)
    below = np.where(n > 0, side_doubt(p_b, np.maximum(n, 1)), 0.5)
    u = 1 - np.abs(2 * q - 1)
    g = np.where(q > 0.5, below, np.where(q < 0.5, 1 - below, 0.5))
    return u + g


def _entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def side_gain(q, p_b, n, prior_judgments: float = 2.0) -> np.ndarray:
    """Expected information (bits) one more judgment brings on which side of 1/2 a pair's
    ``p_b`` lies, under Beta(k + m q + 1/2, n - k + m (1 - q) + 1/2): the labels so far with the
    metric's ``q`` worth ``m = prior_judgments`` judgments."""
    q, p_b, n = (np.asarray(v, dtype=np.float64) for v in (q, p_b, n))
    k = np.rint(p_b * n)
    a = k + prior_judgments * q + 0.5
    b = n - k + prior_judgments * (1 - q) + 0.5
    now = _entropy(beta.cdf(0.5, a, b))
    p_next = a / (a + b)                                   # predictive share choosing B
    after = (p_next * _entropy(beta.cdf(0.5, a + 1, b))
             + (1 - p_next) * _entropy(beta.cdf(0.5, a, b + 1)))
    return now - after


def pick(refs: list[str], q, p_b, n, cfg: RoundConfig, seed: int | None = None) -> list[int]:
    """Indices of the pairs to ask: unsettled, at most ``max_per_ref`` per reference,
    ``cfg.round_trials`` at most. First ``round(explore * round_trials)`` of them uniformly at
    random (``seed``; default: the judgments so far, so each round draws anew), then the rest
    by score, best first; ties keep the given (seeded) order."""
    n = np.asarray(n)
    open_ = np.flatnonzero(~settled(p_b, n, cfg.confidence, cfg.max_n))
    s = (scores(q, p_b, n) if cfg.rule == "score"
         else side_gain(q, p_b, n, cfg.prior_judgments))
    cap = cfg.max_per_ref or math.ceil(2 * cfg.round_trials / max(1, len(set(refs))))
    taken: dict[str, int] = {}
    out: list[int] = []
    chosen: set[int] = set()

    def take(candidates, limit):
        for i in candidates:
            if len(out) >= limit:
                return
            if taken.get(refs[i], 0) < cap and i not in chosen:
                taken[refs[i]] = taken.get(refs[i], 0) + 1
                out.append(int(i))
                chosen.add(int(i))

    if cfg.explore > 0:
        rng = np.random.default_rng(int(n.sum()) if seed is None else seed)
        take(rng.permutation(open_), round(cfg.explore * cfg.round_trials))
    take(sorted(open_, key=lambda i: (-s[i], n[i], i)), cfg.round_trials)
    return out


def _labels(path: str) -> dict[str, tuple[str, str, float, int]]:
    if not path:
        return {}
    df = read_table(path, LABELS_COLUMNS, LABELS_ID)
    return {r.trial_id: (r.a_id, r.b_id, float(r.p_b), int(r.n)) for r in df.itertuples()}


def _predictions(path: str) -> dict[str, tuple[str, str, float]]:
    if not path:
        return {}
    df = read_table(path, PREDICTIONS_COLUMNS, PREDICTIONS_ID)
    out = {}
    for r in df.itertuples():
        q = float(r.p_b)
        if not 0 <= q <= 1:
            raise ValueError(f"{path}: trial {r.trial_id}: p_b={r.p_b} is not a probability")
        out[r.trial_id] = (r.a_id, r.b_id, q)
    return out


def _oriented(a_id: str, b_id: str, known: tuple) -> float:
    """A stored p_b for this a/b orientation (``1 - p_b`` when the file has the sides swapped)."""
    if (known[0], known[1]) == (a_id, b_id):
        return known[2]
    if (known[0], known[1]) == (b_id, a_id):
        return 1 - known[2]
    raise ValueError(f"pair {a_id} / {b_id}: a file has the same trial id for {known[0]} / "
                     f"{known[1]}; were the candidates made from another index?")


def selector(cfg: RoundConfig):
    """The ``select`` hook of ``mturk.trials.make_trials``: candidate tests -> this round's."""
    labels, preds = _labels(cfg.labels), _predictions(cfg.predictions)

    def select(tests: list[tuple[dict, float]]) -> list[tuple[dict, float]]:
        rows = [t[0] for t in tests]
        q, p_b, n = [], [], []
        for r in rows:
            pr = preds.get(r["trial_id"])
            q.append(0.5 if pr is None else _oriented(r["a_id"], r["b_id"], pr))
            lab = labels.get(r["trial_id"])
            if lab is None:
                p_b.append(0.5)
                n.append(0)
            else:
                p_b.append(_oriented(r["a_id"], r["b_id"], (lab[0], lab[1], lab[2])))
                n.append(lab[3])
        chosen = pick([r["ref_id"] for r in rows], q, p_b, n, cfg)
        if not chosen:
            raise ValueError("every candidate pair is settled: the study is done")
        return [tests[i] for i in chosen]

    return select


def input_hashes(cfg: RoundConfig) -> dict:
    """What an active round depends on besides the index (for ``trials.meta.json``)."""
    return {k: (sha256_file(p) if p and Path(p).is_file() else "")
            for k, p in (("labels_sha256", cfg.labels), ("predictions_sha256", cfg.predictions))}
