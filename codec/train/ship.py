"""Copy a run's model checkpoint to a file to ship, with how it was trained in its provenance.

    python -m codec.train.ship runs/train/mbt2018-0.15 checkpoints/mbt2018-small.pt [--which last]

The shipped file is the run's ``last.pt`` (or ``best.pt``) re-written through the checkpoint
contract with these provenance fields added: ``command`` (the ``python -m codec.train`` line that
reproduces the run: every option that differs from its default), ``steps`` (steps done),
``train_seconds`` (wall time of training and validation, from the checkpoint or else from the
run's log), ``run_dir`` and ``shipped_from``. The training git commit and the rest of the original
provenance are kept, their paths relative to the repository, the run's parent folder or the
shipped file's folder (``plic.checkpoint.relative_paths``). ``--max-mb`` refuses files larger
than a limit (git-friendly checkpoints).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from plic.checkpoint import CheckpointError, load_checkpoint, relative_paths, save_checkpoint
from plic.cli import command, parser
from plic.paths import REPO_ROOT

from .config import TrainConfig
from .rundir import read_metrics

# options that do not change what is trained
_NOT_IN_COMMAND = {"resume", "stop_at", "max_minutes", "ship", "out"}


def reproducing_command(config: dict, default: dict | None = None, module: str = "codec.train",
                        left_out=_NOT_IN_COMMAND) -> str:
    """``python -m MODULE`` with every option of ``config`` that is not the ``default``
    (``TrainConfig``'s unless given) and not ``left_out``."""
    default = TrainConfig().to_dict() if default is None else default
    parts = ["python", "-m", module]
    for k, v in config.items():
        if k in left_out or k not in default or v == default[k]:
            continue
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            parts.append(flag if v else "--no-" + k.replace("_", "-"))
        elif isinstance(v, list):
            parts += [flag, *(f"{x:g}" if isinstance(x, float) else str(x) for x in v)]
        else:
            parts += [flag, f"{v:g}" if isinstance(v, float) else str(v)]
    return " ".join(shlex.quote(p) for p in parts)


def wall_seconds(run: Path, provenance: dict) -> float | None:
    """Training wall time: the checkpoint's own record, else the last log line's rate (one
    uninterrupted session: steps / steps_per_s)."""
    if provenance.get("train_seconds"):
        return float(provenance["train_seconds"])
    rows = [r for r in read_metrics(run) if "steps_per_s" in r]
    if not rows or rows[-1]["steps_per_s"] <= 0:
        return None
    return rows[-1]["step"] / rows[-1]["steps_per_s"]


def chain_totals(provenance: dict) -> tuple[int, float | None]:
    """(steps, wall seconds) of a checkpoint and every ``--init`` it continued, from the
    ``init_from`` links of its provenance (seconds None when this checkpoint has no record)."""
    steps = int(provenance.get("steps", provenance.get("step", 0)))
    secs = provenance.get("train_seconds")
    secs = None if secs is None else float(secs)
    link = provenance.get("init_from")
    while link:
        steps += int(link.get("steps", link.get("step", 0)))
        if secs is not None and link.get("train_seconds") is not None:
            secs += float(link["train_seconds"])
        link = link.get("init_from")
    return steps, secs


def save_shipped(dest: Path, kind: str, ckpt: dict, provenance: dict, max_mb: float) -> float:
    """Write ``ckpt`` (a loaded checkpoint of ``kind``) to ``dest`` with ``provenance``; its
    size in MB. Over ``max_mb`` (0: no limit) it raises ``ValueError`` and ``dest`` is left as
    it was (the file is written beside it, then moved in place)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".shipping")
    save_checkpoint(tmp, kind, ckpt["model"], ckpt["config"], ckpt["state_dict"], provenance)
    size = tmp.stat().st_size / 2 ** 20
    if max_mb and size > max_mb:
        tmp.unlink()
        raise ValueError(f"{dest}: {size:.2f} MB is over --max-mb {max_mb}")
    tmp.replace(dest)
    return size


def ship(run: Path, dest: Path, which: str = "last", max_mb: float = 0.0,
         note: str = "") -> dict:
    src = run / f"{which}.pt"
    ckpt = load_checkpoint(src, kind="codec")
    prov = dict(ckpt["provenance"])
    config = prov.get("train_config")
    if config is None:
        cfg_file = run / "config.json"
        if not cfg_file.is_file():
            raise CheckpointError(f"{src}: no training config in the provenance nor {cfg_file}")
        config = json.loads(cfg_file.read_text())
    prov["command"] = reproducing_command(config)
    prov["steps"] = int(prov.get("step", 0))
    secs = wall_seconds(run, prov)
    if secs is not None:
        prov["train_seconds"] = round(secs, 1)
    # a run started with --init continues another: totals over the chain
    steps, secs_total = chain_totals(prov)
    if "init_from" in prov:
        prov["total_steps"] = steps
        if secs_total is not None:
            prov["total_train_seconds"] = round(secs_total, 1)
    prov["run_dir"] = str(run)
    prov["shipped_from"] = src.name
    if note:
        prov["note"] = note
    # no machine's folders in a shipped file: paths relative to the repo, the run's parent or
    # the shipped file's folder
    bases = [REPO_ROOT, Path(run).resolve().parent, Path(dest).resolve().parent]
    prov = relative_paths(prov, bases)
    size = save_shipped(dest, "codec", ckpt, prov, max_mb)
    return {"dest": str(dest), "size_mb": size, **{k: prov[k] for k in
                                                    ("command", "steps", "total_steps",
                                                     "git_commit")
                                                    if k in prov},
            "train_seconds": prov.get("train_seconds"),
            "total_train_seconds": prov.get("total_train_seconds")}


PROG = "python -m codec.train.ship"


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("run", type=Path, help="run directory of python -m codec.train")
    p.add_argument("dest", type=Path, help="checkpoint file to write")
    p.add_argument("--which", choices=("last", "best"), default="last",
                   help="the run's last.pt or best.pt (default last)")
    p.add_argument("--max-mb", type=float, default=0.0, help="refuse a larger file (0: no limit)")
    p.add_argument("--note", default="", help="free text stored in the provenance")
    a = p.parse_args(argv)
    res = ship(a.run, a.dest, a.which, a.max_mb, a.note)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
