"""Worker, qualification-type and bonus records of the study database (mixed into StudyDB).

Used by the publishing side (``mturk.market.collect``, ``mturk.market.manage``); see
``mturk.store.study_db`` for the API.
"""

from __future__ import annotations

from . import common
from .common import MODES, ConflictError, DBError, money


class MarketRecords:
    """Methods of ``StudyDB`` for workers, qualification types and bonuses."""

    # -- workers -----------------------------------------------------------------------------
    def get_worker(self, worker_id: str) -> dict | None:
        return self._one("SELECT * FROM workers WHERE worker_id=?", (worker_id,))

    def list_workers(self) -> list[dict]:
        return self._rows("SELECT * FROM workers ORDER BY worker_id")

    def set_worker_score(self, worker_id: str, correct: int, total: int) -> None:
        score = correct / total if total else None
        with self._tx() as c:
            self._ensure_worker(c, worker_id)
            c.execute("UPDATE workers SET sentinel_correct=?, sentinel_total=?, sentinel_score=? "
                      "WHERE worker_id=?", (correct, total, score, worker_id))

    def block_worker(self, worker_id: str, reason: str) -> None:
        with self._tx() as c:
            self._ensure_worker(c, worker_id)
            c.execute("UPDATE workers SET blocked=1, blocked_reason=?, blocked_at=? "
                      "WHERE worker_id=?", (reason, common.utcnow(), worker_id))

    def unblock_worker(self, worker_id: str) -> None:
        with self._tx() as c:
            c.execute("UPDATE workers SET blocked=0, blocked_reason=NULL, blocked_at=NULL "
                      "WHERE worker_id=?", (worker_id,))

    def is_blocked(self, worker_id: str) -> bool:
        w = self.get_worker(worker_id)
        return bool(w and w["blocked"])

    # -- qualification types -----------------------------------------------------------------
    def set_qualification_type(self, name: str, mode: str, qualification_type_id: str) -> None:
        if mode not in MODES:
            raise DBError(f"mode must be one of {MODES}")
        with self._tx() as c:
            c.execute("INSERT INTO qualification_types VALUES (?,?,?,?) ON CONFLICT(name, mode) "
                      "DO UPDATE SET qualification_type_id=excluded.qualification_type_id",
                      (name, mode, qualification_type_id, common.utcnow()))

    def get_qualification_type(self, name: str, mode: str) -> str | None:
        r = self._one("SELECT qualification_type_id FROM qualification_types "
                      "WHERE name=? AND mode=?", (name, mode))
        return r["qualification_type_id"] if r else None

    # -- bonuses -----------------------------------------------------------------------------
    def add_bonus(self, assignment_id: str, worker_id: str, amount, reason: str,
                  unique_token: str) -> dict:
        amount = money(amount)
        with self._tx() as c:
            old = c.execute("SELECT * FROM bonuses WHERE unique_token=?",
                            (unique_token,)).fetchone()
            if old is not None:
                if (old["assignment_id"], old["worker_id"], old["amount"]) != \
                        (assignment_id, worker_id, amount):
                    raise ConflictError(f"bonus token {unique_token!r} used for another bonus")
                return dict(old)
            if c.execute("SELECT 1 FROM assignments WHERE assignment_id=?",
                         (assignment_id,)).fetchone() is None:
                raise DBError(f"unknown assignment {assignment_id!r}")
            c.execute("INSERT INTO bonuses (assignment_id, worker_id, amount, reason, "
                      "unique_token, created_at) VALUES (?,?,?,?,?,?)",
                      (assignment_id, worker_id, amount, reason, unique_token, common.utcnow()))
        return self._one("SELECT * FROM bonuses WHERE unique_token=?", (unique_token,))

    def mark_bonus_paid(self, unique_token: str, paid_at: str | None = None) -> None:
        with self._tx() as c:
            n = c.execute("UPDATE bonuses SET paid_at=COALESCE(paid_at, ?) WHERE unique_token=?",
                          (paid_at or common.utcnow(), unique_token)).rowcount
            if n != 1:
                raise DBError(f"unknown bonus token {unique_token!r}")

    def list_bonuses(self, unpaid_only: bool = False) -> list[dict]:
        sql = "SELECT * FROM bonuses" + (" WHERE paid_at IS NULL" if unpaid_only else "")
        return self._rows(sql + " ORDER BY bonus_id")
