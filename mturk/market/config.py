"""Command-line plumbing shared by ``mturk.publish``, ``mturk.market.collect`` and
``mturk.market.manage``.

Settings are dataclasses whose fields carry their help text (``plic.config_args.option``): one
definition gives the defaults, the schema and ``--help`` (``plic.config_args.add_config_args``)
and the settings again from the parsed options (``config_from_args``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from plic.cli import CliError
from plic.config_args import add_config_args, option

from .base import Market


@dataclass
class MarketOptions:
    """Where to publish and where the study's state lives."""

    db: str = option("", "study database (default: runs/study/judgments.sqlite)")
    backend: str = option("mturk", "marketplace: mturk (boto3) or memory (local lab study, demo)",
                       choices=("mturk", "memory"))
    memory_state: str = option("", "state file of the in-memory market (default: beside the db)")
    profile: str = option("", "AWS profile name (default: the usual AWS credential chain)")


def add_market_arguments(parser: argparse.ArgumentParser) -> None:
    """``--sandbox`` (default) / ``--live`` (needs ``--yes``), plus :class:`MarketOptions`."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sandbox", dest="live", action="store_false", default=False,
                       help="use the MTurk sandbox endpoint (default)")
    where.add_argument("--live", dest="live", action="store_true",
                       help="use the live marketplace: real money; also needs --yes")
    parser.add_argument("--yes", action="store_true",
                        help="confirm a --live run (after reading the printed cost)")
    add_config_args(parser, MarketOptions)


def check_live(args: argparse.Namespace) -> str | None:
    """An error message when ``--live`` comes without ``--yes``."""
    if getattr(args, "live", False) and not getattr(args, "yes", False):
        return "--live spends real money: read the cost above, then rerun with --live --yes"
    return None


def open_db(args: argparse.Namespace):
    """The study's store; a SQLite file that is not there is refused (nothing is created: the
    study server, ``python -m mturk.serve``, makes it)."""
    from ..store.study_db import StudyDB, default_db_path, is_url

    db = args.db or str(default_db_path())
    if not is_url(db) and not Path(db).is_file():
        raise CliError(f"{db}: no such study database (python -m mturk.serve makes it; "
                       "or pass --db)")
    return StudyDB(db)


def market_from_args(args: argparse.Namespace, db_path: Path | None = None) -> Market:
    from ..store.study_db import is_url
    from . import open_market

    # the memory market keeps its state beside a SQLite file (a postgresql:// store: in memory,
    # unless --memory-state names a file)
    state = args.memory_state or (str(Path(db_path).with_name("market.json"))
                                  if db_path and not is_url(str(db_path)) else None)
    return open_market(args.backend, sandbox=not args.live, state_path=state,
                       profile=args.profile or None)


def mode_of(args: argparse.Namespace) -> str:
    """The database's mode for these settings: local, sandbox or live."""
    if args.backend == "memory":
        return "local"
    return "live" if args.live else "sandbox"

