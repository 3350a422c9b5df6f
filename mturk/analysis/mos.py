"""Ratings to opinion scores: ``python -m mturk.mos [--db DB] [--trials CSV] [--out DIR]``.

For an ACR or DSIS study (``mturk.design.rating``). Which ratings count, in this order:

1. Verified assignments only, submitted or approved, of workers not blocked (the rule of
   ``mturk.aggregate``; ``--include-unverified`` takes unverified ones too).
2. Observer screening (``mturk.analysis.screening``: ITU-R BT.500's kurtosis-based procedure, over
   every counted rating, hidden references included): a rejected worker's ratings all go.
3. Then an inconsistency check of our own (not BT.500's): the bias model (``mturk.analysis.sureal``)
   is fitted to the remaining ratings, and a worker whose inconsistency ``upsilon`` exceeds
   ``--max-inconsistency`` (default 2) times the median worker's goes too. BT.500's rule keeps a
   worker whose outliers fall mostly on one side, which a uniform spammer's do when most
   stimuli sit near one end of the scale; their ``upsilon`` still gives them away (simulated:
   about 1.7 scale points against 0.3 to 0.9 for careful workers). ``--max-inconsistency 0``
   turns it off; ``--no-screening`` keeps everyone.

Per stimulus, over the kept ratings (``n`` of them; formulas here and nowhere else):

- ``mos`` = mean score, ``mos_ci`` = half-width of its 95% interval,
  ``t_{0.975, n-1} * s / sqrt(n)`` (Student's t with the sample sd ``s``; empty for n < 2).
- ``dmos`` (ACR only, P.910 ACR-HR hidden-reference removal): per rating, the differential
  score ``DV = V(stimulus) - V(reference) + 5``, where ``V(reference)`` is the same worker's
  rating of the hidden reference in the same assignment (every ACR batch holds its references);
  DV above 5 (rated better than the reference) is kept, as P.910 says; ``dmos`` = mean DV,
  ``dmos_ci`` as above. Empty for hidden references themselves and for DSIS (whose impairment
  scale already compares with the reference).
- ``sureal`` and ``sureal_ci``: the bias-corrected score of the maximum-likelihood model
  (``mturk.analysis.sureal``) fitted to the kept raw scores (MOS's scale: a worker's additive bias
  cancels in DV, so the model needs the raw scores to see it), with its 95% interval.

Outputs in ``--out`` (default: the trials' folder): ``mos.csv`` (``mturk.schema.MOS_COLUMNS``,
paths relative to it), ``workers_mos.csv`` (screening counts and verdicts, bias, inconsistency
(empty for workers BT.500 rejected), kept),
``codec_mos.csv`` and ``codec_mos.png`` (per codec and ``target_bpp`` track: the mean over the
track's stimuli of DMOS, else MOS, with a 95% t interval over those stimuli), and ``mos.json``
(counts, rule, ``simulated``).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from plic.cli import CliError, command, parser
from plic.fsio import atomic_save_figure, atomic_write_text
from plic.paths import runs_dir
from plic.tables import rel_path, resolve_path, write_table

from ..design.rating import HIDDEN_REF_CODEC, SCALE_MAX
from ..schema import MOS_COLUMNS, MOS_ID
from ..store.study_db import StudyDB, is_url
from .aggregate import counted
from .screening import bt500_screen
from .sureal import fit_sureal

WORKER_MOS_COLUMNS = ["worker_id", "n", "P", "Q", "outlier_share", "asymmetry", "rejected",
                      "inconsistent", "bias", "bias_ci", "noise", "kept"]
CODEC_MOS_COLUMNS = ["codec", "target_bpp", "score", "n_stimuli", "mean", "ci", "sureal",
                     "sureal_ci"]


def mean_ci(x) -> tuple[float, float]:
    """(mean, half-width of the 95% Student-t interval); the half-width is nan for n < 2."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan
    if n < 2:
        return float(x.mean()), math.nan
    return float(x.mean()), float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n))


def differential_scores(r: pd.DataFrame) -> pd.Series:
    """P.910 ACR-HR: ``DV = V(stimulus) - V(reference) + 5`` per rating, the reference rated by
    the same worker in the same assignment (nan where that rating is missing, and for hidden
    references themselves)."""
    hidden = r.codec == HIDDEN_REF_CODEC
    ref_score = r[hidden].groupby(["assignment_id", "ref_id"]).score.mean()
    key = pd.MultiIndex.from_arrays([r.assignment_id, r.ref_id])
    v_ref = pd.Series(ref_score.reindex(key).to_numpy(), index=r.index)
    dv = r.score - v_ref + SCALE_MAX
    return dv.where(~hidden)


