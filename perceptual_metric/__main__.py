"""``python -m perceptual_metric COMMAND ...``: fit, evaluate, simulate, predict, rounds (each
has --help)."""

from __future__ import annotations

import importlib
import sys

from plic.cli import CliError, command

COMMANDS = {
    "fit": "learn the metric from labels.csv and freeze it to runs/metric.pt",
    "evaluate": "2AFC agreement of metrics with the labels, with bootstrap intervals",
    "simulate": "SIMULATED labels from a hidden metric (tests, demos; not human data)",
    "predict": "the fitted metric's p_b for every candidate pair (an active study's next round)",
    "server_rounds": "a study in rounds on the real server with the SIMULATED crowd (active "
                     "sampling)",
    "active_savings": "SIMULATED learning curves: judgments paid vs 2AFC, random vs active "
                      "sampling",
}


PROG = "python -m perceptual_metric"


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = [f"usage: {PROG} COMMAND [--help]", ""]
        lines += [f"  {k:<14} {v}" for k, v in COMMANDS.items()]
        print("\n".join(lines))
        if not argv:
            raise CliError("give a COMMAND (see --help)")
        if argv[0] not in ("-h", "--help"):
            raise CliError(f"unknown command {argv[0]!r} (see --help)")
        return 0
    return importlib.import_module(f"perceptual_metric.{argv[0]}").main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
