"""``python -m perceptual_metric COMMAND ...``: fit, evaluate, simulate, predict, rounds (each
has --help)."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "fit": "learn the metric from labels.csv and freeze it to runs/metric.pt",
    "evaluate": "2AFC agreement of metrics with the labels, with bootstrap intervals",
    "simulate": "SIMULATED labels from a hidden metric (tests, demos; not human data)",
    "bench": "throughput and fit-time benchmark (runs/bench/perceptual_metric.md)",
    "predict": "the fitted metric's p_b for every candidate pair (an active study's next round)",
    "server_rounds": "a study in rounds on the real server with the SIMULATED crowd (active "
                     "sampling)",
    "active_savings": "SIMULATED learning curves: judgments paid vs 2AFC, random vs active "
                      "sampling",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = ["usage: python -m perceptual_metric COMMAND [--help]", ""]
        lines += [f"  {k:<14} {v}" for k, v in COMMANDS.items()]
        print("\n".join(lines))
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nerror: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0 if argv else 2
    return importlib.import_module(f"perceptual_metric.{argv[0]}").main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
