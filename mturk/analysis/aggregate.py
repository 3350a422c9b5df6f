"""Judgments to labels: ``python -m mturk.aggregate [--db DB] [--trials CSV] [--out DIR]``.

Which judgments count (the rule, applied in this order):

1. Only **verified** assignments: ones MTurk itself reported to ``mturk.market.collect`` (right HIT,
   right worker, Submitted or Approved) or, in a lab study, claimed with a participant token.
   Answers the server stored for assignments nobody verified are left out and counted in
   ``aggregate.json`` (``unverified_assignments``); ``--include-unverified`` takes them too.
2. Only assignments that are ``submitted`` or ``approved``; ``rejected`` and ``abandoned`` ones
   are dropped, and so is every judgment of a worker marked blocked.
3. Worker quality control (``mturk.analysis.worker_quality``, where every check and threshold is
   documented): sentinel accuracy (at least ``min_sentinels`` answers, at least ``min_accuracy``
   right), time per trial, left/right bias, agreement with the leave-one-out consensus, and
   consistency on repeated pairs. A flagged worker's judgments all go.

Outputs in ``--out`` (default ``runs/study``):

- ``labels.csv`` (``mturk.schema.LABELS_COLUMNS``): one row per test trial (repeats are not
  labels) with at least one kept judgment; ``p_b`` = share of kept judgments choosing B, ``n`` =
  their number. Sentinels are not labels.
- ``workers.csv``: per worker, every score of ``mturk.analysis.worker_quality``, the flags, kept or
  why not (the sentinel scores and flags also go to the database, for ``mturk.market.collect``).
- ``ranking.csv`` and ``ranking.png``: per ``target_bpp``, codecs ranked by a Bradley-Terry model
  fitted to the kept test judgments (MM algorithm, Hunter 2004, with half a virtual win each way
  per compared pair so unbeaten codecs stay finite), reported as log-strength and as an Elo-like
  score ``1500 + 400 log10(strength / geometric mean)``, as CLIC's human evaluation does, with a
  bootstrap 95% interval (``elo_lo``, ``elo_hi``; judgments resampled 200 times).
- ``aggregate.json``: counts, the filtering rule, inter-rater agreement (mean pairwise agreement
  over trials with n >= 2 and Fleiss' kappa for varying n), and ``simulated`` (true when any counted
  judgment came from a ``mturk.serve --simulated`` server; the plot title says so too).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from plic.cli import CliError, command, parser
from plic.config_args import add_config_args, config_from_args
from plic.fsio import atomic_save_figure, atomic_write_text
from plic.paths import runs_dir
from plic.tables import rel_path, resolve_path, write_table

from ..schema import LABELS_COLUMNS, LABELS_ID
from ..store.study_db import StudyDB, is_url
from .worker_quality import QualityRule, assess, reasons

COUNTED_STATUSES = ("submitted", "approved")
FilterRule = QualityRule          # the name this module's callers know
WORKER_COLUMNS = ["worker_id", "assignments", "judgments", "sentinels", "sentinel_correct",
                  "sentinel_accuracy", "s_per_trial", "left_share", "side_p", "consensus_trials",
                  "consensus_agreement", "repeats", "repeats_inconsistent", "flags", "kept",
                  "reason"]


def counted(df: pd.DataFrame, include_unverified: bool = False) -> pd.DataFrame:
    """The judgments that may count: verified (unless asked), submitted or approved, by workers
    who are not blocked."""
    keep = df.assignment_status.isin(COUNTED_STATUSES) & (df.blocked.astype(int) == 0)
    if not include_unverified:
        keep &= df.verified_at.notna()
    return df[keep]


def label_trials(df: pd.DataFrame) -> pd.DataFrame:
    """Judgments of trials that make labels: tests that are not repeats."""
    return df[(df.kind == "test") & (df.repeat_of.astype(str) == "")]


def filter_workers(df: pd.DataFrame, rule: QualityRule,
                   include_unverified: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept judgments, per-worker table). ``df`` is ``StudyDB.judgments_frame()``."""
    c = counted(df, include_unverified)
    q = assess(c, rule).set_index("worker_id") if len(c) else None
    workers = []
    for wid, g in df.groupby("worker_id", sort=True):
        if q is not None and wid in q.index:
            r = q.loc[wid].to_dict()
            why = reasons(r["flags"], rule)
            r["flags"] = ",".join(r["flags"])
        else:
            r = dict(assignments=int(g.assignment_id.nunique()), judgments=0, sentinels=0,
                     sentinel_correct=0, flags="")
            why = ("blocked" if int(g.blocked.astype(int).max()) else
                   "no counted assignments" if include_unverified or g.verified_at.notna().any()
                   else "no verified assignments")
        workers.append(dict(r, worker_id=wid, kept=why == "", reason=why))
    wdf = pd.DataFrame(workers, columns=WORKER_COLUMNS)
    keep = set(wdf.loc[wdf.kept, "worker_id"])
    return c[c.worker_id.isin(keep)], wdf


