"""Ship a post-decoder run's ``last.pt``: the checkpoint with how it was trained.

    python -m codec.train.postdecode.ship runs/train/hevc-bpgcfg-pd checkpoints/hevc-bpgcfg-pd.pt

The provenance gains ``command`` (the ``python -m codec.train.postdecode`` line that reproduces
the run), ``steps``, ``train_seconds`` and ``run_dir``; every path in it is relative to the
repository (or a bare name), never absolute. ``--max-mb`` (default 20) refuses a larger file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from codec.postdecode.api import KIND
from plic.checkpoint import CheckpointError, load_checkpoint
from plic.cli import command, parser
from plic.paths import REPO_ROOT

from ..ship import reproducing_command as train_command
from ..ship import save_shipped
from .config import PostDecodeConfig

_NOT_IN_COMMAND = {"resume", "stop_at", "max_minutes", "ship", "out", "threads", "ship_max_mb"}


def reproducing_command(config: dict) -> str:
    """``python -m codec.train.postdecode`` with every option that is not the default."""
    return train_command(config, PostDecodeConfig().to_dict(), "codec.train.postdecode",
                         _NOT_IN_COMMAND)


PATH_FIELDS = ("data", "data_root", "val_data", "pairs", "lpips", "out", "ship", "init")


def rel(path) -> str:
    """``path`` relative to the repository when inside it, else its bare name ('' stays '')."""
    if not path:
        return ""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(REPO_ROOT))
    except ValueError:
        return p.name


def portable(config: dict) -> dict:
    """A training config with no absolute path in it (provenance travels with the file)."""
    return {k: rel(v) if k in PATH_FIELDS and isinstance(v, str) else v
            for k, v in config.items()}


def ship(run: Path, dest: Path, max_mb: float = 20.0) -> dict:
    src = Path(run) / "last.pt"
    ckpt = load_checkpoint(src, kind=KIND)
    prov = dict(ckpt["provenance"])
    config = prov.get("train_config")
    if config is None:
        raise CheckpointError(f"{src}: no training config in its provenance")
    prov["command"] = reproducing_command(config)
    prov["steps"] = int(prov.get("step", 0))
    prov["run_dir"] = rel(run)
    prov["shipped_from"] = src.name
    prov["train_config"] = portable(config)
    for k in ("data", "metric"):
        if isinstance(prov.get(k), str):
            prov[k] = rel(prov[k])
    size = save_shipped(dest, KIND, ckpt, prov, max_mb)
    return {"dest": str(dest), "size_mb": round(size, 3), "command": prov["command"],
            "steps": prov["steps"], "train_seconds": prov.get("train_seconds")}


PROG = "python -m codec.train.postdecode.ship"


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("run", type=Path, help="run directory of python -m codec.train.postdecode")
    p.add_argument("dest", type=Path, help="checkpoint file to write")
    p.add_argument("--max-mb", type=float, default=20.0, help="refuse a larger file (0: none)")
    a = p.parse_args(argv)
    res = ship(a.run, a.dest, a.max_mb)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
