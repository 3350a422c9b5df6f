"""A simulated ACR (or DSIS) study end to end, scored: ``python -m mturk.sim.rating_report``.

Builds a rating study from a distortions index (``mturk.trials --design``), serves it in process
as a ``--local --simulated`` lab study, lets ``mturk.sim.crowd`` rate it with a crowd of careful
workers (each with a bias and a noise: ``mturk.sim.rating_crowd``) and spammers (``--mix``),
aggregates with ``mturk.mos`` (BT.500 screening, MOS/DMOS, the SUREAL bias model), and measures:

- **screening**: the share of spammers rejected, and of careful workers rejected, by BT.500
  alone and with ``mturk.mos``'s inconsistency check;
- **bias recovery**: per kept careful worker, the model's bias against the simulated one, both
  centred over the kept careful workers (the model identifies biases up to a constant): RMSE,
  largest error, correlation;
- **interval coverage**: the share of distorted stimuli whose 95% MOS interval holds the
  oracle's mapped score (``mturk.sim.rating_crowd``: what a careful worker without bias or noise
  would rate before rounding), and the same for the SUREAL interval; also over the stimuli
  mapped inside [1.5, 4.5] only, away from the ends where clipping pulls the mean inwards.

The study stays in ``OUT/study`` (``mos.csv`` there is what ``perceptual_metric.fit --labels``
takes); the report (``OUT/rating_report.json`` and ``.md``) says SIMULATED and gives the command.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from plic.cli import command, parser, report
from plic.fsio import atomic_write_text
from plic.paths import runs_dir

from ..analysis.mos import aggregate_ratings
from ..design.rating import RATING_DESIGNS
from ..design.trials import TrialsConfig, build
from .simulated_study import simulated_study


def score_run(out: Path, sim: dict) -> dict:
    """Screening, bias recovery and coverage from ``out``'s mturk.mos files and the crowd."""
    w = pd.read_csv(out / "workers_mos.csv").set_index("worker_id")
    kinds = pd.Series(sim["worker_types"])
    careful = kinds.index[kinds == "careful"]
    spam = kinds.index[kinds != "careful"]
    kept_careful = [c for c in careful if w.kept[c]]
    true = pd.Series(sim["worker_bias"])[kept_careful]
    est = w.loc[kept_careful, "bias"]
    err = (est - est.mean()) - (true - true.mean())
    mos = pd.read_csv(out / "mos.csv")
    dist = mos[mos.hidden_ref == 0].copy()
    dist["truth"] = dist.stimulus_id.map(sim["mapped_scores"])

    def coverage(col: str, where=None) -> float:
        d = dist if where is None else dist[where]
        lo, hi = d[col] - d[col + "_ci"], d[col] + d[col + "_ci"]
        return float(((d.truth >= lo) & (d.truth <= hi)).mean())

    interior = dist.truth.between(1.5, 4.5)      # away from the scale's clipped ends

    out_ = ~w.kept.astype(bool)
    return dict(
        spammers=len(spam), spammers_rejected=int(out_[spam].sum()),
        spammer_rejection_share=float(out_[spam].mean()) if len(spam) else None,
        spammers_rejected_bt500=int(w.loc[spam, "rejected"].sum()),
        careful=len(careful), careful_rejected=int(out_[careful].sum()),
        careful_rejection_share=float(out_[careful].mean()),
        careful_rejected_bt500=int(w.loc[careful, "rejected"].sum()),
        bias_rmse=float(np.sqrt(np.mean(err ** 2))), bias_max_error=float(err.abs().max()),
        bias_sd_true=float(true.std()), bias_corr=float(np.corrcoef(true, est)[0, 1]),
        stimuli=len(dist), mean_n=float(dist.n.mean()),
        mos_coverage=coverage("mos"), sureal_coverage=coverage("sureal"),
        interior_stimuli=int(interior.sum()), mos_coverage_interior=coverage("mos", interior),
        sureal_coverage_interior=coverage("sureal", interior),
        mos_ci_mean=float(dist.mos_ci.mean()), sureal_ci_mean=float(dist.sureal_ci.mean()),
        mos_abs_error=float((dist.mos - dist.truth).abs().mean()),
        sureal_abs_error=float((dist.sureal - dist.truth).abs().mean()))


