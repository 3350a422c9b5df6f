"""The requester's dashboard: ``python -m mturk.dashboard --db DB [--backend memory|mturk]``.

A page for the study's owner, on loopback only: progress and spend (overview), every worker's
quality scores and flags (workers, sortable and filterable), one worker's answers with the
images they saw at 1:1 (worker), agreement, the codec ranking with 95% intervals and preference
against bpp (results; MOS and the observer screening for an ACR/DSIS study), and the actions
approve, reject, block, unblock and bonus through the marketplace backend (``--backend``,
``--sandbox``/``--live`` as for ``mturk.market.collect``), each confirmed and audited.

It is a separate app from the workers' HIT server (``mturk.serve``): run it on the requester's
machine, never behind the HIT server's address. The requester's secret comes from the
environment variable ``PLIC_DASHBOARD_SECRET`` or from ``--secret-file FILE`` (its first line;
at least 12 characters); without one it refuses to start. The secret never goes into a URL:
log in on the page.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from decimal import Decimal, InvalidOperation
from pathlib import Path

from plic.cli import CliError, command, parser
from plic.config_args import add_config_args, config_from_args

from ..analysis.worker_quality import QualityRule
from ..market.config import add_market_arguments, check_live, market_from_args, mode_of

SECRET_ENV = "PLIC_DASHBOARD_SECRET"
MIN_SECRET = 12


def read_secret(secret_file: str | None) -> str:
    """The requester's secret (``--secret-file``, else ``$PLIC_DASHBOARD_SECRET``); ValueError
    with the one line to print when there is none or it is too short."""
    if secret_file:
        try:
            lines = Path(secret_file).read_text().splitlines()
        except OSError as e:
            raise ValueError(f"cannot read the secret file: {e.strerror}: {secret_file}") from e
        secret = lines[0].strip() if lines else ""
        where = secret_file
    else:
        secret = os.environ.get(SECRET_ENV, "").strip()
        where = f"${SECRET_ENV}"
    if not secret:
        raise ValueError(f"no requester secret: set {SECRET_ENV} or pass --secret-file FILE "
                         "(the dashboard does not start without one)")
    if len(secret) < MIN_SECRET:
        raise ValueError(f"the requester secret in {where} is shorter than {MIN_SECRET} "
                         "characters")
    return secret


PROG = "python -m mturk.dashboard"


def build_parser() -> argparse.ArgumentParser:
    p = parser(PROG, __doc__)
    p.add_argument("--host", default="127.0.0.1", help="loopback address to listen on "
                   "(%(default)s; other addresses are refused)")
    p.add_argument("--port", type=int, default=8050, help="port (%(default)s; 0: any free one)")
    p.add_argument("--secret-file", default="",
                   help=f"file whose first line is the requester's secret (else ${SECRET_ENV})")
    p.add_argument("--budget", default="", help="the study's budget in USD, shown against the "
                   "projected spend")
    p.add_argument("--include-unverified", action="store_true",
                   help="count assignments nobody verified, as mturk.aggregate's option")
    p.add_argument("--poll", type=float, default=5.0,
                   help="seconds between the pages' live refreshes (%(default)s)")
    p.add_argument("--block-name", default="plic-soft-block-v1",
                   help="name of the soft-block qualification (as mturk.market.collect's)")
    add_market_arguments(p)
    add_config_args(p, QualityRule)
    return p


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    secret = read_secret(args.secret_file or None)
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        if args.host != "localhost":
            raise CliError(f"--host {args.host!r} is not a loopback address") from None
        loopback = True
    if not loopback:
        raise CliError(f"--host {args.host} is not a loopback address: the dashboard only "
                       "listens on this machine (reach it through an SSH tunnel)")
    if not args.db or not (Path(args.db).is_file() or "://" in args.db):
        raise CliError(f"no study database at {args.db or '(none given: --db DB)'}")
    if check_live(args):
        raise CliError(check_live(args).replace("read the cost above", "actions pay real money"))
    budget = None
    if args.budget:
        try:
            budget = Decimal(args.budget)
        except InvalidOperation:
            raise CliError(f"--budget {args.budget!r} is not an amount in USD") from None
    if args.poll < 1:
        raise CliError("--poll must be at least 1 second")
    from ..market.base import MarketError
    from ..web.serve import make_study_server
    from .app import DashboardConfig, create_dashboard

    try:
        market = market_from_args(args, Path(args.db))
    except (MarketError, ValueError, OSError) as e:
        raise CliError(f"cannot open the {args.backend} market: {e}") from None
    cfg = DashboardConfig(db=args.db, secret=secret, mode=mode_of(args), budget=budget,
                          block_name=args.block_name, rule=config_from_args(QualityRule, args),
                          include_unverified=args.include_unverified, poll_s=args.poll)
    app = create_dashboard(cfg, market, background=True)
    srv = make_study_server(args.host, args.port, app)
    print(f"dashboard of {args.db} ({cfg.mode}) at http://{args.host}:{srv.server_port}/ "
          "(log in with the requester's secret; Ctrl-C stops)", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
