"""Collect, review and pay: ``python -m mturk.market.collect``.

For every HIT of the study (``mturk.store.study_db``, this mode) it pages through the assignments on
the marketplace and:

1. parses the QuestionFormAnswers XML: the HIT page (``mturk.web.page``) posts one form field,
   ``answers``, holding its JSON; the ids inside are replaced with the ones MTurk reports, and the
   page's trial ids mapped back (``mturk.tokens``: per assignment, per batch for HTMLQuestion);
2. stores the judgments beside what the study server recorded (``StudyDB.record_submission``:
   the same answers again change nothing; different answers are reported as a conflict and the
   server's record is kept) and marks the assignment **verified**: MTurk listed it, Submitted or
   Approved, with this HIT and worker. Only verified assignments count in ``mturk.aggregate``;
   what the server stored for assignments MTurk never lists stays unverified;
3. reviews each Submitted assignment by **the rule**: with ``s`` sentinel trials (obvious answers)
   of which ``c`` are right, reject when ``c / s < --reject-below`` (default 0.5) and at least
   ``--reject-min-wrong`` (default 2) are wrong, with feedback saying how many checks failed;
   also reject on evidence inside the assignment
   (``mturk.analysis.worker_quality.assignment_verdict``: every answer on one side, or under half
   the minimum time per trial by the server's clock); otherwise approve with a thank-you. One slip
   is never a rejection. An assignment whose answers cannot be read is left for a person (MTurk
   approves it after the auto-approval delay): we never reject for our own parsing failure;
4. scores each worker on all their sentinels so far (``workers.sentinel_score``) and, among the
   workers whose work this run reviewed, soft-blocks repeat spammers: ``--block-after``
   rejected assignments, sentinel accuracy below ``--block-below`` over at least
   ``--block-min-sentinels`` sentinels, or any blocking flag of ``mturk.analysis.worker_quality``
   over all their verified work, rejected assignments included (``sentinels``, ``fast``,
   ``side-bias``,
   ``consensus``, ``inconsistent``; the
   report lists each flagged worker with their flags). A soft block grants the
   block qualification that ``mturk.publish`` requires not to exist; no MTurk block is filed;
5. pays the optional bonus (``--bonus``) to approved assignments with sentinel accuracy of at least
   ``--bonus-min-accuracy``, once: recorded first with a token, sent with that
   ``UniqueRequestToken`` after checking the bonuses already paid for the assignment (tokens
   expire after 24 h), then marked paid.

Every step is idempotent and ordered marketplace-first, database-second, so a run that dies midway
leaves a state the next run completes.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from decimal import Decimal

from plic.cli import CliError, command, parser
from plic.config_args import add_config_args, config_from_args, option

from ..analysis.worker_quality import BLOCKING_FLAGS, QualityRule, assess, assignment_verdict
from ..design.study import rating_design
from ..store.study_db import AlreadySubmittedError, ConflictError, DBError
from ..tokens import html_scope
from ..web.page import ANSWER_FIELD, AnswerError
from ..web.rating_page import parse_ratings
from ..web.twoafc_page import parse_answers
from . import (
    APPROVED,
    REJECTED,
    SUBMITTED,
    Assignment,
    Market,
    MarketError,
    NotFoundError,
)
from .config import (
    add_market_arguments,
    check_live,
    market_from_args,
    mode_of,
    open_db,
)
from .questions import parse_answers as parse_form

THANKS = "Thank you for your careful comparisons."


@dataclass
class CollectConfig:
    """How to review and pay."""

    batches: list = option([], "only the HITs of these batches (default: all)")
    reject_below: float = option(0.5, "reject when the fraction of sentinels right is below this")
    reject_min_wrong: int = option(2, "...and at least this many sentinels are wrong")
    block_after: int = option(2, "soft-block a worker after this many rejected assignments")
    block_below: float = option(0.6, "soft-block when a worker's sentinel accuracy is below "
                                     "this...")
    block_min_sentinels: int = option(8, "...over at least this many sentinels")
    block_name: str = option("plic-soft-block-v1", "name of the soft-block qualification")
    bonus: str = option("0", "bonus in USD for accurate approved assignments (0: none)")
    bonus_min_accuracy: float = option(1.0, "sentinel accuracy an assignment needs for the bonus")
    review: bool = option(True, "approve/reject (--no-review: only collect and score)")
    quality: bool = option(True, "soft-block workers mturk.analysis.worker_quality flags "
                                 "(--no-quality: only the sentinel and rejection rules)")
    dry_run: bool = option(False, "collect and report, but approve, reject, block and pay nothing")


@dataclass
class Report:
    assignments: int = 0
    new_judgments: int = 0
    approved: list = field(default_factory=list)
    rejected: list = field(default_factory=list)
    unreadable: list = field(default_factory=list)
    conflicts: list = field(default_factory=list)
    verified: list = field(default_factory=list)
    #: worker -> mturk.analysis.worker_quality flags over their verified work (only workers with
    # flags)
    flagged: dict = field(default_factory=dict)
    blocked: list = field(default_factory=list)
    bonuses_paid: list = field(default_factory=list)
    #: workers with work reviewed in this run: the only ones whose block status is decided, so a
    #: lifted block (``mturk.market.manage unblock``) stays lifted until they fail checks again
    reviewed_workers: set = field(default_factory=set)

    def summary(self) -> str:
        return (f"{self.assignments} assignments ({len(self.verified)} verified), "
                f"{self.new_judgments} new judgments; "
                f"approved {len(self.approved)}, rejected {len(self.rejected)}, "
                f"left for review {len(self.unreadable)}, conflicts {len(self.conflicts)}; "
                f"blocked {len(self.blocked)} workers; {len(self.bonuses_paid)} bonuses paid; "
                f"flagged: " + (", ".join(f"{w} ({','.join(f)})" for w, f in
                                          sorted(self.flagged.items())) or "none"))


def page_scope(hit: dict, assignment_id: str) -> str:
    """The scope of the page trial ids an assignment's answers carry (``mturk.tokens``)."""
    return html_scope(hit["batch_id"]) if hit.get("question") == "html" else assignment_id


