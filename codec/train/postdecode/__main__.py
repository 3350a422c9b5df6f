"""``python -m codec.train.postdecode``: train the learned stage of ``hevc-bpgcfg-pd``."""

from __future__ import annotations

import sys

from codec.hevc import HevcError
from plic.cli import command, parser, report
from plic.config_args import add_config_args, config_from_args

from .config import PostDecodeConfig

EPILOG = """\
The pairs (BSDS500 train images coded by hevc-bpgcfg at --qps) are cached under
runs/postdecode/pairs (python -m codec.train.postdecode.pairs builds them ahead).
examples:
  python -m codec.train.postdecode --lpips runs/metric.pt
  python -m codec.train.postdecode --lpips alex --max-minutes 70 --resume \\
      --ship checkpoints/hevc-bpgcfg-pd.pt
  python -m codec.train.postdecode --preset tiny --limit 2 --out /tmp/pd-tiny
"""


PROG = "python -m codec.train.postdecode"


@command(PROG, errors=(HevcError,))
def main(argv: list[str] | None = None) -> int:
    p = parser(
        PROG, epilog=EPILOG,
        description="Train the learned post-decoder of HEVC (MSE + perceptual metric + "
                    "non-saturating GAN; no rate term: the bits are HEVC's).")
    add_config_args(p, PostDecodeConfig)
    cfg = config_from_args(PostDecodeConfig, p.parse_args(argv))
    from ..loop import TrainingDiverged
    from .loop import train

    try:
        res = train(cfg)
    except TrainingDiverged as e:
        report(e, PROG)
        return 3
    summary = ", ".join(f"{k} {v:.4g}" for k, v in res["val"].items())
    print(f"{res['out']}: step {res['step']}; validation: {summary}")
    if res["time_up"]:
        print(f"stopped by --max-minutes at step {res['step']}; continue with --resume "
              f"--out {res['out']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
