"""The dashboard's figures, from the database's aggregates (``mturk.store.dashboard_queries``).

The numbers are those of ``mturk.analysis``, computed from grouped rows instead of one row per
judgment, so a page stays fast on a large study:

- workers: ``mturk.analysis.worker_quality.assess``'s scores and flags (same rule, same order:
  the consensus is taken among the workers the other checks did not flag), and
  ``mturk.analysis.aggregate.filter_workers``'s kept or why not;
- agreement: ``mturk.analysis.aggregate.agreement`` (pairwise, Fleiss' kappa) over the kept
  judgments, per codec pair too, and a split-half reliability (below);
- ranking: ``mturk.analysis.aggregate``'s Bradley-Terry fit on the same win counts (the same
  strengths and Elo), with a bootstrap 95% interval of the same kind: ``aggregate`` resamples
  the judgments one by one, here the same resampling is drawn as multinomial counts over the
  (winner, loser) categories, so the intervals agree in distribution, not draw for draw;
- spend: ``mturk.market.manage.cost_so_far`` (rewards and bonuses with MTurk's fees).

Split-half reliability: each trial's kept judgments in id order are dealt into two halves (odd,
even); over trials with judgments in both, the Pearson correlation of the halves' share of B,
stepped up by Spearman-Brown (``2r / (1 + r)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
from scipy.stats import binom

from ..analysis.aggregate import bradley_terry
from ..analysis.worker_quality import QualityRule, reasons
from ..market.cost import assignment_fee, bonus_fee

ELO_SCALE = 400 / math.log(10)


def _numbers(df: pd.DataFrame, cols) -> pd.DataFrame:
    """Numeric columns as numbers (PostgreSQL's SUM and AVG come back as Decimals)."""
    for c in cols:
        if c in df:
            df[c] = pd.to_numeric(df[c].map(lambda v: float(v) if v is not None else np.nan))
    return df


def elo(log_strength):
    """``mturk.analysis.aggregate``'s Elo-like score of a Bradley-Terry log-strength."""
    return 1500 + ELO_SCALE * np.asarray(log_strength, dtype=float)


# -- overview ------------------------------------------------------------------------------
def spend(db, mode: str | None) -> dict:
    """{"spent", "committed"} as ``mturk.market.manage.cost_so_far`` counts them, from grouped
    rows; Decimals in USD."""
    spent = committed = Decimal("0.00")
    for g in db.dash_hit_groups(mode):
        per = Decimal(g["reward"]) + assignment_fee(g["reward"], g["max_assignments"])
        spent += per * int(g["approved"])
        committed += per * int(g["submitted"] if g["closed"] else g["open_places"])
    for b in db.dash_paid_bonuses(mode):
        spent += (Decimal(b["amount"]) + bonus_fee(b["amount"])) * int(b["n"])
    return {"spent": spent, "committed": committed}


def overview(db, mode: str | None, budget: Decimal | None = None) -> dict:
    c = db.dash_counts()
    money = spend(db, mode)
    hourly = db.dash_answers_per_hour()
    groups = db.dash_hit_groups(mode)
    open_places = sum(int(g["open_places"]) for g in groups if not g["closed"])
    rate = None
    eta_h = None
    if c["last_answer"]:
        last = datetime.fromisoformat(c["last_answer"])
        since = (last - timedelta(hours=1)).isoformat(timespec="milliseconds")
        rate = db.dash_submitted_since(since)          # assignments in the last active hour
        if rate and open_places:
            eta_h = open_places / rate
    projected = money["spent"] + money["committed"]
    asg = c["assignments"]
    return dict(
        hits=sum(c["hits"].values()), hit_status=c["hits"], places=c["places"],
        accepted=int(asg.get("accepted", 0)), submitted=int(asg.get("submitted", 0)),
        approved=int(asg.get("approved", 0)), rejected=int(asg.get("rejected", 0)),
        abandoned=int(asg.get("abandoned", 0)),
        expired_hits=int(c["hits"].get("expired", 0)) + int(c["hits"].get("disposed", 0)),
        judgments=c["judgments"], ratings=c["ratings"], workers=c["workers"],
        blocked=c["blocked"], first_answer=c["first_answer"], last_answer=c["last_answer"],
        per_hour=[dict(hour=h["hour"], n=int(h["n"])) for h in hourly],
        last_hour_assignments=rate, open_places=open_places,
        hours_to_completion=eta_h, spent=f"{money['spent']:.2f}",
        committed=f"{money['committed']:.2f}", projected=f"{projected:.2f}",
        budget=None if budget is None else f"{budget:.2f}",
        over_budget=bool(budget is not None and projected > budget))


# -- workers -------------------------------------------------------------------------------
def side_p(left, n) -> np.ndarray:
    """Two-sided binomial p of ``left`` of ``n`` answers under a fair coin (scipy's
    ``binomtest(left, n, 0.5).pvalue``, vectorised: for p = 1/2 the two tails are mirror
    images)."""
    left, n = np.asarray(left, float), np.asarray(n, float)
    k = np.minimum(left, n - left)
    with np.errstate(invalid="ignore"):
        p = np.where(2 * k == n, 1.0, np.minimum(1.0, 2 * binom.cdf(k, n, 0.5)))
    return np.where(n > 0, p, np.nan)


def _iso_seconds(s: pd.Series) -> np.ndarray:
    t = pd.to_datetime(s, utc=True, format="ISO8601", errors="coerce")
    return (t - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(float)


def seconds_per_trial(times: list[dict]) -> pd.Series:
    """Per worker, the median over their assignments of seconds per trial
    (``mturk.analysis.worker_quality.assignment_seconds``: the smaller of the page's median
    response time and, unless simulated, the server's (submitted - accepted) / trials)."""
    if not times:
        return pd.Series(dtype=float)
    t = _numbers(pd.DataFrame(times), ["n", "median_rt_ms", "simulated"])
    client = pd.to_numeric(t.median_rt_ms, errors="coerce").to_numpy(float) / 1000
    elapsed = _iso_seconds(t.submitted_at) - _iso_seconds(t.accepted_at)
    server = np.maximum(0.0, elapsed) / t.n.to_numpy(float)
    server[t.simulated.astype(int).to_numpy() == 1] = np.nan
    secs = np.fmin(client, server)                      # nan only where both are
    return pd.Series(secs, index=t.worker_id).groupby(level=0).median()


WORKER_FIELDS = ["worker_id", "assignments", "judgments", "sentinels", "sentinel_correct",
                 "sentinel_accuracy", "s_per_trial", "left_share", "side_p", "consensus_trials",
                 "consensus_agreement", "repeats", "repeats_inconsistent", "flags", "kept",
                 "reason", "blocked", "blocked_reason", "submitted", "approved", "rejected",
                 "all_assignments"]


def workers(db, rule: QualityRule | None = None, unverified: bool = False) -> pd.DataFrame:
    """One row per worker (WORKER_FIELDS): ``mturk.analysis.aggregate``'s workers.csv scores,
    flags, kept and reason (workers without judgments too: reason "no judgments"), with the
    database's block and the worker's assignments by status."""
    rule = rule or QualityRule()
    w = pd.DataFrame(db.dash_workers(unverified))
    if w.empty:
        return pd.DataFrame(columns=WORKER_FIELDS)
    w = _numbers(w, ["blocked", "assignments", "judgments", "sentinels", "sentinel_correct",
                     "n_left", "all_assignments", "submitted", "approved", "rejected",
                     "answered", "answered_verified"])
    for c in ("blocked", "assignments", "judgments", "sentinels", "sentinel_correct", "n_left",
              "all_assignments", "submitted", "approved", "rejected", "answered",
              "answered_verified"):
        w[c] = w[c].astype(int)
    w = w.set_index("worker_id")
    n = w.judgments.to_numpy(float)
    counted = n > 0
    w["sentinel_accuracy"] = np.where(w.sentinels > 0, w.sentinel_correct /
                                      w.sentinels.where(w.sentinels > 0, 1), np.nan)
    w["left_share"] = np.where(counted, w.n_left / np.where(counted, n, 1), np.nan)
    w["side_p"] = side_p(w.n_left, n)
    w["s_per_trial"] = seconds_per_trial(db.dash_assignment_times(unverified)).reindex(w.index)
    rep = _numbers(pd.DataFrame(db.dash_repeats(unverified), columns=[
        "worker_id", "repeats", "inconsistent"]), ["repeats", "inconsistent"])
    rep = rep.set_index("worker_id").reindex(w.index).fillna(0).astype(int)
    w["repeats"], w["repeats_inconsistent"] = rep.repeats, rep.inconsistent
    reps = w.repeats.to_numpy(float)
    checks = {                                  # worker_quality.assess's rules, in its order
        "few-sentinels": w.sentinels < rule.min_sentinels,
        "sentinels": (w.sentinels >= rule.min_sentinels) & (w.sentinel_accuracy <
                                                             rule.min_accuracy),
        "fast": w.s_per_trial < rule.min_s_per_trial,
        "side-bias": (w.judgments >= rule.min_side_trials) & (w.side_p < rule.max_side_bias_p),
        "inconsistent": (w.repeats >= max(1, rule.min_repeats)) & (
            w.repeats_inconsistent / np.where(reps > 0, reps, 1) > rule.max_inconsistency)}
    hit = np.column_stack([np.asarray(v, bool) for v in checks.values()]) & counted[:, None]
    names = list(checks)
    flags = {wid: [names[i] for i in np.flatnonzero(row)]
             for wid, row, c in zip(w.index, hit, counted) if c}
    trusted = sorted(wid for wid, f in flags.items() if not f)
    cons = _numbers(pd.DataFrame(db.dash_consensus(trusted, unverified),
                                 columns=["worker_id", "trials", "agree"]),
                    ["trials", "agree"]).set_index("worker_id")
    cons = cons.reindex(w.index)
    w["consensus_trials"] = cons.trials.fillna(0).astype(int)
    w["consensus_agreement"] = cons.agree / cons.trials
    low = (w.consensus_trials >= rule.min_consensus_trials) & (
        w.consensus_agreement < rule.min_consensus)
    why = []
    for wid, lo, blocked, answered, verified in zip(w.index, low, w.blocked, w.answered,
                                                    w.answered_verified):
        if wid in flags:
            if lo:
                flags[wid].append("consensus")
            why.append(reasons(flags[wid], rule))
        elif int(blocked):
            why.append("blocked")
        elif not int(answered):
            why.append("no answers")
        elif unverified or int(verified):
            why.append("no counted assignments")
        else:
            why.append("no verified assignments")
    w["reason"] = why
    w["kept"] = w.reason == ""
    w["flags"] = [",".join(flags.get(wid, [])) for wid in w.index]
    w["blocked"] = w.blocked.astype(int)
    return w.reset_index()[WORKER_FIELDS]


# -- results (2AFC) --------------------------------------------------------------------------
def agreement_of(nb: np.ndarray, n: np.ndarray) -> dict:
    """``mturk.analysis.aggregate.agreement`` from per-trial (chose B, judgments) counts."""
    keep = n >= 2
    kb, n = nb[keep].astype(float), n[keep].astype(float)
    if not len(n):
        return dict(trials=0, pairwise_agreement=None, fleiss_kappa=None)
    ka = n - kb
    p_bar = float(((kb * (kb - 1) + ka * (ka - 1)) / (n * (n - 1))).mean())
    p = kb.sum() / n.sum()
    p_e = p * p + (1 - p) * (1 - p)
    kappa = (p_bar - p_e) / (1 - p_e) if p_e < 1 else None
    return dict(trials=int(len(n)), pairwise_agreement=p_bar,
                fleiss_kappa=None if kappa is None else float(kappa))


def split_half(votes: pd.DataFrame) -> dict:
    """Spearman-Brown corrected correlation of the two halves' share of B (module docstring)."""
    v = votes[(votes.n_odd > 0) & (votes.n - votes.n_odd > 0)]
    if len(v) < 3:
        return dict(trials=int(len(v)), r=None, spearman_brown=None)
    x = v.nb_odd / v.n_odd
    y = (v.nb - v.nb_odd) / (v.n - v.n_odd)
    if x.std() == 0 or y.std() == 0:
        return dict(trials=int(len(v)), r=None, spearman_brown=None)
    r = float(np.corrcoef(x, y)[0, 1])
    return dict(trials=int(len(v)), r=r, spearman_brown=2 * r / (1 + r) if r > -1 else None)


def bt_batch(wins: np.ndarray, prior: float = 0.5, iters: int = 10_000,
             tol: float = 1e-10) -> np.ndarray:
    """``bradley_terry`` for a batch of win matrices ``wins[s, i, j]`` (i beat j) at once:
    log-strengths (mean zero over the players present in each), nan where a player is absent."""
    w = np.asarray(wins, float)
    pairs = (w + w.transpose(0, 2, 1)) > 0
    w = w + prior * pairs
    n = w + w.transpose(0, 2, 1)
    present = pairs.any(axis=2)
    k_present = np.maximum(present.sum(axis=1), 1)
    won = w.sum(axis=2)
    p = np.ones(present.shape)
    active = np.ones(len(w), bool)
    for _ in range(iters):
        a = np.flatnonzero(active)
        if not len(a):
            break
        pa, na, pr = p[a], n[a], present[a]
        denom = (na / (pa[:, :, None] + pa[:, None, :])).sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            new = np.where(pr, won[a] / denom, 1.0)
        logs = np.where(pr, np.log(new), 0.0)
        new = new / np.exp(logs.sum(axis=1) / k_present[a])[:, None]
        done = np.where(pr, np.abs(new - pa), 0).max(axis=1) < tol
        p[a] = new
        active[a[done]] = False
    logp = np.where(present, np.log(p), 0.0)
    logp = logp - (logp.sum(axis=1) / k_present)[:, None]
    return np.where(present, logp, np.nan)


def ranking(votes: pd.DataFrame, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Per target_bpp, codecs by Bradley-Terry strength with a bootstrap 95% Elo interval:
    ``mturk.analysis.aggregate.ranking``'s columns (module docstring: the interval's draws),
    from the kept judgments' per-trial votes (``StudyDB.dash_trial_votes``)."""
    cols = ["target_bpp", "rank", "codec", "bt_log_strength", "elo", "elo_lo", "elo_hi",
            "wins", "comparisons", "mean_bpp"]
    t = votes[votes.a_codec != votes.b_codec]
    out = pd.concat([
        pd.DataFrame({"target_bpp": t.target_bpp, "winner": t.b_codec, "loser": t.a_codec,
                      "n": t.nb}),
        pd.DataFrame({"target_bpp": t.target_bpp, "winner": t.a_codec, "loser": t.b_codec,
                      "n": t.n - t.nb})])
    out = out[out.n > 0].groupby(["target_bpp", "winner", "loser"], sort=True).n.sum() \
        .reset_index()
    sides = []
    for side in ("a", "b"):                    # each judgment shows both sides' bpp
        bpp = pd.to_numeric(t[f"{side}_bpp"], errors="coerce")
        sides.append(pd.DataFrame({"target_bpp": t.target_bpp, "codec": t[f"{side}_codec"],
                                   "bpp_sum": bpp * t.n, "n": t.n})[bpp.notna()])
    bpp = pd.concat(sides).groupby(["target_bpp", "codec"], sort=True)[["bpp_sum", "n"]].sum() \
        .reset_index()
    rng = np.random.default_rng(seed)
    rows = []
    for target, g in out.groupby("target_bpp", sort=True):
        bt = bradley_terry({(r.winner, r.loser): float(r.n) for r in g.itertuples()})
        players = sorted(bt)
        ix = {c: i for i, c in enumerate(players)}
        counts = g.n.to_numpy(float)
        draws = rng.multinomial(int(counts.sum()), counts / counts.sum(), size=n_boot)
        wins = np.zeros((n_boot, len(players), len(players)))
        wi = g.winner.map(ix).to_numpy()
        li = g.loser.map(ix).to_numpy()
        for c in range(len(g)):                  # categories (codec pairs), not judgments
            wins[:, wi[c], li[c]] += draws[:, c]
        boot = elo(bt_batch(wins))
        won = g.groupby("winner").n.sum()
        played = pd.concat([g.groupby("winner").n.sum(), g.groupby("loser").n.sum()]) \
            .groupby(level=0).sum()
        b = bpp[bpp.target_bpp == target].set_index("codec")
        for rank, c in enumerate(sorted(bt, key=lambda c: -bt[c]), 1):
            sample = boot[:, ix[c]]
            sample = sample[~np.isnan(sample)]
            lo, hi = np.percentile(sample, [2.5, 97.5]) if len(sample) else (math.nan,) * 2
            rows.append(dict(target_bpp=target, rank=rank, codec=c, bt_log_strength=bt[c],
                             elo=float(elo(bt[c])), elo_lo=float(lo), elo_hi=float(hi),
                             wins=int(won.get(c, 0)), comparisons=int(played[c]),
                             mean_bpp=float(b.bpp_sum[c] / b.n[c]) if c in b.index
                             else math.nan))
    return pd.DataFrame(rows, columns=cols)


@dataclass
class Results:
    agreement: dict
    split_half: dict
    pairs: pd.DataFrame
    ranking: pd.DataFrame
    kept_workers: int
    kept_judgments: int
    labels: int
    simulated: bool


def results(db, rule: QualityRule | None = None, unverified: bool = False,
            wtable: pd.DataFrame | None = None) -> Results:
    w = wtable if wtable is not None else workers(db, rule, unverified)
    kept = sorted(w.loc[w.kept, "worker_id"]) if len(w) else []
    votes = _numbers(pd.DataFrame(db.dash_trial_votes(kept, unverified),
                                  columns=["trial_id", "a_codec", "b_codec", "target_bpp",
                                           "a_bpp", "b_bpp", "nb", "n", "nb_odd", "n_odd"]),
                     ["nb", "n", "nb_odd", "n_odd"])
    agree = agreement_of(votes.nb.to_numpy(), votes.n.to_numpy())
    pair_rows = []
    if len(votes):
        v = votes.assign(pair=[" vs ".join(sorted((a, b)))
                               for a, b in zip(votes.a_codec, votes.b_codec)])
        for pair, g in v.groupby("pair", sort=True):
            a = agreement_of(g.nb.to_numpy(), g.n.to_numpy())
            pair_rows.append(dict(pair=pair, trials=int(len(g)), judgments=int(g.n.sum()),
                                  agreement_trials=a["trials"],
                                  pairwise_agreement=a["pairwise_agreement"],
                                  fleiss_kappa=a["fleiss_kappa"]))
    kept_j = int(w.loc[w.kept, "judgments"].sum()) if len(w) else 0
    return Results(agreement=agree, split_half=split_half(votes),
                   pairs=pd.DataFrame(pair_rows, columns=[
                       "pair", "trials", "judgments", "agreement_trials", "pairwise_agreement",
                       "fleiss_kappa"]),
                   ranking=ranking(votes),
                   kept_workers=len(kept), kept_judgments=kept_j, labels=int(len(votes)),
                   simulated=db.dash_simulated(unverified))
