"""Write an untrained codec checkpoint (random weights, ready to code).

    python -m codec.untrained --preset tiny --out runs/codec/tiny.pt [--model hific] [--seed 0]

The bitstream path works before any training; the files are as large as trained ones would be
but the images are noise.
"""

from __future__ import annotations

import torch

from plic.cli import command, parser

from . import api, models

PROG = "python -m codec.untrained"


@command(PROG)
def main(argv=None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("--preset", default="small",
                   help="config preset: paper (GPU-sized), small (CPU-trainable), tiny (tests)")
    p.add_argument("--out", required=True, help="checkpoint path to write (.pt)")
    p.add_argument("--model", default="hific",
                   help="registry name; one of: " + ", ".join(models.names()))
    p.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    try:
        model = models.build(args.model, args.preset)
    except (KeyError, ValueError) as e:
        p.error(str(e.args[0] if e.args else e))
    path = api.save(model, args.out, provenance={"init": "random", "seed": args.seed})
    n = sum(t.numel() for t in model.state_dict().values())
    print(f"wrote {path}: untrained {args.model} ({args.preset}), {n:,} parameters")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
