"""The requester's actions, through the marketplace backend (``mturk.market``), each audited.

``perform`` records the action as ``pending`` in the database's audit table
(``StudyDB.audit_begin``) before calling the market, then closes it ``done`` with the market's
answer and records its effect in the database (an assignment's status, a block, a paid bonus),
or ``failed`` with the market's error and records nothing else: a failed call is never shown as
done. Each form carries an action id made when the confirmation page was shown; a repeat of the
same id (a double click, a resent form) returns the first outcome and calls nothing again, and
a bonus's ``UniqueRequestToken`` is derived from it, so MTurk pays it once even when the
database write after the payment was lost.

Blocks are soft blocks, as ``mturk.market.collect`` makes them: the block qualification that
``mturk.publish`` requires not to exist, granted (block) or taken away (unblock).

A lab study's assignments (HITs with question ``local``, made by ``mturk.serve --local``) exist
on no marketplace: approving or rejecting one is recorded in the database only (the audit says
so), and a bonus is refused (there is no one to pay it through).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from ..market.base import Market, MarketError

#: action -> what it acts on, and the fields its confirmation form asks for
ACTIONS = {
    "approve": ("assignment", ()),
    "reject": ("assignment", ("reason",)),
    "bonus": ("assignment", ("amount", "reason")),
    "block": ("worker", ("reason",)),
    "unblock": ("worker", ()),
}
BLOCK_NAME = "plic-soft-block-v1"
MAX_BONUS = Decimal("100.00")


class ActionError(ValueError):
    """A request the dashboard refuses before calling the market (bad target or fields)."""


def check(db, action: str, target: str, fields: dict) -> str:
    """The worker the action concerns; ``ActionError`` for an unknown action or target, or a
    missing or bad field."""
    if action not in ACTIONS:
        raise ActionError(f"unknown action {action!r}")
    kind, needs = ACTIONS[action]
    for f in needs:
        if not str(fields.get(f, "")).strip():
            raise ActionError(f"{action} needs a {f}")
    if "amount" in needs:
        try:
            amount = Decimal(str(fields["amount"]))
        except InvalidOperation:
            raise ActionError(f"bad amount {fields['amount']!r}") from None
        if not Decimal("0.01") <= amount <= MAX_BONUS or amount.as_tuple().exponent < -2:
            raise ActionError(f"a bonus is between $0.01 and ${MAX_BONUS}, in cents")
    if kind == "assignment":
        asg = db.get_assignment(target)
        if asg is None:
            raise ActionError(f"unknown assignment {target!r}")
        if action == "bonus" and _lab(db, asg):
            raise ActionError("a lab study's assignment is on no marketplace: no bonus to pay "
                              "through one")
        return asg["worker_id"]
    if db.get_worker(target) is None:
        raise ActionError(f"unknown worker {target!r}")
    return target


def _lab(db, asg: dict) -> bool:
    hit = db.get_hit(asg["hit_id"])
    return bool(hit and hit["question"] == "local")


def describe(action: str, fields: dict) -> str:
    parts = []
    if fields.get("amount"):
        parts.append(f"${Decimal(str(fields['amount'])):.2f}")
    if fields.get("reason"):
        parts.append(str(fields["reason"]).strip())
    return "; ".join(parts)


def _block_qualification(db, market: Market, mode: str, name: str, create: bool) -> str | None:
    qid = db.get_qualification_type(name, mode)
    if qid is None:
        found = market.find_qualification_type(name)
        if found is None and create:
            found = market.create_qualification_type(
                name, "Workers whose past answers failed our checks.")
        if found is not None:
            qid = found.qualification_type_id
            db.set_qualification_type(name, mode, qid)
    return qid


def _do(db, market: Market, mode: str, action: str, target: str, worker: str, fields: dict,
        action_id: str, block_name: str) -> str:
    """Call the market, then record the effect; the market's answer in words."""
    reason = str(fields.get("reason", "")).strip()
    if action in ("approve", "reject"):
        asg = db.get_assignment(target)
        if asg["status"] == action + "d":        # idempotent: the state asked for is there
            return f"already {asg['status']}: the market was not called"
        if _lab(db, asg):
            db.set_assignment_status(target, action + "d", feedback=reason or None)
            return "lab study (no marketplace): recorded in the database only"
    if action == "approve":
        market.approve_assignment(target, reason)
        db.set_assignment_status(target, "approved", feedback=reason or None)
        return "ApproveAssignment: ok"
    if action == "reject":
        market.reject_assignment(target, reason)
        db.set_assignment_status(target, "rejected", feedback=reason)
        return "RejectAssignment: ok"
    if action == "bonus":
        amount = Decimal(str(fields["amount"])).quantize(Decimal("0.01"))
        token = f"plic-dash-{action_id}"[:64]
        paid = market.send_bonus(worker, target, amount, reason, token)
        db.add_bonus(target, worker, amount, reason, token)
        db.mark_bonus_paid(token)
        return f"SendBonus ${amount:.2f}: " + ("ok" if paid else "already paid (same token)")
    if action == "block":
        qid = _block_qualification(db, market, mode, block_name, create=True)
        market.associate_qualification(qid, worker, 1, notify=False)
        db.block_worker(worker, reason)
        return f"AssociateQualificationWithWorker {qid}: ok"
    if action == "unblock":
        qid = _block_qualification(db, market, mode, block_name, create=False)
        if qid:
            market.disassociate_qualification(qid, worker, "Block lifted")
        db.unblock_worker(worker)
        return (f"DisassociateQualificationFromWorker {qid}: ok" if qid else
                "no block qualification on the market: database block lifted")
    raise ActionError(f"unknown action {action!r}")


def perform(db, market: Market, mode: str, action: str, target: str, fields: dict, actor: str,
            action_id: str, block_name: str = BLOCK_NAME) -> dict:
    """Do one confirmed action (module docstring); returns its audit row. ``ActionError`` when
    refused before anything is recorded."""
    worker = check(db, action, target, fields)
    row, new = db.audit_begin(action_id, actor, action, target, describe(action, fields),
                              worker_id=worker)
    if not new:
        return row
    try:
        answer = _do(db, market, mode, action, target, worker, fields, action_id, block_name)
    except MarketError as e:
        code = f" [{e.code}]" if getattr(e, "code", "") else ""
        return db.audit_finish(action_id, "failed", f"{type(e).__name__}{code}: {e}")
    except Exception as e:             # the database refused the effect: not done either
        return db.audit_finish(action_id, "failed", f"{type(e).__name__}: {e}")
    return db.audit_finish(action_id, "done", answer)
