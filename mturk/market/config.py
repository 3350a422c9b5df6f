"""Command-line plumbing shared by ``mturk.publish``, ``mturk.collect`` and ``mturk.manage``.

Settings are dataclasses whose fields carry their help text (``field(metadata={"help": ...})``):
one definition gives the defaults, the schema and ``--help``. :func:`add_arguments` turns one into
argparse options and :func:`from_args` back into the dataclass.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .base import Market


def opt(default, help: str, **kw):
    """A dataclass field with its help text (and argparse extras such as ``choices``)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


def add_arguments(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        meta = dict(f.metadata)
        help_ = meta.pop("help", "")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if f.type in ("bool", bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=default, help=help_)
            continue
        typ = {"int": int, "float": float}.get(f.type if isinstance(f.type, str) else "", str)
        if isinstance(default, list):
            parser.add_argument(flag, dest=f.name, nargs="*", default=default,
                                help=f"{help_} (default: {' '.join(map(str, default)) or 'all'})",
                                **meta)
        else:
            shown = "" if default == "" or "default" in help_ else f" (default: {default})"
            parser.add_argument(flag, dest=f.name, type=typ, default=default,
                                help=help_ + shown, **meta)


def from_args(cls, args: argparse.Namespace):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names})


@dataclass
class MarketOptions:
    """Where to publish and where the study's state lives."""

    db: str = opt("", "study database (default: runs/study/judgments.sqlite)")
    backend: str = opt("mturk", "marketplace: mturk (boto3) or memory (local lab study, demo)",
                       choices=("mturk", "memory"))
    memory_state: str = opt("", "state file of the in-memory market (default: beside the db)")
    profile: str = opt("", "AWS profile name (default: the usual AWS credential chain)")


def add_market_arguments(parser: argparse.ArgumentParser) -> None:
    """``--sandbox`` (default) / ``--live`` (needs ``--yes``), plus :class:`MarketOptions`."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sandbox", dest="live", action="store_false", default=False,
                       help="use the MTurk sandbox endpoint (default)")
    where.add_argument("--live", dest="live", action="store_true",
                       help="use the live marketplace: real money; also needs --yes")
    parser.add_argument("--yes", action="store_true",
                        help="confirm a --live run (after reading the printed cost)")
    add_arguments(parser, MarketOptions)


def check_live(args: argparse.Namespace) -> str | None:
    """An error message when ``--live`` comes without ``--yes``."""
    if getattr(args, "live", False) and not getattr(args, "yes", False):
        return "--live spends real money: read the cost above, then rerun with --live --yes"
    return None


def open_db(args: argparse.Namespace):
    from ..db import StudyDB

    return StudyDB(args.db or None)


def market_from_args(args: argparse.Namespace, db_path: Path | None = None) -> Market:
    from . import open_market

    state = args.memory_state or (str(Path(db_path).with_name("market.json"))
                                  if db_path else None)
    return open_market(args.backend, sandbox=not args.live, state_path=state,
                       profile=args.profile or None)


def mode_of(args: argparse.Namespace) -> str:
    """The database's mode for these settings: local, sandbox or live."""
    if args.backend == "memory":
        return "local"
    return "live" if args.live else "sandbox"


def eprint(*a) -> None:
    print(*a, file=sys.stderr)
