"""Quality control of workers, beyond sentinels: one home for every check and its threshold.

A script that compares pixels answers sentinels right, so sentinels alone cannot keep a study
clean. ``assess`` scores each worker on all their counted judgments (``StudyDB.judgments_frame``
rows, already restricted to verified, submitted or approved work) and flags them by these rules,
each with a documented default (``QualityRule``; ``mturk.aggregate`` and ``mturk.market.collect``
take them as options):

``sentinels``
    fewer than ``min_accuracy`` (0.8) of their sentinel trials right. ``few-sentinels``: fewer
    than ``min_sentinels`` (2) sentinel answers, so nothing can be said (excluded from labels,
    but no evidence of bad work, so never blocked).
``fast``
    median seconds per trial below ``min_s_per_trial`` (1.0 s). Per assignment, the seconds per
    trial are the smaller of the page's median response time and, except in a ``--simulated``
    study (whose workers do not wait), the server's clock: (submitted - accepted) / trials. A
    script that fakes response times is still timed by the server.
``side-bias``
    left/right answers that a fair coin would give with two-sided binomial probability below
    ``max_side_bias_p`` (0.001), over at least ``min_side_trials`` (10) answers. Which side shows
    which image is drawn at random, so a careful worker answers left about half the time.
``consensus``
    agreement with the leave-one-out consensus below ``min_consensus`` (0.6) over at least
    ``min_consensus_trials`` (8) test trials. The consensus of a trial is the majority of the
    other workers not flagged by the rules above (at least two of them, no tie).
``inconsistent``
    more than ``max_inconsistency`` (0.5) of their repeated pairs (a test trial asked again with
    the sides swapped, ``trials.csv`` ``repeat_of``) answered differently, over at least
    ``min_repeats`` (2) pairs.

Flagged workers are left out of the labels (``mturk.aggregate``). ``mturk.market.collect``
soft-blocks them (every flag except ``few-sentinels``), and rejects an assignment only on evidence
inside it (``assignment_verdict``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from plic.config_args import option

BLOCKING_FLAGS = ("sentinels", "fast", "side-bias", "consensus", "inconsistent")


@dataclass
class QualityRule:
    min_sentinels: int = option(2, "sentinel answers a worker needs to be kept")
    min_accuracy: float = option(0.8, "sentinel accuracy a worker needs to be kept")
    min_s_per_trial: float = option(1.0, "median seconds per trial below which a worker is "
                                         "flagged fast")
    max_side_bias_p: float = option(0.001, "binomial p of the left/right split below which a "
                                           "worker is flagged")
    min_side_trials: int = option(10, "answers needed before the side-bias check applies")
    min_consensus: float = option(0.6, "agreement with the leave-one-out consensus a worker needs")
    min_consensus_trials: int = option(8, "test trials with a consensus needed before that check "
                                          "applies")
    max_inconsistency: float = option(0.5, "share of repeated pairs answered differently above "
                                           "which a worker is flagged")
    min_repeats: int = option(2, "repeated pairs needed before the consistency check applies")


COLUMNS = ["worker_id", "assignments", "judgments", "sentinels", "sentinel_correct",
           "sentinel_accuracy", "s_per_trial", "left_share", "side_p", "consensus_trials",
           "consensus_agreement", "repeats", "repeats_inconsistent", "flags"]


def _seconds(ts) -> float:
    if not isinstance(ts, str) or not ts:
        return math.nan
    return pd.Timestamp(ts).timestamp()


def assignment_seconds(g: pd.DataFrame) -> float:
    """Seconds per trial of one assignment's judgments (see the module docstring)."""
    rt = g.rt_ms.dropna().astype(float)
    client = float(rt.median()) / 1000 if len(rt) else math.nan
    server = math.nan
    if not int(g.simulated.iloc[0]):
        elapsed = _seconds(g.submitted_at.iloc[0]) - _seconds(g.accepted_at.iloc[0])
        if not math.isnan(elapsed):
            server = max(0.0, elapsed) / len(g)
    vals = [v for v in (client, server) if not math.isnan(v)]
    return min(vals) if vals else math.nan


def _repeat_pairs(df: pd.DataFrame) -> pd.DataFrame:
    """Per repeat judgment: whether the same assignment answered the original the same way."""
    rep = df[df.repeat_of.astype(str) != ""]
    if rep.empty:
        return pd.DataFrame(columns=["worker_id", "inconsistent"])
    orig = df[["assignment_id", "trial_id", "choice"]].rename(
        columns={"trial_id": "repeat_of", "choice": "first"})
    m = rep.merge(orig, on=["assignment_id", "repeat_of"], how="inner")
    return pd.DataFrame({"worker_id": m.worker_id, "inconsistent": m.choice != m["first"]})


