"""An in-memory marketplace with MTurk's rules: for tests, local lab studies and the demo.

Approvals and bonuses are charged with MTurk's fee (``mturk.market.cost``). It keeps the behaviour
the study code relies on: one HIT per request token, HIT types keyed by their properties,
assignments that move Submitted -> Approved/Rejected once, one bonus per token, HITs that can only
be deleted when expired or fully reviewed, qualification names that are unique.

A lab study runs it across processes with a state file (``InMemoryMarket(state_path=...)``: JSON,
rewritten atomically after every change). Workers "submit" through :meth:`submit_assignment`, which
is what the local study server calls in place of MTurk's ``externalSubmit``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from plic.fsio import atomic_write_text

from .base import (
    APPROVED,
    ASSIGNMENT_STATUSES,
    REJECTED,
    SUBMITTED,
    Assignment,
    BonusRecord,
    Hit,
    HitTypeSpec,
    Market,
    MarketError,
    NotFoundError,
    QualificationType,
    dollars,
)
from .cost import assignment_fee, bonus_fee
from .questions import answers_xml


def _now() -> datetime:
    return datetime.now(timezone.utc)


class InMemoryMarket(Market):
    """:class:`~.base.Market` in memory (optionally persisted to ``state_path``)."""

    mode = "local"

    def __init__(self, balance="10000.00", state_path: str | Path | None = None,
                 clock=_now):
        self.clock = clock
        self.state_path = Path(state_path) if state_path else None
        self._lock = threading.RLock()
        self.s: dict = {"balance": str(dollars(balance)), "seq": 0, "qual_types": {},
                        "worker_quals": {}, "hit_types": {}, "hits": {}, "tokens": {},
                        "assignments": {}, "bonuses": {}}
        if self.state_path and self.state_path.is_file():
            self.s = json.loads(self.state_path.read_text())

    # -- bookkeeping ----------------------------------------------------------------------------
    def _id(self, prefix: str) -> str:
        self.s["seq"] += 1
        return f"{prefix}{self.s['seq']:0{30 - len(prefix)}d}"

    def _save(self) -> None:
        if self.state_path:
            atomic_write_text(self.state_path, json.dumps(self.s, indent=1, sort_keys=True))

    def _hit_rec(self, hit_id: str) -> dict:
        try:
            return self.s["hits"][hit_id]
        except KeyError:
            raise NotFoundError(f"Hit {hit_id} does not exist.", "RequestError") from None

    def _asg_rec(self, assignment_id: str) -> dict:
        try:
            return self.s["assignments"][assignment_id]
        except KeyError:
            raise NotFoundError(f"Assignment {assignment_id} does not exist.",
                                "RequestError") from None

    def _hit(self, h: dict, existed: bool = False) -> Hit:
        asg = [a for a in self.s["assignments"].values() if a["hit_id"] == h["hit_id"]]
        expired = datetime.fromisoformat(h["expiration"]) <= self.clock()
        done = sum(a["status"] in ASSIGNMENT_STATUSES for a in asg)
        accepted = sum(a["status"] == "Accepted" for a in asg)
        available = 0 if expired else max(0, h["max_assignments"] - done - accepted)
        if h.get("disposed"):
            status = "Disposed"
        elif available > 0:
            status = "Assignable"
        elif accepted and not expired:
            status = "Unassignable"
        else:
            status = "Reviewable"
        ht = self.s["hit_types"][h["hit_type_id"]]
        return Hit(h["hit_id"], h["hit_type_id"], status, h["max_assignments"],
                   dollars(ht["reward"]), datetime.fromisoformat(h["expiration"]),
                   h["annotation"], accepted, available, done, existed)

    # -- account --------------------------------------------------------------------------------
    def get_account_balance(self) -> Decimal:
        with self._lock:
            return dollars(self.s["balance"])

    # -- qualifications -------------------------------------------------------------------------
    def find_qualification_type(self, name):
        with self._lock:
            for q in self.s["qual_types"].values():
                if q["name"] == name:
                    return QualificationType(q["id"], q["name"], "Active")
            return None

    def create_qualification_type(self, name, description, *, keywords="", test_xml=None,
                                  answer_key_xml=None, test_duration_s=None, retry_delay_s=None,
                                  auto_granted=False):
        with self._lock:
            if self.find_qualification_type(name):
                raise MarketError(f"You have already created a QualificationType with this "
                                  f"name: {name}", "RequestError", "CreateQualificationType")
            qid = self._id("Q")
            self.s["qual_types"][qid] = {"id": qid, "name": name, "description": description,
                                         "test": test_xml, "answer_key": answer_key_xml}
            self._save()
            return QualificationType(qid, name, "Active")

    def associate_qualification(self, qualification_type_id, worker_id, value=1, notify=False):
        with self._lock:
            if qualification_type_id not in self.s["qual_types"]:
                raise NotFoundError(f"QualificationType {qualification_type_id} does not exist.",
                                    "RequestError")
            self.s["worker_quals"].setdefault(qualification_type_id, {})[worker_id] = int(value)
            self._save()

    def disassociate_qualification(self, qualification_type_id, worker_id, reason=""):
        with self._lock:
            self.s["worker_quals"].get(qualification_type_id, {}).pop(worker_id, None)
            self._save()

    def worker_qualification(self, qualification_type_id, worker_id):
        with self._lock:
            return self.s["worker_quals"].get(qualification_type_id, {}).get(worker_id)

    # -- HITs -----------------------------------------------------------------------------------
    def create_hit_type(self, spec: HitTypeSpec) -> str:
        with self._lock:
            key = json.dumps([spec.title, spec.description, str(dollars(spec.reward)),
                              spec.assignment_duration_s, spec.auto_approval_delay_s,
                              spec.keywords, [r.to_api() for r in spec.requirements]],
                             sort_keys=True)
            for tid, t in self.s["hit_types"].items():
                if t["key"] == key:
                    return tid
            tid = self._id("T")
            self.s["hit_types"][tid] = {"key": key, "reward": str(dollars(spec.reward)),
                                        "requirements": [r.to_api() for r in spec.requirements]}
            self._save()
            return tid

    def create_hit(self, hit_type_id, question_xml, max_assignments, lifetime_s,
                   unique_request_token, annotation=""):
        with self._lock:
            if hit_type_id not in self.s["hit_types"]:
                raise NotFoundError(f"HITType {hit_type_id} does not exist.", "RequestError")
            if not 1 <= int(max_assignments) <= 1_000_000:
                raise MarketError("MaxAssignments out of range", "RequestError", "CreateHIT")
            if unique_request_token in self.s["tokens"]:
                return self._hit(self._hit_rec(self.s["tokens"][unique_request_token]), True)
            hid = self._id("H")
            expiration = self.clock() + timedelta(seconds=int(lifetime_s))
            self.s["hits"][hid] = {"hit_id": hid, "hit_type_id": hit_type_id,
                                   "question": question_xml,
                                   "max_assignments": int(max_assignments),
                                   "expiration": expiration.isoformat(),
                                   "annotation": annotation or unique_request_token}
            self.s["tokens"][unique_request_token] = hid
            self._save()
            return self._hit(self.s["hits"][hid])

    def get_hit(self, hit_id):
        with self._lock:
            return self._hit(self._hit_rec(hit_id))

    def list_hits(self):
        with self._lock:
            hits = [self._hit(h) for h in self.s["hits"].values() if not h.get("disposed")]
        yield from hits

    def update_expiration(self, hit_id, expire_at):
        with self._lock:
            h = self._hit_rec(hit_id)
            if expire_at.tzinfo is None:
                expire_at = expire_at.replace(tzinfo=timezone.utc)
            h["expiration"] = min(expire_at, self.clock() + timedelta(days=365)).isoformat() \
                if expire_at > self.clock() else self.clock().isoformat()
            self._save()

    def create_additional_assignments(self, hit_id, n, unique_request_token):
        with self._lock:
            h = self._hit_rec(hit_id)
            key = "extra:" + unique_request_token
            if key in self.s["tokens"]:
                return
            h["max_assignments"] += int(n)
            self.s["tokens"][key] = hit_id
            self._save()

    def delete_hit(self, hit_id):
        with self._lock:
            h = self._hit_rec(hit_id)
            hit = self._hit(h)
            open_asg = [a for a in self.s["assignments"].values()
                        if a["hit_id"] == hit_id and a["status"] in (SUBMITTED, "Accepted")]
            if hit.status in ("Assignable", "Unassignable") or open_asg:
                raise MarketError("This HIT is currently in the state 'Assignable' or has "
                                  "assignments to review; it cannot be deleted.",
                                  "RequestError", "DeleteHIT")
            h["disposed"] = True
            self._save()

    # -- assignments ----------------------------------------------------------------------------
    def list_assignments(self, hit_id, statuses: Sequence[str] = ASSIGNMENT_STATUSES):
        with self._lock:
            self._hit_rec(hit_id)
            out = [self._asg(a) for a in self.s["assignments"].values()
                   if a["hit_id"] == hit_id and a["status"] in statuses]
        yield from out

    @staticmethod
    def _asg(a: dict) -> Assignment:
        return Assignment(a["id"], a["worker_id"], a["hit_id"], a["status"], a["answer"],
                          datetime.fromisoformat(a["accept_time"]),
                          datetime.fromisoformat(a["submit_time"]) if a["submit_time"] else None,
                          a.get("feedback", ""))

    def _review(self, assignment_id, to, feedback):
        with self._lock:
            a = self._asg_rec(assignment_id)
            if a["status"] != SUBMITTED:
                raise MarketError(f"This operation can be called with a status of: Submitted "
                                  f"(assignment {assignment_id} is {a['status']})",
                                  "RequestError")
            a["status"], a["feedback"] = to, feedback or ""
            if to == APPROVED:
                hit = self.s["hits"][a["hit_id"]]
                reward = dollars(self.s["hit_types"][hit["hit_type_id"]]["reward"])
                charge = reward + assignment_fee(reward, hit["max_assignments"])
                self.s["balance"] = str(dollars(self.s["balance"]) - charge)
            self._save()

    def approve_assignment(self, assignment_id, feedback=""):
        self._review(assignment_id, APPROVED, feedback)

    def reject_assignment(self, assignment_id, feedback):
        self._review(assignment_id, REJECTED, feedback)

    def send_bonus(self, worker_id, assignment_id, amount, reason, unique_request_token):
        with self._lock:
            a = self._asg_rec(assignment_id)
            if a["worker_id"] != worker_id:
                raise MarketError("Worker does not own this assignment", "RequestError")
            if unique_request_token in self.s["bonuses"]:
                return False
            self.s["bonuses"][unique_request_token] = {
                "worker_id": worker_id, "assignment_id": assignment_id,
                "amount": str(dollars(amount)), "reason": reason}
            charge = dollars(amount) + bonus_fee(amount)
            self.s["balance"] = str(dollars(self.s["balance"]) - charge)
            self._save()
            return True

    def list_bonus_payments(self, assignment_id):
        with self._lock:
            self._asg_rec(assignment_id)
            return [BonusRecord(b["worker_id"], b["assignment_id"], dollars(b["amount"]),
                                b["reason"]) for b in self.s["bonuses"].values()
                    if b["assignment_id"] == assignment_id]

    # -- the worker's side (lab studies, tests, the demo) ---------------------------------------
    def accept(self, hit_id: str, worker_id: str) -> str:
        """A worker accepts the HIT: the assignment id the page gets (``assignmentId``)."""
        with self._lock:
            hit = self._hit(self._hit_rec(hit_id))
            if hit.available <= 0:
                raise MarketError(f"HIT {hit_id} has no assignments available", "RequestError")
            if any(a["hit_id"] == hit_id and a["worker_id"] == worker_id
                   for a in self.s["assignments"].values()):
                raise MarketError("A worker can take a HIT once", "RequestError")
            for qid, req in self._requirements(hit.hit_type_id):
                if not _meets(req, self.worker_qualification(qid, worker_id)):
                    raise MarketError(f"Worker {worker_id} does not meet qualification {qid}",
                                      "RequestError")
            aid = self._id("A")
            self.s["assignments"][aid] = {"id": aid, "hit_id": hit_id, "worker_id": worker_id,
                                          "status": "Accepted", "answer": "",
                                          "accept_time": self.clock().isoformat(),
                                          "submit_time": None}
            self._save()
            return aid

    def _requirements(self, hit_type_id):
        for r in self.s["hit_types"][hit_type_id]["requirements"]:
            qid = r["QualificationTypeId"]
            if qid in self.s["qual_types"]:  # system qualifications are not modelled
                yield qid, r

    def submit(self, assignment_id: str, answers: Mapping[str, object]) -> None:
        """The worker submits the form fields; they come back as QuestionFormAnswers XML."""
        with self._lock:
            a = self._asg_rec(assignment_id)
            if a["status"] != "Accepted":
                raise MarketError(f"Assignment {assignment_id} was already submitted",
                                  "RequestError")
            a["status"], a["answer"] = SUBMITTED, answers_xml(answers)
            a["submit_time"] = self.clock().isoformat()
            self._save()

    def submit_assignment(self, hit_id: str, worker_id: str,
                          answers: Mapping[str, object]) -> str:
        """Accept and submit in one step; the assignment id."""
        aid = self.accept(hit_id, worker_id)
        self.submit(aid, answers)
        return aid

    def bonuses(self) -> list[dict]:
        with self._lock:
            return [dict(v, unique_request_token=k) for k, v in self.s["bonuses"].items()]


def _meets(req: dict, value: int | None) -> bool:
    comp, vals = req["Comparator"], req.get("IntegerValues", [])
    if comp == "Exists":
        return value is not None
    if comp == "DoesNotExist":
        return value is None
    if value is None:
        return False
    ops = {"LessThan": value < vals[0] if vals else False,
           "LessThanOrEqualTo": value <= vals[0] if vals else False,
           "GreaterThan": value > vals[0] if vals else False,
           "GreaterThanOrEqualTo": value >= vals[0] if vals else False,
           "EqualTo": value == vals[0] if vals else False,
           "NotEqualTo": value != vals[0] if vals else False,
           "In": value in vals, "NotIn": value not in vals}
    return ops.get(comp, True)