def make_labels(kept: pd.DataFrame) -> pd.DataFrame:
    t = label_trials(kept)
    first = t.groupby("trial_id", sort=True).first()
    out = first[["ref_id", "ref_path", "a_id", "a_path", "b_id", "b_path", "a_codec", "b_codec",
                 "a_bpp", "b_bpp"]].copy()
    out["p_b"] = t.assign(isb=(t.choice == "b").astype(float)).groupby("trial_id").isb.mean()
    out["n"] = t.groupby("trial_id").size()
    return out.reset_index()[LABELS_COLUMNS]


def agreement(kept: pd.DataFrame) -> dict:
    """Mean pairwise agreement and Fleiss' kappa over test trials with n >= 2."""
    t = label_trials(kept)
    g = t.assign(isb=(t.choice == "b").astype(int)).groupby("trial_id").isb.agg(["sum", "count"])
    g = g[g["count"] >= 2]
    if g.empty:
        return dict(trials=0, pairwise_agreement=None, fleiss_kappa=None)
    kb, n = g["sum"].to_numpy(float), g["count"].to_numpy(float)
    ka = n - kb
    per_item = (kb * (kb - 1) + ka * (ka - 1)) / (n * (n - 1))
    p_bar = float(per_item.mean())
    p = kb.sum() / n.sum()
    p_e = p * p + (1 - p) * (1 - p)
    kappa = (p_bar - p_e) / (1 - p_e) if p_e < 1 else None
    return dict(trials=int(len(g)), pairwise_agreement=p_bar,
                fleiss_kappa=None if kappa is None else float(kappa))


def bradley_terry(wins: dict[tuple[str, str], float], iters: int = 10_000,
                  tol: float = 1e-10, prior: float = 0.5) -> dict[str, float]:
    """Log-strengths (mean zero) from ``wins[(winner, loser)]`` counts (MM algorithm)."""
    players = sorted({p for pair in wins for p in pair})
    ix = {p: i for i, p in enumerate(players)}
    k = len(players)
    w = np.zeros((k, k))
    for (i, j), c in wins.items():
        w[ix[i], ix[j]] += c
    pairs = (w + w.T) > 0
    w = w + prior * pairs                    # half a virtual win each way per compared pair
    n = w + w.T
    p = np.ones(k)
    for _ in range(iters):
        denom = (n / (p[:, None] + p[None, :])).sum(axis=1)
        new = w.sum(axis=1) / denom
        new = new / np.exp(np.log(new).mean())
        if np.max(np.abs(new - p)) < tol:
            p = new
            break
        p = new
    logp = np.log(p)
    return {pl: float(logp[ix[pl]] - logp.mean()) for pl in players}


def _elo(log_strength: float) -> float:
    return 1500 + 400 * log_strength / math.log(10)


def _fit(pairs: list[tuple[str, str]]) -> dict[str, float]:
    wins: dict[tuple[str, str], float] = {}
    for w, l in pairs:
        wins[w, l] = wins.get((w, l), 0) + 1
    return bradley_terry(wins)


