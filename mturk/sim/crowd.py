"""A simulated crowd driving the real server over HTTP: ``python -m mturk.sim.crowd``.

Each simulated worker is a lab participant (one link of ``--participants``, the file
``mturk.serve --local --participants N`` writes): it claims a batch (``POST /api/local/claim``
with its token), fetches the task the page would show (``GET /api/task``) and the three images of
every trial, answers, and submits (``POST /api/submit``), exactly as the browser page does. It
knows nothing the page does not show: page trial ids are keyed per assignment, image URLs are
per assignment, so it judges from the pixels it fetched.

Worker types and their shares: ``--mix`` (default ``careful=0.9,random=0.1``; ``mturk.sim.workers``
describes ``careful``, ``random``, ``always_left``, ``mse_bot`` and ``fast``). Careful workers
score candidates with an oracle: ``ms_ssim``, ``psnr`` or ``mse`` from ``plic.quality``, or any
``module:function`` taking ``(ref, img)`` uint8 RGB arrays, named at run time (so this package
never imports ``perceptual_metric``); ``--lower-is-closer`` for distances. Their noise ``T``
(``--temperature``) defaults to half the median |q_b - q_a| over the test trials of the study.

On an ACR or DSIS study (``mturk.design.rating``) the workers rate instead:
``mturk.sim.rating_crowd`` documents the oracle-to-scale mapping and the per-worker bias and noise
(``--rating-bias-sd``, ``--rating-noise``).

Answers are flagged simulated by the server (``mturk.serve --simulated``), never by this client;
every output file here says ``"simulated": true``. ``summary["worker_types"]`` maps each worker
id to its type (``mturk.sim.twoafc_report`` scores the quality control with it).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from plic.cli import command, parser, report
from plic.cluster import ClusterError
from plic.config_args import add_config_args, config_from_args, option
from plic.fsio import atomic_write_text
from plic.paths import runs_dir
from plic.tables import read_table

from ..design.rating import RATING_DESIGNS
from ..design.study import study_design
from ..schema import TRIALS_COLUMNS, TRIALS_ID
from .rating_crowd import run_rating_crowd
from .twoafc_crowd import run_twoafc_crowd
from .workers import read_participants


@dataclass
class SimConfig:
    url: str = option("http://127.0.0.1:8000", "study server (local)")
    trials: str = option(
        str(runs_dir() / "study" / "trials.csv"), "trials.csv (for the noise scale T only)")
    participants: str = option("", "participant links, one per line (default: participants.txt "
                                   "beside --trials)")
    workers: int = option(20, "number of simulated workers")
    batches_per_worker: int = option(1, "batches each worker does")
    mix: str = option("careful=0.9,random=0.1", "worker types and shares: careful, random, "
                                                "always_left, mse_bot, fast")
    oracle: str = option("ms_ssim", "ms_ssim | psnr | mse | module:function(ref, img) -> score")
    lower_is_closer: bool = option(False, "the oracle is a distance (mse is one already)")
    temperature: float = option(0.0, "decision noise in oracle units; 0 = half the median |q_b - "
                                     "q_a|")
    lapse: float = option(0.05, "careful workers' share of slips")
    concurrency: int = option(4, "workers answering at once")
    seed: int = option(0, "random seed")
    out: str = option("", "summary JSON (default: next to trials)")
    rating_bias_sd: float = option(0.5, "acr/dsis studies: sd of careful workers' bias in scale "
                                        "points (mturk.sim.rating_crowd)")
    rating_noise: str = option("0.3,0.8", "acr/dsis studies: LO,HI of careful workers' noise sd "
                                          "in scale points")
    cluster: str = option("", "run the simulated workers on Dask: local:N (N processes here) or "
                              "tcp://HOST:PORT (a running scheduler; its workers must reach "
                              "--url); one worker's batches per item, --concurrency unused "
                              "(default: threads here)")


def run_crowd(cfg: SimConfig) -> dict:
    """The crowd's summary; on ``cfg.cluster`` (``plic.cluster``) when it is set."""
    if not cfg.cluster:
        return _run_crowd(cfg, None)
    from plic.cluster import Cluster, parse_cluster

    with Cluster(parse_cluster(cfg.cluster)) as cluster:
        cluster.check_url(cfg.url)
        return _run_crowd(cfg, cluster)


def _run_crowd(cfg: SimConfig, cluster) -> dict:
    df = read_table(cfg.trials, TRIALS_COLUMNS, TRIALS_ID)
    design = study_design(cfg.trials)
    if design in RATING_DESIGNS:            # ACR/DSIS: simulated raters (mturk.sim.rating_crowd)
        tokens = read_participants(cfg.participants or Path(cfg.trials).parent /
                                   "participants.txt")
        if len(tokens) < cfg.workers:
            raise ValueError(f"{cfg.workers} workers need as many participant links; the file "
                             f"has {len(tokens)}")
        return run_rating_crowd(cfg, design, tokens, cluster=cluster)
    return run_twoafc_crowd(cfg, df, cluster=cluster)


PROG = "python -m mturk.sim.crowd"


@command(PROG, errors=(ImportError, AttributeError, ClusterError))
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    add_config_args(p, SimConfig)
    cfg = config_from_args(SimConfig, p.parse_args(argv))
    try:
        summary = run_crowd(cfg)
    except (ValueError, OSError, ImportError, AttributeError, ClusterError) as e:
        return report(e, PROG)
    out = Path(cfg.out) if cfg.out else Path(cfg.trials).parent / "simulated_crowd.json"
    atomic_write_text(out, json.dumps(summary, indent=2) + "\n")
    mix = ", ".join(f"{n} {k}" for k, n in summary["type_counts"].items())
    print(f"SIMULATED crowd: {summary['submissions']} submissions, {summary['judgments']} "
          f"judgments from {cfg.workers} workers ({mix}) in {summary['wall_s']:.1f} s; "
          f"summary {out}")
    return 0 if not summary["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