def stimulus_scores(kept: pd.DataFrame, design: str) -> tuple[pd.DataFrame, object]:
    """One row per stimulus (MOS_COLUMNS but paths as in the trials table) and the SUREAL fit."""
    kept = kept.copy()
    kept["dv"] = differential_scores(kept) if design == "acr" else np.nan
    # raw scores: a worker's additive bias cancels in DV, so only raw scores show it
    fit = fit_sureal(kept)
    rows = []
    for sid, g in kept.groupby("stimulus_id", sort=True):
        first = g.iloc[0]
        mos, mos_ci = mean_ci(g.score)
        dv = g.dv.dropna()
        dmos, dmos_ci = mean_ci(dv) if len(dv) else (math.nan, math.nan)
        rows.append(dict(stimulus_id=sid, ref_id=first.ref_id, ref_path=first.ref_path,
                         path=first.path, codec=first.codec, bpp=first.bpp,
                         target_bpp=first.target_bpp, design=design,
                         hidden_ref=int(first.codec == HIDDEN_REF_CODEC), n=len(g), mos=mos,
                         mos_ci=mos_ci, dmos=dmos, dmos_ci=dmos_ci, sureal=fit.psi[sid],
                         sureal_ci=fit.psi_ci[sid]))
    return pd.DataFrame(rows, columns=MOS_COLUMNS), fit


def codec_table(mos: pd.DataFrame) -> pd.DataFrame:
    """Per (codec, target_bpp): the mean over the track's stimuli of DMOS (ACR) or MOS (DSIS)
    with a 95% t interval over those stimuli, and the same of the SUREAL scores."""
    d = mos[mos.hidden_ref == 0]
    rows = []
    for (codec, target), g in d.groupby(["codec", "target_bpp"], sort=True):
        col = "dmos" if g.dmos.notna().all() and len(g) else "mos"
        m, ci = mean_ci(g[col])
        s, s_ci = mean_ci(g.sureal)
        rows.append(dict(codec=codec, target_bpp=target, score=col, n_stimuli=len(g), mean=m,
                         ci=ci, sureal=s, sureal_ci=s_ci))
    return pd.DataFrame(rows, columns=CODEC_MOS_COLUMNS)


