"""Rounds on the real server with a SIMULATED crowd: ``python -m perceptual_metric.server_rounds``.

    python -m perceptual_metric.server_rounds --index runs/distortions/index.csv \\
        --study runs/study --strategy active --rounds 4 --round-trials 96 --workers 3

Per round ``rNNN`` (``mturk.active.study_rounds`` describes the layout), the same steps a study on
MTurk takes with ``mturk.publish``/``mturk.market.collect`` in place of the simulated crowd:

1. ``mturk.trials --strategy active --labels STUDY/labels.csv --predictions <last round's>``
   (the first round has neither: a random draw) writes the round's batches;
2. the round is served (``mturk.serve --local --simulated``, in process) and ``--workers``
   simulated workers (``mturk.sim.crowd``) each answer every batch once, over HTTP;
3. ``mturk.aggregate`` writes the round's labels; ``mturk.active.study_rounds`` merges every
   round's;
4. ``perceptual_metric.fit --init <last round's metric.pt>`` (``lin``: seconds);
5. ``perceptual_metric.predict`` on the pool's pairs: the next round's predictions.

Resumable: a round is finished when its ``predictions.csv`` (written last) exists and is not run
again; one with labels but no predictions resumes at step 3 (merge, fit, predict); a fit already
done on the same labels is not redone; a larger ``--rounds`` continues the study. With
``--strategy random`` every round asks the whole pool once (today's study, repeated).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from mturk.active.acquire import RoundConfig
from mturk.active.study_rounds import done_rounds, merge
from mturk.analysis.aggregate import aggregate
from mturk.design.trials import TrialsConfig, build
from mturk.schema import PREDICTIONS_COLUMNS, PREDICTIONS_ID
from mturk.sim.simulated_study import simulated_study
from plic.cli import CliError, command, parser
from plic.config_args import add_config_args, config_from_args, option
from plic.paths import runs_dir
from plic.tables import write_table

from .fit import FitConfig, fit
from .predict import predict


@dataclass
class RoundsConfig:
    index: str = option(help="distortions index.csv",
                        factory=lambda: str(runs_dir() / "distortions" / "index.csv"))
    study: str = option(help="study folder (pool/, r001/...)",
                        factory=lambda: str(runs_dir() / "study"))
    strategy: str = option("active", "random | active")
    rounds: int = option(3, "run until this many rounds are done")
    round_trials: int = option(96, "active: test pairs per round")
    workers: int = option(3, "simulated workers; each answers every batch of a round once")
    mix: str = option("careful=0.9,random=0.1", "mturk.sim.crowd --mix")
    oracle: str = option("ms_ssim", "mturk.sim.crowd --oracle")
    batch_size: int = option(20, "mturk.trials --batch-size")
    crop: int = option(256, "mturk.trials --crop")
    steps: int = option(0, "fit steps per round (0: fit's default)")
    patch: int = option(64, "fit --patch")
    seed: int = option(0, "seed of trials, crowd and fit")


def _serve_and_answer(rdir: Path, cfg: RoundsConfig, rnd: int) -> dict:
    db, sim = simulated_study(rdir / "trials.csv", rdir, cfg.workers, "met errors", fresh=False,
                              concurrency=2, batches_per_worker=1000, mix=cfg.mix,
                              oracle=cfg.oracle, seed=cfg.seed * 1000 + rnd)
    db.dispose()  # every connection closed: the round's WAL checkpointed now, not at GC time
    return sim


def run_rounds(cfg: RoundsConfig, log=print) -> list[dict]:
    """Run rounds until ``cfg.rounds`` are done; returns one summary per round run now."""
    study = Path(cfg.study)
    tcfg = TrialsConfig(batch_size=cfg.batch_size, crop=cfg.crop, seed=cfg.seed)
    pool, _ = build(cfg.index, study / "pool", tcfg)
    out = []
    labels = study / "labels.csv"
    for rnd in range(1, cfg.rounds + 1):
        rdir, prev = study / f"r{rnd:03d}", study / f"r{rnd - 1:03d}"
        if (rdir / "predictions.csv").is_file():
            continue
        judged = 0
        if not (rdir / "labels.csv").is_file():
            rc = RoundConfig(strategy=cfg.strategy, round_trials=cfg.round_trials)
            if cfg.strategy == "active" and rnd > 1:
                rc.labels, rc.predictions = str(labels), str(prev / "predictions.csv")
            trials_csv, _ = build(cfg.index, rdir, tcfg, rounds=rc)
            judged = _serve_and_answer(rdir, cfg, rnd)["judgments"]
            aggregate(rdir / "judgments.sqlite", trials_csv, rdir)
        _, merged = merge(study)
        metric = rdir / "metric.pt"
        fit(FitConfig(labels=str(labels), out=str(metric), patch=cfg.patch,
                      steps=cfg.steps or None, seed=cfg.seed,
                      init=str(prev / "metric.pt") if (prev / "metric.pt").is_file() else ""),
            log=lambda *_: None)
        write_table(rdir / "predictions.csv", predict(metric, pool, study / "pool" / "cache"),
                    PREDICTIONS_COLUMNS, PREDICTIONS_ID)
        s = dict(round=rdir.name, judgments=judged, study_judgments=merged["judgments"],
                 pairs=merged["pairs"], settled=merged["settled"])
        log(f"{rdir.name}: SIMULATED {judged} judgments (tests, sentinels, repeats); study: "
            f"{s['pairs']} pairs labelled by {s['study_judgments']} kept judgments, "
            f"{s['settled']} settled")
        out.append(s)
    return out


PROG = "python -m perceptual_metric.server_rounds"


@command(PROG, errors=(RuntimeError,))
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    add_config_args(p, RoundsConfig)
    cfg = config_from_args(RoundsConfig, p.parse_args(argv))
    RoundConfig(strategy=cfg.strategy, round_trials=cfg.round_trials).check()
    if cfg.rounds < 1 or cfg.workers < 1:
        raise CliError("--rounds and --workers must be >= 1")
    run_rounds(cfg)
    print(f"{len(done_rounds(cfg.study))} rounds done in {cfg.study} ({cfg.strategy})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