def run(index: str, out: str, design: str, workers: int, batches_per_worker: int, mix: str,
        oracle: str, seed: int, batch_size: int, bias_sd: float, noise: str) -> dict:
    out_dir = Path(out)
    study = out_dir / "study"
    trials_csv, _ = build(index, study, TrialsConfig(batch_size=batch_size, design=design,
                                                     seed=seed), force=True)
    db, sim = simulated_study(trials_csv, study, workers, "failed",
                              batches_per_worker=batches_per_worker, mix=mix, oracle=oracle,
                              seed=seed, rating_bias_sd=bias_sd, rating_noise=noise)
    atomic_write_text(study / "simulated_crowd.json", json.dumps(sim, indent=2) + "\n")
    agg = aggregate_ratings(db.path, trials_csv, study)
    return dict(simulated=True, design=design, aggregate=agg, mapping=sim["mapping"],
                submissions=sim["submissions"], ratings=sim["judgments"],
                wall_s=sim["wall_s"], type_counts=sim["type_counts"],
                scores=score_run(study, sim))


def markdown(rep: dict, command: str) -> str:
    s = rep["scores"]
    return "\n".join([
        f"SIMULATED {rep['design'].upper()} study ({rep['submissions']} submissions, "
        f"{rep['ratings']} ratings, {s['stimuli']} distorted stimuli, {s['mean_n']:.1f} ratings "
        f"each), made by", "", f"    {command}", "",
        "| measure | value |", "|---|---|",
        f"| spammers rejected: BT.500 screening alone / with the inconsistency check | "
        f"{s['spammers_rejected_bt500']} / {s['spammers_rejected']} of {s['spammers']} "
        f"({s['spammer_rejection_share']:.0%}) |",
        f"| careful workers rejected: BT.500 alone / with the inconsistency check | "
        f"{s['careful_rejected_bt500']} / {s['careful_rejected']} of {s['careful']} "
        f"({s['careful_rejection_share']:.0%}) |",
        f"| bias recovery, kept careful workers: RMSE / largest error (scale points) | "
        f"{s['bias_rmse']:.3f} / {s['bias_max_error']:.3f} (true biases' sd "
        f"{s['bias_sd_true']:.3f}, correlation {s['bias_corr']:.3f}) |",
        f"| 95% MOS intervals holding the oracle's mapped score | {s['mos_coverage']:.0%} "
        f"(mean half-width {s['mos_ci_mean']:.2f}; mean abs error {s['mos_abs_error']:.2f}) |",
        f"| 95% SUREAL intervals holding it | {s['sureal_coverage']:.0%} (mean half-width "
        f"{s['sureal_ci_mean']:.2f}; mean abs error {s['sureal_abs_error']:.2f}) |",
        f"| the same, {s['interior_stimuli']} stimuli mapped inside [1.5, 4.5] (MOS / SUREAL) | "
        f"{s['mos_coverage_interior']:.0%} / {s['sureal_coverage_interior']:.0%} |", ""])


PROG = "python -m mturk.sim.rating_report"


@command(PROG, errors=(RuntimeError, OSError))
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("--index", default=str(runs_dir() / "distortions" / "index.csv"),
                   help="the distortions index.csv (default: %(default)s)")
    p.add_argument("--out", default=str(runs_dir() / "rating_report"),
                   help="output folder (default: %(default)s)")
    p.add_argument("--design", default="acr", choices=RATING_DESIGNS, help="default: acr")
    p.add_argument("--workers", type=int, default=40, help="simulated workers (default: 40)")
    p.add_argument("--batches-per-worker", type=int, default=1000,
                   help="batches each worker rates, at most every batch (default: 1000)")
    p.add_argument("--mix", default="careful=0.85,random=0.15",
                   help="worker types and shares (default: %(default)s)")
    p.add_argument("--oracle", default="ms_ssim", help="default: ms_ssim")
    p.add_argument("--batch-size", type=int, default=20, help="trials per batch (default: 20)")
    p.add_argument("--rating-bias-sd", type=float, default=0.5, help="default: 0.5")
    p.add_argument("--rating-noise", default="0.3,0.8", help="default: 0.3,0.8")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    command_line = PROG + " " + shlex.join(argv if argv is not None else sys.argv[1:])
    try:
        if args.workers < 2:
            raise ValueError("--workers must be >= 2")
        if not Path(args.index).is_file():
            raise FileNotFoundError(f"{args.index}: no such index")
        rep = run(args.index, args.out, args.design, args.workers, args.batches_per_worker,
                  args.mix, args.oracle, args.seed, args.batch_size, args.rating_bias_sd,
                  args.rating_noise)
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as e:
        return report(e, PROG)
    rep["command"] = command_line
    out = Path(args.out)
    atomic_write_text(out / "rating_report.json", json.dumps(rep, indent=2) + "\n")
    md = markdown(rep, command_line)
    atomic_write_text(out / "rating_report.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