def _consensus(df: pd.DataFrame, trusted: set) -> pd.DataFrame:
    """Per test judgment with a leave-one-out consensus: whether it agrees with it."""
    t = df[(df.kind == "test") & (df.repeat_of.astype(str) == "")].copy()
    if t.empty:
        return pd.DataFrame(columns=["worker_id", "agree"])
    t["isb"] = (t.choice == "b").astype(int)
    t["mine"] = t.worker_id.isin(trusted).astype(int)
    votes = t[t.mine == 1].groupby("trial_id").isb.agg(["sum", "count"])
    t = t.join(votes, on="trial_id")
    nb = t["sum"].fillna(0) - t.mine * t.isb
    n = t["count"].fillna(0) - t.mine
    na = n - nb
    ok = (n >= 2) & (nb != na)
    t = t[ok]
    return pd.DataFrame({"worker_id": t.worker_id, "agree": (t.isb == 1) == (nb[ok] > na[ok])})


def assess(df: pd.DataFrame, rule: QualityRule | None = None) -> pd.DataFrame:
    """One row per worker of ``df`` (counted judgments) with the scores and ``flags`` (a list)."""
    rule = rule or QualityRule()
    if df.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows = {}
    for wid, g in df.groupby("worker_id", sort=True):
        s = g[g.kind == "sentinel"]
        correct = int((s.choice == s.expected).sum())
        secs = [assignment_seconds(a) for _, a in g.groupby("assignment_id")]
        secs = [x for x in secs if not math.isnan(x)]
        left = int((g.choice == g.shown_left).sum())
        rows[wid] = dict(worker_id=wid, assignments=int(g.assignment_id.nunique()),
                         judgments=len(g), sentinels=len(s), sentinel_correct=correct,
                         sentinel_accuracy=correct / len(s) if len(s) else math.nan,
                         s_per_trial=float(np.median(secs)) if secs else math.nan,
                         left_share=left / len(g), side_p=binomtest(left, len(g), 0.5).pvalue)
    rep = _repeat_pairs(df)
    for wid, g in rep.groupby("worker_id"):
        rows[wid].update(repeats=len(g), repeats_inconsistent=int(g.inconsistent.sum()))
    flags = {}
    for wid, r in rows.items():
        r.setdefault("repeats", 0)
        r.setdefault("repeats_inconsistent", 0)
        f = []
        if r["sentinels"] < rule.min_sentinels:
            f.append("few-sentinels")
        elif r["sentinel_accuracy"] < rule.min_accuracy:
            f.append("sentinels")
        if r["s_per_trial"] < rule.min_s_per_trial:
            f.append("fast")
        if r["judgments"] >= rule.min_side_trials and r["side_p"] < rule.max_side_bias_p:
            f.append("side-bias")
        if r["repeats"] >= max(1, rule.min_repeats) and \
                r["repeats_inconsistent"] / r["repeats"] > rule.max_inconsistency:
            f.append("inconsistent")
        flags[wid] = f
    trusted = {w for w, f in flags.items() if not f}
    agree = _consensus(df, trusted)
    for wid, g in agree.groupby("worker_id"):
        rows[wid].update(consensus_trials=len(g), consensus_agreement=float(g.agree.mean()))
    for wid, r in rows.items():
        r.setdefault("consensus_trials", 0)
        r.setdefault("consensus_agreement", math.nan)
        if r["consensus_trials"] >= rule.min_consensus_trials and \
                r["consensus_agreement"] < rule.min_consensus:
            flags[wid].append("consensus")
        r["flags"] = flags[wid]
    return pd.DataFrame(list(rows.values()), columns=COLUMNS)


def reasons(flags: list[str], rule: QualityRule) -> str:
    """The flags in words, for workers.csv and the operator."""
    text = {"few-sentinels": f"fewer than {rule.min_sentinels} sentinels",
            "sentinels": f"sentinel accuracy below {rule.min_accuracy}",
            "fast": f"faster than {rule.min_s_per_trial} s per trial",
            "side-bias": f"left/right split with p < {rule.max_side_bias_p}",
            "consensus": f"agreement with the consensus below {rule.min_consensus}",
            "inconsistent": f"over {rule.max_inconsistency:.0%} of repeated pairs answered "
                            "differently"}
    return "; ".join(text[f] for f in flags)


def assignment_verdict(g: pd.DataFrame, rule: QualityRule | None = None) -> str:
    """Evidence inside one assignment that it was not done honestly ("" when none): every
    answer on one side (at least ``min_side_trials`` answers), or the server's clock saying under
    half of ``min_s_per_trial`` per trial. ``mturk.market.collect`` rejects on it."""
    rule = rule or QualityRule()
    if len(g) >= rule.min_side_trials and g.choice.eq(g.shown_left).nunique() == 1:
        side = "left" if bool((g.choice == g.shown_left).iloc[0]) else "right"
        return f"all {len(g)} comparisons were answered '{side}'"
    if not int(g.simulated.iloc[0]):
        elapsed = _seconds(g.submitted_at.iloc[0]) - _seconds(g.accepted_at.iloc[0])
        if not math.isnan(elapsed) and elapsed / len(g) < rule.min_s_per_trial / 2:
            return f"{len(g)} comparisons were answered in {max(0.0, elapsed):.0f} seconds"
    return ""
