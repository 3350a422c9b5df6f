"""Look after published HITs:
``python -m mturk.market.manage {status,extend,expire,cleanup,unblock}``.

- ``status``: per HIT its batch, state, assignments (submitted / approved / rejected), and the
  money spent so far (approved rewards + MTurk's fee + bonuses paid + their fee) beside the most
  the published HITs can still cost. ``--refresh`` asks the marketplace for each HIT's state.
- ``extend``: more assignments (``--assignments N``, with a UniqueRequestToken so a retry adds them
  once) and/or a later expiry (``--hours H``).
- ``expire``: take HITs off the marketplace now (submitted work can still be reviewed).
- ``cleanup``: orphaned HITs, the ones this tool made (request annotation ``plic-...``) that the
  database does not know, e.g. after a crash between creating and recording. One whose token names
  a batch of this study is adopted into the database; any other is expired and, once nothing is
  left to review, deleted. ``--delete-done`` also deletes the study's finished HITs. HITs made by
  other tools are never touched.
- ``unblock W...``: lift soft blocks (``mturk.market.collect`` sets them).
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from plic.cli import CliError, command, parser

from . import SUBMITTED, Market, MarketError
from .config import (
    add_market_arguments,
    check_live,
    market_from_args,
    mode_of,
    open_db,
)
from .cost import assignment_fee, bonus_fee
from .publish import TOKEN_PREFIX

EXPIRE_NOW = datetime(1970, 1, 1, tzinfo=timezone.utc)  # MTurk: a past time expires at once
_TOKEN = re.compile(rf"^{TOKEN_PREFIX}-(sandbox|live|local)-r(\d+)-(.+)$")


def _select(db, mode: str, hit_ids, batches) -> list[dict]:
    # a lab study's "local-<batch>" HITs (question "local") live only in the database
    hits = [h for h in db.list_hits(mode=mode) if h["question"] != "local"]
    if hit_ids:
        hits = [h for h in hits if h["hit_id"] in hit_ids]
    if batches:
        hits = [h for h in hits if h["batch_id"] in batches]
    return hits


def cost_so_far(db, mode: str) -> dict:
    """{"spent": approved work + bonuses paid with fees, "committed": the most still owed}."""
    spent = committed = Decimal("0.00")
    hits = {h["hit_id"]: h for h in db.list_hits(mode=mode)}
    for h in hits.values():
        if not h["reward"]:
            continue
        per = Decimal(h["reward"]) + assignment_fee(h["reward"], h["max_assignments"])
        asg = db.list_assignments(hit_id=h["hit_id"])
        approved = sum(a["status"] == "approved" for a in asg)
        rejected = sum(a["status"] == "rejected" for a in asg)
        spent += per * approved
        if h["status"] not in ("expired", "disposed"):
            committed += per * max(0, h["max_assignments"] - approved - rejected)
        else:
            committed += per * sum(a["status"] == "submitted" for a in asg)
    ours = {a["assignment_id"] for a in db.list_assignments() if a["hit_id"] in hits}
    for b in db.list_bonuses():
        if b["paid_at"] and b["assignment_id"] in ours:
            spent += Decimal(b["amount"]) + bonus_fee(b["amount"])
    return {"spent": spent, "committed": committed}


def status(market: Market | None, db, mode: str, out=print, refresh: bool = False) -> dict:
    hits = db.list_hits(mode=mode)
    out(f"{'batch':<12} {'HIT':<32} {'state':<12} {'max':>4} {'subm':>5} {'appr':>5} {'rej':>4}")
    for h in hits:
        if refresh and market is not None and h["question"] != "local":
            try:
                live = market.get_hit(h["hit_id"])
                db.update_hit(h["hit_id"], status=live.status.lower(),
                              max_assignments=live.max_assignments)
                h = db.get_hit(h["hit_id"])
            except MarketError as e:
                out(f"  {h['hit_id']}: {e}")
        asg = db.list_assignments(hit_id=h["hit_id"])
        n = {s: sum(a["status"] == s for a in asg) for s in ("submitted", "approved", "rejected")}
        out(f"{h['batch_id']:<12} {h['hit_id']:<32} {h['status']:<12} {h['max_assignments']:>4} "
            f"{n['submitted']:>5} {n['approved']:>5} {n['rejected']:>4}")
    money = cost_so_far(db, mode)
    out(f"{len(hits)} HITs ({mode}); spent ${money['spent']} so far (rewards, bonuses, MTurk "
        f"fees); at most ${money['committed']} more for open or unreviewed assignments")
    return money


def extend(market: Market, db, hits: list[dict], add: int = 0, hours: float = 0, out=print):
    for h in hits:
        if add > 0:
            token = f"{TOKEN_PREFIX}-extend-{h['hit_id']}-{h['max_assignments']}-{add}"[:64]
            market.create_additional_assignments(h["hit_id"], add, token)
            db.update_hit(h["hit_id"], max_assignments=h["max_assignments"] + add)
            out(f"{h['hit_id']}: {h['max_assignments']} -> {h['max_assignments'] + add} "
                "assignments")
        if hours > 0:
            until = datetime.now(timezone.utc) + timedelta(hours=hours)
            market.update_expiration(h["hit_id"], until)
            db.update_hit(h["hit_id"], expires_at=until.isoformat(), status="assignable")
            out(f"{h['hit_id']}: expires {until.isoformat(timespec='minutes')}")


def expire(market: Market, db, hits: list[dict], out=print) -> None:
    for h in hits:
        market.update_expiration(h["hit_id"], EXPIRE_NOW)
        db.update_hit(h["hit_id"], status="expired",
                      expires_at=datetime.now(timezone.utc).isoformat())
        out(f"{h['hit_id']}: expired")


def cleanup(market: Market, db, mode: str, delete_done: bool = False, dry_run: bool = False,
            out=print) -> dict:
    """Adopt or remove orphaned HITs; see the module docstring. Returns what it did."""
    done = {"adopted": [], "expired": [], "deleted": []}
    known = {h["hit_id"] for h in db.list_hits()}
    batches = set(db.batch_ids())
    for hit in list(market.list_hits()):
        if hit.hit_id in known or not hit.annotation.startswith(TOKEN_PREFIX + "-"):
            continue
        m = _TOKEN.match(hit.annotation)
        if m and m.group(1) == mode and m.group(3) in batches:
            out(f"{hit.hit_id}: adopting (batch {m.group(3)}, created but never recorded)")
            if not dry_run:
                db.add_hit(hit.hit_id, m.group(3), mode, hit_type_id=hit.hit_type_id,
                           unique_request_token=hit.annotation, reward=hit.reward,
                           max_assignments=hit.max_assignments,
                           expires_at=hit.expiration.isoformat() if hit.expiration else None,
                           status=hit.status.lower())
            done["adopted"].append(hit.hit_id)
            continue
        out(f"{hit.hit_id}: orphan ({hit.annotation}, {hit.status})")
        if dry_run:
            continue
        _retire(market, hit.hit_id, hit.status, done, out)
    if delete_done:
        for h in _select(db, mode, (), ()):
            if h["status"] == "disposed":
                continue
            pending = [a for a in db.list_assignments(hit_id=h["hit_id"])
                       if a["status"] in ("accepted", "submitted")]
            try:
                live = market.get_hit(h["hit_id"])
            except MarketError as e:
                out(f"{h['hit_id']}: {e}")
                continue
            if live.status in ("Assignable", "Unassignable") or pending:
                continue
            out(f"{h['hit_id']}: finished, deleting")
            if not dry_run and _retire(market, h["hit_id"], live.status, done, out):
                db.update_hit(h["hit_id"], status="disposed")
    return done


def _retire(market: Market, hit_id: str, state: str, done: dict, out) -> bool:
    """Expire the HIT, then delete it when nothing is left to review. True when deleted."""
    if state in ("Assignable", "Unassignable"):
        market.update_expiration(hit_id, EXPIRE_NOW)
        done["expired"].append(hit_id)
    if any(True for _ in market.list_assignments(hit_id, [SUBMITTED])):
        out(f"{hit_id}: has submitted work to review; kept")
        return False
    try:
        market.delete_hit(hit_id)
    except MarketError as e:  # e.g. a worker still holds an assignment: the next run retries
        out(f"{hit_id}: not deleted yet ({e})")
        return False
    done["deleted"].append(hit_id)
    return True


def unblock(market: Market, db, mode: str, workers, block_name: str, out=print) -> None:
    """Lift soft blocks: take the block qualification away, then clear the database flag."""
    qid = db.get_qualification_type(block_name, mode)
    for w in workers:
        if qid:
            market.disassociate_qualification(qid, w, "Block lifted")
        db.unblock_worker(w)
        out(f"{w}: unblocked")


PROG = "python -m mturk.market.manage"


def build_parser() -> argparse.ArgumentParser:
    p = parser(PROG, __doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("status", help="HITs, assignments and cost so far")
    s.add_argument("--refresh", action="store_true", help="ask the marketplace for HIT states")
    for name, help_ in (("extend", "more assignments and/or more time"),
                        ("expire", "take HITs off the marketplace now")):
        e = sub.add_parser(name, help=help_)
        e.add_argument("--hits", nargs="*", default=[], help="HIT ids (default: all of the mode)")
        e.add_argument("--batches", nargs="*", default=[], help="batch ids")
        if name == "extend":
            e.add_argument("--assignments", type=int, default=0, help="assignments to add per HIT")
            e.add_argument("--hours", type=float, default=0, help="expire this many hours from now")
    c = sub.add_parser("cleanup", help="adopt or remove orphaned HITs")
    c.add_argument("--delete-done", action="store_true",
                   help="also delete the study's finished HITs (expired, all work reviewed)")
    c.add_argument("--dry-run", action="store_true", help="report only")
    u = sub.add_parser("unblock", help="lift soft blocks")
    u.add_argument("workers", nargs="+", help="worker ids")
    u.add_argument("--block-name", default="plic-soft-block-v1",
                   help="name of the soft-block qualification")
    for sp in (s, *[sub.choices[n] for n in ("extend", "expire")], c, u):
        add_market_arguments(sp)
    return p


@command(PROG, errors=(MarketError,))
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    db = open_db(args)
    mode = mode_of(args)
    if args.command != "status" and check_live(args):
        raise CliError(check_live(args))
    if args.command == "status":
        market = market_from_args(args, db.path) if args.refresh else None
        status(market, db, mode, refresh=args.refresh)
        return 0
    market = market_from_args(args, db.path)
    if args.command == "unblock":
        unblock(market, db, mode, args.workers, args.block_name)
        return 0
    if args.command == "cleanup":
        res = cleanup(market, db, mode, args.delete_done, args.dry_run)
        print(", ".join(f"{k} {len(v)}" for k, v in res.items()))
        return 0
    hits = _select(db, mode, args.hits, args.batches)
    if args.command == "extend":
        if args.assignments <= 0 and args.hours <= 0:
            raise CliError("extend needs --assignments and/or --hours")
        extend(market, db, hits, args.assignments, args.hours)
    else:
        expire(market, db, hits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