def read_answers(a: Assignment, trials_by_id: dict, page_ids: dict) -> list[dict]:
    """Database rows from one assignment's QuestionFormAnswers; AnswerError when unreadable."""
    try:
        fields = parse_form(a.answer_xml) if a.answer_xml else {}
    except (ValueError, SyntaxError) as e:
        raise AnswerError(f"answer XML unreadable: {e}") from e
    raw = fields.get(ANSWER_FIELD)
    if not raw:
        raise AnswerError(f"no {ANSWER_FIELD!r} field in the answer")
    try:
        payload = json.loads(raw)
    except ValueError as e:
        raise AnswerError("answers are not valid JSON") from e
    if not isinstance(payload, dict):
        raise AnswerError("a submission is a JSON object")
    # MTurk's ids are the truth; the page's copies are not trusted.
    payload.update(assignment_id=a.assignment_id, hit_id=a.hit_id, worker_id=a.worker_id)
    parse = parse_ratings if rating_design(trials_by_id) else parse_answers   # ACR/DSIS scores
    return parse(payload, trials_by_id, page_ids)[1]


def sentinel_score(rows: list[dict], trials_by_id: dict) -> tuple[int, int]:
    """(right, total) over the sentinel trials among ``rows``."""
    right = total = 0
    for r in rows:
        t = trials_by_id.get(r["trial_id"])
        if t and t["kind"] == "sentinel" and t["expected"] in ("a", "b"):
            total += 1
            right += r["choice"] == t["expected"]
    return right, total


def decide(right: int, total: int, reject_below: float,
           min_wrong: int = 2) -> tuple[str, str]:
    """The review rule: (Approved or Rejected, feedback)."""
    if total and right / total < reject_below and total - right >= min_wrong:
        return REJECTED, (f"{total - right} of {total} check comparisons, which have a clear "
                          "answer, were answered wrongly, so we cannot use this work.")
    return APPROVED, THANKS


def _stored_rows(db, assignment_id: str) -> list[dict]:
    return db.judgments(assignment_id)


