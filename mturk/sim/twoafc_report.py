"""How well quality control stops an adversarial crowd: ``python -m mturk.sim.twoafc_report``.

Builds a study from a distortions index (``mturk.trials``, default settings), serves it in
process as a ``--local --simulated`` lab study, lets ``mturk.sim.crowd`` answer it with a mixed
crowd (``--mix``: careful workers and the adversaries of ``mturk.sim.workers``: always-left, random,
a pixel-MSE script, a fast clicker), then scores what ``mturk.aggregate`` would do:

- per worker type, the share of workers left out, and which flags caught them;
- the 2AFC accuracy of the labels: a test trial's label is right when its majority (``p_b`` above
  or below 1/2) picks the side the careful workers' oracle prefers; a tie counts one half. Three
  filters: none (every verified judgment), sentinels only (the old rule), and the full quality
  control of ``mturk.analysis.worker_quality``.

Every number comes from this run; the report (``OUT/crowd_report.md`` and ``.json``) says
SIMULATED and gives the command that produced it. The study (trials, views, the judgments
database) stays in ``OUT/study``.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd

from plic.cli import command, parser, report
from plic.fsio import atomic_write_text
from plic.paths import runs_dir

from ..analysis.aggregate import counted, filter_workers, make_labels
from ..analysis.worker_quality import QualityRule
from ..design.trials import TrialsConfig, build
from .simulated_study import simulated_study
from .twoafc_crowd import oracle_scores
from .workers import WORKER_TYPES

SENTINELS_ONLY = QualityRule(min_s_per_trial=0.0, max_side_bias_p=0.0, min_consensus=0.0,
                             max_inconsistency=1.0)


def label_accuracy(labels: pd.DataFrame, truth: dict[str, str]) -> tuple[float, int]:
    """(2AFC accuracy of the labels' majorities against ``truth``, labels scored)."""
    score, n = 0.0, 0
    for r in labels.itertuples():
        if r.trial_id not in truth:
            continue
        p_b = float(r.p_b)
        pick = 0.5 if p_b == 0.5 else float((p_b > 0.5) == (truth[r.trial_id] == "b"))
        score, n = score + pick, n + 1
    return (score / n if n else float("nan")), n


def evaluate(db, trials_csv: Path, oracle: str, worker_types: dict[str, str],
             rule: QualityRule) -> dict:
    """Per type exclusion and flags, and label accuracy without, with sentinel-only and with the
    full filter."""
    scores = oracle_scores(trials_csv, oracle)
    truth = {t: ("b" if qb > qa else "a") for t, (qa, qb) in scores.items() if qa != qb}
    df = db.judgments_frame()
    acc = {}
    acc["none"] = label_accuracy(make_labels(counted(df)), truth)
    acc["sentinels only"] = label_accuracy(make_labels(filter_workers(df, SENTINELS_ONLY)[0]),
                                           truth)
    kept, workers = filter_workers(df, rule)
    acc["full quality control"] = label_accuracy(make_labels(kept), truth)
    w = workers.set_index("worker_id")
    types = {}
    for kind in WORKER_TYPES:
        ids = [wid for wid, k in worker_types.items() if k == kind and wid in w.index]
        if not ids:
            continue
        flags: dict[str, int] = {}
        for f in w.loc[ids, "flags"]:
            for x in filter(None, str(f).split(",")):
                flags[x] = flags.get(x, 0) + 1
        c = counted(df)
        mine = c[c.worker_id.isin(ids) & (c.kind == "test") & (c.repeat_of.astype(str) == "")
                 & c.trial_id.isin(truth)]
        right = (mine.choice == mine.trial_id.map(truth)).mean() if len(mine) else float("nan")
        types[kind] = dict(workers=len(ids), excluded=int((~w.loc[ids, "kept"]).sum()),
                           flags=flags, judgment_accuracy=float(right))
    return dict(label_accuracy={k: dict(accuracy=v[0], labels=v[1]) for k, v in acc.items()},
                types=types)


def run(index: str, out: str, mix: str, workers: int, batches_per_worker: int, oracle: str,
        seed: int, trials_cfg: TrialsConfig, rule: QualityRule) -> dict:
    out_dir = Path(out)
    study = out_dir / "study"
    trials_csv, _ = build(index, study, trials_cfg, force=True)
    t0 = time.perf_counter()
    db, sim = simulated_study(trials_csv, study, workers, "met errors",
                              batches_per_worker=batches_per_worker, mix=mix, oracle=oracle,
                              seed=seed)
    result = evaluate(db, trials_csv, oracle, sim["worker_types"], rule)
    n_trials = len(db.batch_trials(db.batch_ids()[0])) if db.batch_ids() else 0
    result.update(simulated=True, index=str(index), mix=sim["mix"], seed=seed,
                  workers=workers, batches=len(db.batch_ids()), trials_per_batch=n_trials,
                  submissions=sim["submissions"], judgments=sim["judgments"],
                  temperature=sim["temperature"], trials_config=asdict(trials_cfg),
                  rule=asdict(rule), wall_s=time.perf_counter() - t0)
    return result


def markdown(r: dict, command: str) -> str:
    lines = [f"SIMULATED crowd ({r['workers']} workers, {r['submissions']} submissions, "
             f"{r['judgments']} judgments over {r['batches']} batches of up to "
             f"{r['trials_per_batch']} trials), made by", "", f"    {command}", "",
             "| worker type | workers | excluded | share excluded | by sentinels alone "
             "| caught by (flags) | accuracy of their test answers |",
             "|---|---|---|---|---|---|---|"]
    for kind, t in r["types"].items():
        caught = ", ".join(f"{f} {n}" for f, n in sorted(t["flags"].items())) or "-"
        alone = t["flags"].get("sentinels", 0) + t["flags"].get("few-sentinels", 0)
        lines.append(f"| {kind} | {t['workers']} | {t['excluded']} | "
                     f"{t['excluded'] / t['workers']:.0%} | {alone / t['workers']:.0%} | "
                     f"{caught} | {t['judgment_accuracy']:.2f} |")
    lines += ["", "Label accuracy: the share of test trials whose label's majority picks the "
              "side the careful workers' oracle prefers (a tie counts one half).", "",
              "| labels from | 2AFC accuracy | labels |", "|---|---|---|"]
    for name, a in r["label_accuracy"].items():
        lines.append(f"| {name} | {a['accuracy']:.3f} | {a['labels']} |")
    return "\n".join(lines) + "\n"


PROG = "python -m mturk.sim.twoafc_report"


@command(PROG, errors=(OSError, RuntimeError))
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("--index", default=str(runs_dir() / "distortions" / "index.csv"),
                   help="distortions index.csv (default: %(default)s)")
    p.add_argument("--out", default=str(runs_dir() / "crowd_report"),
                   help="output folder (default: %(default)s)")
    p.add_argument("--mix", default="careful=0.5,random=0.125,always_left=0.125,"
                   "mse_bot=0.125,fast=0.125", help="worker types and shares (%(default)s)")
    p.add_argument("--workers", type=int, default=40, help="simulated workers (%(default)s)")
    p.add_argument("--batches-per-worker", type=int, default=1000,
                   help="batches each worker does (default: every batch)")
    p.add_argument("--oracle", default="ms_ssim", help="careful workers' oracle (%(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (%(default)s)")
    p.add_argument("--batch-size", type=int, default=TrialsConfig.batch_size,
                   help="trials per batch (%(default)s)")
    args = p.parse_args(argv)
    command_line = PROG + " " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    try:
        if args.workers < 1 or args.batches_per_worker < 1:
            raise ValueError("--workers and --batches-per-worker must be >= 1")
        r = run(args.index, args.out, args.mix, args.workers, args.batches_per_worker,
                args.oracle, args.seed, replace(TrialsConfig(), batch_size=args.batch_size),
                QualityRule())
    except (OSError, ValueError, RuntimeError) as e:
        return report(e, PROG)
    md = markdown(r, command_line.strip())
    out = Path(args.out)
    atomic_write_text(out / "crowd_report.md", md)
    atomic_write_text(out / "crowd_report.json", json.dumps(dict(r, command=command_line), indent=2)
                      + "\n")
    print(md, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
