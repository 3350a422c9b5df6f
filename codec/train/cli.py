"""``python -m codec.train``: the command line, generated from ``TrainConfig``'s fields."""

from __future__ import annotations

import argparse
import sys

from plic.cli import command, parser, report
from plic.config_args import add_config_args, config_from_args

from .config import TRACKS, TrainConfig

PROG = "python -m codec.train"
EPILOG = f"""\
stages: rate+MSE warm-up -> +perceptual (--lpips) -> +adversarial; --loss mse keeps the first.
tracks: {', '.join(f"{k} (lambda {v['lambda_rate']})" for k, v in TRACKS.items())}.
examples:
  python -m codec.train --model hific --preset small --track 0.15 --data bsds500 \\
      --data-split train --lpips runs/metric.pt
  python -m codec.train --model bmshj2018-hyperprior --data bsds500 --data-split train
  python -m codec.train --out runs/train/hific-0.15 --resume
  python -m codec.train ... --max-minutes 170 --ship checkpoints/mine.pt --resume
      (a session-sized slice of a long run: resumable, and a shipped file to --init from)
  torchrun --nproc_per_node 2 -m codec.train ...      (DDP; gloo on CPU, NCCL on GPU)
"""


def registry_help() -> dict[str, str]:
    """What the model registry holds now, added to the help of the fields that name models."""
    from ..models import baselines, names

    return {"model": f"; registered: {', '.join(names())}",
            "loss": f"; the baselines: {', '.join(baselines())}"}


def build_parser() -> argparse.ArgumentParser:
    listed = registry_help()
    p = parser(PROG, "Train a learned image codec (rate + MSE + perceptual metric + "
               "non-saturating GAN) for one bpp track.", epilog=EPILOG)
    add_config_args(p, TrainConfig, extra_help=listed)
    return p


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(TrainConfig, args)
    from .loop import TrainingDiverged, train

    try:
        result = train(cfg)
    except TrainingDiverged as e:
        report(e, PROG)
        return 3
    val = result["val"]
    summary = ", ".join(f"{k} {v:.4g}" for k, v in val.items() if isinstance(v, float))
    print(f"{result['out']}: step {result['step']}; validation: {summary}")
    if result.get("time_up"):
        print(f"stopped by --max-minutes {cfg.max_minutes:g} at step {result['step']} of "
              f"{cfg.resolved().steps}; continue with --resume --out {result['out']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