def collect(cfg: CollectConfig, market: Market, db, mode: str, out=print,
            rule: QualityRule | None = None) -> Report:
    """Collect, verify, review, score, block and pay (the module docstring); ``rule`` is the
    quality control's thresholds (``mturk.analysis.worker_quality``)."""
    rule = rule or QualityRule()
    rep = Report()
    hits = [h for h in db.list_hits(mode=mode) if not cfg.batches or h["batch_id"] in cfg.batches]
    trial_cache: dict[str, dict] = {}
    touched_workers: set[str] = set()
    for h in hits:
        if h["batch_id"] not in trial_cache:
            trial_cache[h["batch_id"]] = {t["trial_id"]: t for t in db.batch_trials(h["batch_id"])}
        trials = trial_cache[h["batch_id"]]
        try:
            assignments = list(market.list_assignments(h["hit_id"]))
        except NotFoundError:
            # e.g. a lab study's "local-<batch>" HIT: its answers are already in the database
            out(f"  {h['hit_id']}: not on this marketplace; skipped")
            continue
        for a in assignments:
            rep.assignments += 1
            touched_workers.add(a.worker_id)
            if a.hit_id != h["hit_id"]:
                out(f"  {a.assignment_id}: listed under {h['hit_id']} but names {a.hit_id}; "
                    "skipped")
                continue
            ids = db.keys().page_ids(page_scope(h, a.assignment_id), list(trials))
            _collect_one(cfg, market, db, a, trials, ids, rep, out, rule)
    if cfg.quality:
        f = db.judgments_frame()     # all their verified work, rejected assignments included
        q = assess(f[f.verified_at.notna() & f.assignment_status.isin(
            ("submitted", "approved", "rejected"))], rule)
        rep.flagged = {r.worker_id: list(r.flags) for r in q.itertuples() if r.flags}
    if not cfg.dry_run:
        _score_and_block(cfg, market, db, mode, touched_workers, rep, out)
        _pay_bonuses(cfg, market, db, hits, trial_cache, rep, out)
    return rep


def _collect_one(cfg, market, db, a: Assignment, trials, page_ids, rep: Report, out,
                 rule: QualityRule) -> None:
    submitted_at = a.submit_time.isoformat() if a.submit_time else None
    accepted_at = a.accept_time.isoformat() if a.accept_time else None
    design = rating_design(trials)    # ACR/DSIS: scores to the ratings table, no sentinels
    record = (lambda *x, **k: db.record_ratings(*x[:3], design, *x[3:], **k)) if design \
        else db.record_submission
    try:
        rows = read_answers(a, trials, page_ids)
        res = record(a.assignment_id, a.hit_id, a.worker_id, rows,
                     require_accepted=False, submitted_at=submitted_at,
                     accepted_at=accepted_at)
        rep.new_judgments += res.n_judgments if res.status == "created" else 0
    except AlreadySubmittedError as e:
        rep.conflicts.append(a.assignment_id)
        out(f"  {a.assignment_id}: MTurk's answers differ from the server's record ({e}); "
            "keeping the server's")
        rows = _stored_rows(db, a.assignment_id)
    except ConflictError as e:
        # the server holds this id under another HIT or worker: not MTurk's assignment
        rep.conflicts.append(a.assignment_id)
        out(f"  {a.assignment_id}: {e}; left unverified for a person")
        return
    except (AnswerError, DBError) as e:
        rep.unreadable.append(a.assignment_id)
        out(f"  {a.assignment_id}: answers unreadable ({e}); left for review")
        db.upsert_assignment(a.assignment_id, a.hit_id, a.worker_id, a.status.lower(),
                             submitted_at=submitted_at)
        return
    if a.status in (SUBMITTED, APPROVED) and \
            db.verify_assignment(a.assignment_id, a.hit_id, a.worker_id, by="mturk"):
        rep.verified.append(a.assignment_id)
    if a.status != SUBMITTED:
        # reviewed already (by us in a run that died before recording it, or by hand)
        current = db.get_assignment(a.assignment_id)
        if current and current["status"] != a.status.lower():
            db.set_assignment_status(a.assignment_id, a.status.lower(), a.feedback or None)
            rep.reviewed_workers.add(a.worker_id)
        return
    if not cfg.review:
        return
    right, total = sentinel_score(rows, trials)
    verdict, feedback = decide(right, total, cfg.reject_below, cfg.reject_min_wrong)
    # ratings carry no evidence inside one assignment: mturk.mos screens observers instead
    evidence = _evidence(db, a.assignment_id, rows, rule) \
        if verdict == APPROVED and not design else ""
    if evidence:
        verdict, feedback = REJECTED, (f"{evidence}, which a careful comparison of each pair "
                                       "cannot do, so we cannot use this work.")
    if cfg.dry_run:
        out(f"  {a.assignment_id}: would {verdict.lower()[:-1]} ({right}/{total} sentinels)")
        return
    try:
        if verdict == APPROVED:
            market.approve_assignment(a.assignment_id, feedback)
        else:
            market.reject_assignment(a.assignment_id, feedback)
    except MarketError as e:
        out(f"  {a.assignment_id}: review failed ({e}); the next run retries")
        return
    db.set_assignment_status(a.assignment_id, verdict.lower(), feedback)
    rep.reviewed_workers.add(a.worker_id)
    (rep.approved if verdict == APPROVED else rep.rejected).append(a.assignment_id)


