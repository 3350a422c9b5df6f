"""The fitted metric's view of every candidate pair, for the next round of an active study.

    python -m perceptual_metric.predict --metric runs/study/r001/metric.pt \\
        --trials runs/study/pool/trials.csv --out runs/study/r001/predictions.csv

For each test pair of ``--trials`` (repeats and sentinels skipped): ``d_a``, ``d_b`` (the metric on
the whole views the page shows) and ``p_b``, the metric's ranking head's probability that people
pick B. Columns: ``mturk.schema.PREDICTIONS_COLUMNS``; ``mturk.trials --strategy active
--predictions`` reads it (``mturk.active.acquire``). One trunk pass per image; with ``--cache
DIR`` a ``lin`` metric's trunk terms are kept there and the next round's metric (same trunk, same
pool) reuses them, so a round's prediction costs no trunk pass.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from mturk.schema import PREDICTIONS_COLUMNS, PREDICTIONS_ID
from plic.checkpoint import CheckpointError, load_checkpoint
from plic.cli import command, parser
from plic.tables import write_table

from .lpips_model import RankHead
from .official import METRIC_KIND, load
from .term_cache import cached_pair_terms, test_pairs


def load_head(path: str | Path) -> RankHead:
    """The ranking head saved beside a fitted metric's weights (``head.*``), strictly."""
    sd = load_checkpoint(path, METRIC_KIND)["state_dict"]
    head_sd = {k[5:]: v for k, v in sd.items() if k.startswith("head.")}
    if not head_sd:
        raise CheckpointError(f"{path}: no ranking head; not a metric fitted by "
                              "perceptual_metric.fit")
    head = RankHead()
    head.load_state_dict(head_sd)
    return head.eval()


@torch.no_grad()
def predict(metric_path: str | Path, trials_csv: str | Path,
            cache_dir: str | Path | None = None) -> list[dict]:
    model, head = load(metric_path), load_head(metric_path)
    keys, terms = cached_pair_terms(trials_csv, model, cache_dir)
    d = dict(zip(keys, model.combine(torch.from_numpy(terms)).sum(1).double().numpy()))
    df = test_pairs(trials_csv)
    d_a = np.array([d[r.ref_path, r.a_path] for r in df.itertuples()])
    d_b = np.array([d[r.ref_path, r.b_path] for r in df.itertuples()])
    p_b = torch.sigmoid(head(torch.from_numpy(d_a).float(), torch.from_numpy(d_b).float()))
    return [dict(trial_id=r.trial_id, a_id=r.a_id, b_id=r.b_id, d_a=float(x), d_b=float(y),
                 p_b=float(p)) for r, x, y, p in zip(df.itertuples(), d_a, d_b, p_b.numpy())]


PROG = "python -m perceptual_metric.predict"


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    ap = parser(PROG, __doc__.split("\n\n")[0], formatter_class=argparse.HelpFormatter)
    ap.add_argument("--metric", required=True, help="a fitted metric.pt (perceptual_metric.fit)")
    ap.add_argument("--trials", required=True,
                    help="trials.csv whose test pairs are the candidates (the study's pool)")
    ap.add_argument("--out", required=True, help="predictions.csv to write")
    ap.add_argument("--cache", default=None, metavar="DIR",
                    help="keep a lin metric's trunk terms of the pool here for the next rounds "
                         "(default: none)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = predict(args.metric, args.trials, args.cache)
    write_table(args.out, rows, PREDICTIONS_COLUMNS, PREDICTIONS_ID)
    print(f"wrote {args.out}: the metric's p_b for {len(rows)} pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
