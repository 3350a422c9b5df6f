"""Accepting and claiming assignments (mixed into StudyDB; see ``mturk.store.study_db`` for the
API).

A HIT has ``max_assignments`` places, and only **verified** assignments take one (those MTurk
reported, ``mturk.market.collect``). ``accept_assignment`` (the study server's page) records any
other claim beyond the places: anyone who knows a HIT id can invent assignment ids, so an
unverified claim must never shut out a real worker (MTurk itself hands out no more real
assignments than the places). Their answers are kept, and count nowhere until verified
(``mturk.analysis.aggregate``), which is what keeps forged work out. ``claim_local_assignment``
gives a lab participant (already checked by their token) their open assignment or a new one.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from . import common
from .common import HitFullError, UnknownIdError

#: the lock name prefix of lab claims (``StudyDB._tx(lock=...)``)
CLAIMS_LOCK = "\x1flab-claims:"


class AssignmentRecords:
    """Methods of ``StudyDB`` that create assignments."""

    def accept_assignment(self, assignment_id: str, hit_id: str, worker_id: str, *,
                          accepted_at: str | None = None) -> dict:
        """Record that ``worker_id`` opened ``hit_id`` as ``assignment_id`` (idempotent).

        A new assignment on a HIT whose ``max_assignments`` places are all held by verified
        assignments raises ``HitFullError`` (the HIT is done). Unverified claims hold no place:
        they are recorded however many there are (see the module docstring). Lab HITs (question
        ``local``) are only claimed.
        """
        with self._tx(lock=hit_id) as c:
            hit, old = common.hit_and_assignment(c, assignment_id, hit_id, worker_id,
                                                    other="HIT or worker")
            if old is not None:
                return dict(old)
            if hit["question"] == "local":
                raise UnknownIdError(f"unknown assignment {assignment_id!r} (lab assignments "
                                     "come from a participant link)")
            if self._places_taken(c, hit) >= hit["max_assignments"]:
                raise HitFullError(f"HIT {hit_id!r} has no assignment left")
            self._ensure_worker(c, worker_id)
            c.execute("INSERT INTO assignments (assignment_id, hit_id, worker_id, status, "
                      "accepted_at) VALUES (?, ?, ?, 'accepted', ?)",
                      (assignment_id, hit_id, worker_id, accepted_at or common.utcnow()))
        return self.get_assignment(assignment_id)

    @staticmethod
    def _places_taken(c, hit) -> int:
        """Places of ``hit`` held: its verified assignments (MTurk's own)."""
        return c.execute("SELECT COUNT(*) FROM assignments WHERE hit_id=? AND "
                         "verified_at IS NOT NULL", (hit["hit_id"],)).fetchone()[0]

    def claim_local_assignment(self, worker_id: str, max_per_batch: int | None = None,
                               stale_after_s: float = 3600.0) -> dict | None:
        """Give a lab participant their open assignment, else the batch with fewest
        assignments they have not done yet.

        The caller has checked the participant's token (``mturk.tokens``), so the assignment is
        verified at once (``verified_by`` = ``token``). Creates the batch's lab HIT
        (``local-<batch_id>``, question ``local``) and an accepted assignment; returns the
        assignment, or None when every batch is done by this worker or full. An assignment
        accepted more than ``stale_after_s`` ago and never submitted no longer holds a place.
        """
        cutoff = (datetime.now(timezone.utc) - timedelta(seconds=stale_after_s)).isoformat(
            timespec="milliseconds")
        # what must not race: a participant's two visits at once (one assignment, not two) and,
        # when batches have a cap, any two claims (the cap counted once). Without a cap, claims
        # of different participants may run side by side where the store allows it (PostgreSQL;
        # the batch "with fewest" is then a close guess, never a broken rule)
        lock = CLAIMS_LOCK + ("" if max_per_batch else worker_id)
        with self._tx(lock=lock) as c:
            mine = c.execute(
                "SELECT a.assignment_id FROM assignments a JOIN hits h USING (hit_id) "
                "WHERE a.worker_id=? AND h.question='local' AND a.status='accepted' "
                "AND a.accepted_at>=? ORDER BY a.accepted_at LIMIT 1",
                (worker_id, cutoff)).fetchone()
            if mine is not None:        # a reload or a second visit: the same assignment
                aid = mine["assignment_id"]
            else:
                aid = self._claim_new(c, worker_id, max_per_batch, cutoff)
                if aid is None:
                    return None
        return self.get_assignment(aid)

    def _claim_new(self, c, worker_id: str, max_per_batch: int | None, cutoff: str):
        import uuid

        rows = c.execute(
            "SELECT b.batch_id, COUNT(a.assignment_id) AS n, "
            "SUM(CASE WHEN a.worker_id=? THEN 1 ELSE 0 END) AS mine FROM batches b "
            "LEFT JOIN hits h ON h.batch_id=b.batch_id AND h.question='local' "
            "LEFT JOIN assignments a ON a.hit_id=h.hit_id AND a.status!='abandoned' "
            "AND (a.status!='accepted' OR a.accepted_at>=? OR a.worker_id=?) "
            "GROUP BY b.batch_id ORDER BY n, b.batch_id",
            (worker_id, cutoff, worker_id)).fetchall()
        pick = next((r["batch_id"] for r in rows if not r["mine"]
                     and (max_per_batch is None or r["n"] < max_per_batch)), None)
        if pick is None:
            return None
        hit_id = f"local-{pick}"
        c.execute("INSERT OR IGNORE INTO hits (hit_id, batch_id, status, mode, "
                  "max_assignments, question, created_at) "
                  "VALUES (?, ?, 'assignable', 'local', ?, 'local', ?)",
                  (hit_id, pick, max_per_batch or 1, common.utcnow()))
        self._ensure_worker(c, worker_id)
        aid = f"local-{uuid.uuid4().hex}"
        now = common.utcnow()
        c.execute("INSERT INTO assignments (assignment_id, hit_id, worker_id, status, "
                  "accepted_at, verified_at, verified_by) "
                  "VALUES (?, ?, ?, 'accepted', ?, ?, 'token')",
                  (aid, hit_id, worker_id, now, now))
        return aid