def _evidence(db, assignment_id: str, rows: list[dict], rule: QualityRule) -> str:
    import pandas as pd

    asg = db.get_assignment(assignment_id) or {}
    g = pd.DataFrame(rows)
    if g.empty:
        return ""
    g = g.assign(simulated=int(asg.get("simulated") or 0), accepted_at=asg.get("accepted_at"),
                 submitted_at=asg.get("submitted_at"))
    return assignment_verdict(g, rule)


def _score_and_block(cfg, market, db, mode, workers, rep: Report, out) -> None:
    if not workers:
        return
    frame = db.judgments_frame()
    for wid, flags in rep.flagged.items():
        db.set_worker_flags(wid, flags)
    block_qid = None
    for w in sorted(workers):
        mine = frame[(frame.worker_id == w) & (frame.kind == "sentinel")]
        total = int(len(mine))
        right = int((mine.choice == mine.expected).sum()) if total else 0
        db.set_worker_score(w, right, total)
        n_rejected = len(db.list_assignments(worker_id=w, status="rejected"))
        qc = [f for f in rep.flagged.get(w, []) if f in BLOCKING_FLAGS]
        spam = n_rejected >= cfg.block_after or bool(qc) or (
            total >= cfg.block_min_sentinels and right / total < cfg.block_below)
        if not spam or w not in rep.reviewed_workers or db.is_blocked(w):
            continue
        if block_qid is None:
            block_qid = db.get_qualification_type(cfg.block_name, mode)
            if block_qid is None:
                found = market.find_qualification_type(cfg.block_name)
                if found is None:
                    found = market.create_qualification_type(
                        cfg.block_name, "Workers whose past answers failed our checks.")
                block_qid = found.qualification_type_id
                db.set_qualification_type(cfg.block_name, mode, block_qid)
        market.associate_qualification(block_qid, w, 1, notify=False)
        reason = f"{n_rejected} rejected assignments, sentinels {right}/{total}" + (
            f", quality flags {','.join(qc)}" if qc else "")
        db.block_worker(w, reason)
        rep.blocked.append(w)
        out(f"  soft-blocked {w}: {reason}")


def bonus_token(assignment_id: str) -> str:
    return f"plic-bonus-{assignment_id}"[:64]


def _pay_bonuses(cfg, market, db, hits, trial_cache, rep: Report, out) -> None:
    amount = Decimal(cfg.bonus or "0")
    if amount > 0:
        batch_of = {h["hit_id"]: h["batch_id"] for h in hits}
        for h in hits:
            for a in db.list_assignments(hit_id=h["hit_id"], status="approved"):
                trials = trial_cache[batch_of[a["hit_id"]]]
                right, total = sentinel_score(_stored_rows(db, a["assignment_id"]), trials)
                if total and right / total >= cfg.bonus_min_accuracy:
                    db.add_bonus(a["assignment_id"], a["worker_id"], amount,
                                 "Bonus for accurate comparisons", bonus_token(a["assignment_id"]))
    for b in db.list_bonuses(unpaid_only=True):
        already = [p for p in market.list_bonus_payments(b["assignment_id"])
                   if p.amount == Decimal(b["amount"]) and p.worker_id == b["worker_id"]]
        if not already:
            market.send_bonus(b["worker_id"], b["assignment_id"], Decimal(b["amount"]),
                              b["reason"], b["unique_token"])
        db.mark_bonus_paid(b["unique_token"])
        rep.bonuses_paid.append(b["assignment_id"])
        out(f"  bonus ${b['amount']} to {b['worker_id']} for {b['assignment_id']}"
            + (" (found already paid)" if already else ""))


PROG = "python -m mturk.market.collect"


def build_parser() -> argparse.ArgumentParser:
    p = parser(PROG, __doc__)
    add_market_arguments(p)
    add_config_args(p, CollectConfig)
    add_config_args(p, QualityRule)
    return p


@command(PROG, errors=(MarketError,))
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(CollectConfig, args)
    live_error = check_live(args)
    if live_error and not cfg.dry_run:
        raise CliError(live_error.replace("read the cost above",
                                          "approving and bonuses pay real money"))
    db = open_db(args)
    rep = collect(cfg, market_from_args(args, db.path), db, mode_of(args),
                  rule=config_from_args(QualityRule, args))
    print(rep.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