def ranking(kept: pd.DataFrame, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Per target_bpp, codecs by Bradley-Terry strength, with a bootstrap 95% interval of Elo
    (judgments resampled with replacement ``n_boot`` times)."""
    t = label_trials(kept)
    t = t[t.a_codec != t.b_codec]
    rng = np.random.default_rng(seed)
    rows = []
    for target, g in t.groupby("target_bpp", sort=True):
        pairs = [(r.b_codec, r.a_codec) if r.choice == "b" else (r.a_codec, r.b_codec)
                 for r in g.itertuples()]
        bt = _fit(pairs)
        boots: dict[str, list[float]] = {c: [] for c in bt}
        for _ in range(n_boot):
            sample = [pairs[i] for i in rng.integers(0, len(pairs), len(pairs))]
            for c, v in _fit(sample).items():
                boots[c].append(_elo(v))
        won = pd.Series([w for w, _ in pairs]).value_counts()
        played = pd.Series([c for p in pairs for c in p]).value_counts()
        bpps: dict[str, list[float]] = {}
        for side in ("a", "b"):
            for c, v in zip(g[f"{side}_codec"], g[f"{side}_bpp"]):
                if v not in ("", None):
                    bpps.setdefault(c, []).append(float(v))
        for rank, c in enumerate(sorted(bt, key=lambda c: -bt[c]), 1):
            lo, hi = (np.percentile(boots[c], [2.5, 97.5]) if boots[c] else (math.nan,) * 2)
            rows.append(dict(target_bpp=target, rank=rank, codec=c, bt_log_strength=bt[c],
                             elo=_elo(bt[c]), elo_lo=float(lo), elo_hi=float(hi),
                             wins=int(won.get(c, 0)), comparisons=int(played[c]),
                             mean_bpp=float(np.mean(bpps[c])) if c in bpps else math.nan))
    return pd.DataFrame(rows, columns=["target_bpp", "rank", "codec", "bt_log_strength", "elo",
                                       "elo_lo", "elo_hi", "wins", "comparisons", "mean_bpp"])


def plot_ranking(rank: pd.DataFrame, path: Path, simulated: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for codec, g in rank.groupby("codec"):
        g = g.assign(x=g.target_bpp.astype(float)).sort_values("x")
        ax.errorbar(g.x, g.elo, yerr=[g.elo - g.elo_lo, g.elo_hi - g.elo], marker="o",
                    capsize=3, label=codec)
    ax.set_xlabel("target bpp")
    ax.set_ylabel("Elo (Bradley-Terry)")
    ax.set_title("Human preference ranking" + (" — SIMULATED judgments" if simulated else ""))
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_save_figure(fig, path)


def aggregate(db_path, trials_csv, out_dir, rule: QualityRule | None = None,
              write_scores: bool = True, include_unverified: bool = False) -> dict:
    """Write labels.csv, workers.csv, ranking.csv/png and aggregate.json; returns the summary."""
    rule = rule or QualityRule()
    db = StudyDB(db_path)
    df = db.judgments_frame()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kept, workers = filter_workers(df, rule, include_unverified)
    labels = make_labels(kept)
    labels_csv = out / "labels.csv"
    for col in ("ref_path", "a_path", "b_path"):
        labels[col] = [rel_path(resolve_path(p, trials_csv), labels_csv) for p in labels[col]]
    write_table(labels_csv, labels.to_dict("records"), LABELS_COLUMNS, LABELS_ID)
    write_table(out / "workers.csv", workers.to_dict("records"), WORKER_COLUMNS, "worker_id")
    if write_scores:
        for w in workers.itertuples():
            db.set_worker_score(w.worker_id, int(w.sentinel_correct), int(w.sentinels))
            db.set_worker_flags(w.worker_id, [f for f in str(w.flags).split(",") if f])
    db.dispose()  # connections closed now (a SQLite WAL checkpointed here, not at GC time)
    rank = ranking(kept)
    write_table(out / "ranking.csv", rank.to_dict("records"), list(rank.columns))
    pool = counted(df, include_unverified)       # simulated judgments anywhere in the study
    simulated = bool(len(pool)) and bool(pool.simulated.astype(int).any())
    if not rank.empty:
        plot_ranking(rank, out / "ranking.png", simulated)
    unverified = df[df.verified_at.isna()]
    flagged = workers[workers["flags"].astype(str) != ""]
    summary = dict(
        simulated=simulated, rule=asdict(rule), include_unverified=include_unverified,
        judgments=int(len(df)), kept_judgments=int(len(kept)),
        unverified_assignments=int(unverified.assignment_id.nunique()),
        unverified_judgments=int(len(unverified)),
        unverified_left_out=0 if include_unverified else int(unverified.assignment_id.nunique()),
        workers=int(len(workers)), kept_workers=int(workers.kept.sum()) if len(workers) else 0,
        flagged_workers={w.worker_id: w.flags for w in flagged.itertuples()},
        labels=int(len(labels)), agreement=agreement(kept),
        sentinel_accuracy_kept=(float((kept[kept.kind == "sentinel"].choice ==
                                       kept[kept.kind == "sentinel"].expected).mean())
                                if (kept.kind == "sentinel").any() else None))
    atomic_write_text(out / "aggregate.json", json.dumps(summary, indent=2) + "\n")
    return summary


PROG = "python -m mturk.aggregate"


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    study = runs_dir() / "study"
    p.add_argument("--db", default=str(study / "judgments.sqlite"), help="%(default)s")
    p.add_argument("--trials", default=str(study / "trials.csv"),
                   help="trials.csv the paths in the database are relative to (%(default)s)")
    p.add_argument("--out", default=str(study), help="output folder (%(default)s)")
    p.add_argument("--no-write-scores", action="store_true",
                   help="do not store sentinel scores and quality flags in the database")
    p.add_argument("--include-unverified", action="store_true",
                   help="also count assignments MTurk (or a participant token) never verified")
    add_config_args(p, QualityRule)
    args = p.parse_args(argv)
    if not is_url(args.db) and not Path(args.db).is_file():
        raise CliError(f"no database at {args.db}")
    from ..design.rating import RATING_DESIGNS
    from ..design.study import study_design

    design = study_design(args.trials) if Path(args.trials).is_file() else "2afc"
    if design in RATING_DESIGNS:
        raise CliError(f"{args.trials} is an {design.upper()} rating study; "
                       "python -m mturk.mos makes its opinion scores")
    s = aggregate(args.db, args.trials, args.out, config_from_args(QualityRule, args),
                  write_scores=not args.no_write_scores,
                  include_unverified=args.include_unverified)
    tag = "SIMULATED " if s["simulated"] else ""
    print(f"{tag}labels: {s['labels']} trials from {s['kept_judgments']}/{s['judgments']} "
          f"judgments, {s['kept_workers']}/{s['workers']} workers kept; "
          f"{s['unverified_left_out']} unverified assignments left out; agreement "
          f"{s['agreement']['pairwise_agreement']}, kappa {s['agreement']['fleiss_kappa']}; "
          f"{args.out}/labels.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