def plot_codecs(table: pd.DataFrame, path: Path, design: str, simulated: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for codec, g in table.groupby("codec"):
        g = g.assign(x=pd.to_numeric(g.target_bpp, errors="coerce")).sort_values("x")
        ax.errorbar(g.x, g["mean"], yerr=g.ci.fillna(0), marker="o", capsize=3, label=codec)
    ax.set_xlabel("target bpp (track)")
    ax.set_ylabel(("DMOS" if design == "acr" else "MOS (DSIS impairment)") + " with 95% CI")
    ax.set_ylim(0.8, 5.5 if design == "acr" else 5.2)
    ax.set_title(f"{design.upper()} opinion scores" + (" — SIMULATED ratings" if simulated
                                                      else ""))
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_save_figure(fig, path)


def rating_results(df: pd.DataFrame, screening: bool = True, include_unverified: bool = False,
                   min_scores: int = 4, max_inconsistency: float = 2.0,
                   name: str = "the study") -> dict:
    """The screening and the scores of ``StudyDB.ratings_frame()`` rows, written nowhere:
    design, pool (counted ratings), screen (BT.500 per worker), bt500, inconsistent and
    rejected (worker sets), kept (ratings), mos (per stimulus), fit and first (SUREAL fits after
    and before the inconsistency check). ``aggregate_ratings`` writes them;
    ``mturk.dashboard`` shows them."""
    designs = sorted(set(df.design))
    if len(designs) != 1:
        raise ValueError(f"{name}: ratings of several designs {designs}; one study per DB")
    design = designs[0]
    pool = counted(df, include_unverified)
    if pool.empty:
        raise ValueError(f"{name}: no verified ratings (--include-unverified counts the "
                         f"{len(df)} unverified ones)")
    screen = bt500_screen(pool, min_scores=min_scores)
    bt500 = set(screen.index[screen.rejected]) if screening else set()
    first = fit_sureal(pool[~pool.worker_id.isin(bt500)])
    inconsistent = set()
    if screening and max_inconsistency > 0:
        limit = max_inconsistency * float(first.noise.median())
        inconsistent = set(first.noise.index[first.noise > limit])
    rejected = bt500 | inconsistent
    kept = pool[~pool.worker_id.isin(rejected)]
    mos, fit = stimulus_scores(kept, design)
    return dict(design=design, pool=pool, screen=screen, bt500=bt500,
                inconsistent=inconsistent, rejected=rejected, kept=kept, mos=mos, fit=fit,
                first=first)


def aggregate_ratings(db_path, trials_csv, out_dir=None, screening: bool = True,
                      include_unverified: bool = False, min_scores: int = 4,
                      max_inconsistency: float = 2.0) -> dict:
    """Write mos.csv, workers_mos.csv, codec_mos.csv/png and mos.json; returns the summary."""
    out = Path(out_dir) if out_dir else Path(trials_csv).parent
    df = StudyDB(db_path).ratings_frame()
    if df.empty:
        raise ValueError(f"{db_path}: no ratings (is this an ACR or DSIS study? "
                         "mturk.trials --design acr|dsis)")
    r = rating_results(df, screening, include_unverified, min_scores, max_inconsistency,
                       str(db_path))
    design, pool, screen, kept, mos, fit, first = (r[k] for k in (
        "design", "pool", "screen", "kept", "mos", "fit", "first"))
    bt500, inconsistent, rejected = r["bt500"], r["inconsistent"], r["rejected"]
    mos_csv = out / "mos.csv"
    out.mkdir(parents=True, exist_ok=True)
    for col in ("ref_path", "path"):
        mos[col] = [rel_path(resolve_path(p, trials_csv), mos_csv) for p in mos[col]]
    write_table(mos_csv, mos.to_dict("records"), MOS_COLUMNS, MOS_ID)
    workers = screen.reset_index()
    workers["bias"] = workers.worker_id.map(fit.bias)
    workers["bias_ci"] = workers.worker_id.map(fit.bias_ci)
    workers["noise"] = workers.worker_id.map(fit.noise).fillna(
        workers.worker_id.map(first.noise))
    workers["inconsistent"] = workers.worker_id.isin(inconsistent)
    workers["kept"] = ~workers.worker_id.isin(rejected)
    write_table(out / "workers_mos.csv", workers[WORKER_MOS_COLUMNS].to_dict("records"),
                WORKER_MOS_COLUMNS, "worker_id")
    table = codec_table(mos)
    write_table(out / "codec_mos.csv", table.to_dict("records"), CODEC_MOS_COLUMNS)
    simulated = bool(pool.simulated.astype(int).any())
    if not table.empty:
        plot_codecs(table, out / "codec_mos.png", design, simulated)
    unverified = df[df.verified_at.isna()]
    summary = dict(
        simulated=simulated, design=design, screening=(
            "ITU-R BT.500 kurtosis" + (f" + inconsistency > {max_inconsistency:g} x median"
                                       if max_inconsistency > 0 else "")) if screening
        else "none", min_scores=min_scores, include_unverified=include_unverified,
        ratings=int(len(df)), counted_ratings=int(len(pool)), kept_ratings=int(len(kept)),
        unverified_left_out=0 if include_unverified else int(unverified.assignment_id.nunique()),
        workers=int(len(screen)), rejected_workers=sorted(rejected),
        bt500_rejected=sorted(bt500), inconsistent_workers=sorted(inconsistent),
        stimuli=int(len(mos)), sureal_iterations=fit.iterations)
    atomic_write_text(out / "mos.json", json.dumps(summary, indent=2) + "\n")
    return summary


PROG = "python -m mturk.mos"


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("--db", default=str(runs_dir() / "study" / "judgments.sqlite"),
                   help="the study database (default: %(default)s)")
    p.add_argument("--trials", default=str(runs_dir() / "study" / "trials.csv"),
                   help="the study's trials.csv (default: %(default)s)")
    p.add_argument("--out", default="", help="output folder (default: the trials' folder)")
    p.add_argument("--no-screening", action="store_true", help="keep every worker")
    p.add_argument("--min-scores", type=int, default=4,
                   help="screening: a stimulus needs this many scores to take part "
                        "(default: %(default)s)")
    p.add_argument("--max-inconsistency", type=float, default=2.0,
                   help="also reject a worker whose inconsistency exceeds this many times the "
                        "median worker's (0: BT.500 alone; default: %(default)s)")
    p.add_argument("--include-unverified", action="store_true",
                   help="also count assignments MTurk (or a participant token) never verified")
    args = p.parse_args(argv)
    if not is_url(args.db) and not Path(args.db).is_file():
        raise CliError(f"{args.db}: no such database")
    if not Path(args.trials).is_file():
        raise CliError(f"{args.trials}: no such trials table")
    if args.min_scores < 2:
        raise CliError("--min-scores must be >= 2")
    if not args.max_inconsistency == 0 and not args.max_inconsistency >= 1:
        raise CliError("--max-inconsistency must be 0 (off) or at least 1")
    s = aggregate_ratings(args.db, args.trials, args.out or None, not args.no_screening,
                          args.include_unverified, args.min_scores, args.max_inconsistency)
    tag = "SIMULATED " if s["simulated"] else ""
    print(f"{tag}{s['design'].upper()}: {s['kept_ratings']} of {s['counted_ratings']} counted "
          f"ratings kept; {len(s['rejected_workers'])} of {s['workers']} workers rejected by "
          f"{s['screening']}; {s['stimuli']} stimuli in "
          f"{Path(args.out or Path(args.trials).parent) / 'mos.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
