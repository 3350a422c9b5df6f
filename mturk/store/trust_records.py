"""What the study trusts (mixed into StudyDB): its secret, verified assignments, quality flags.

- The **secret** (32 random bytes, made on first use and kept in ``study_keys``) keys every name a
  worker's browser sees (``mturk.tokens``). Keep the database private: whoever reads it can mint
  participant links and image URLs.
- An assignment is **verified** when the marketplace itself reported it (``mturk.market.collect``
  saw it
  in ListAssignmentsForHIT with this HIT and worker, Submitted or Approved: ``verified_by`` =
  ``mturk``) or when a lab participant claimed it with a valid token (``token``). Answers of
  unverified assignments are kept but count nowhere by default (``mturk.aggregate``).
- **Quality flags** (``mturk.analysis.worker_quality``) per worker, for ``mturk.market.collect`` and
  the operator.
"""

from __future__ import annotations

import secrets

from . import common

SECRET_NAME = "hmac-secret"


class TrustRecords:
    """Methods of ``StudyDB`` for the secret, verification and quality flags."""

    def secret(self) -> bytes:
        cached = getattr(self, "_secret_cache", None)
        if cached is not None:
            return cached
        with self._tx() as c:
            c.execute("INSERT OR IGNORE INTO study_keys VALUES (?, ?, ?)",
                      (SECRET_NAME, secrets.token_hex(32), common.utcnow()))
            value = c.execute("SELECT value FROM study_keys WHERE name=?",
                              (SECRET_NAME,)).fetchone()[0]
        self._secret_cache = bytes.fromhex(value)
        return self._secret_cache

    def keys(self):
        from ..tokens import Keys

        return Keys(self.secret())

    def verify_assignment(self, assignment_id: str, hit_id: str, worker_id: str,
                          by: str = "mturk") -> bool:
        """Mark the assignment verified when its HIT and worker are the ones given (what the
        marketplace reported). Returns whether it is verified now; False leaves it unverified
        (unknown here, or recorded with another HIT or worker: a forgery of a real id)."""
        with self._tx() as c:
            row = c.execute("SELECT hit_id, worker_id, verified_at FROM assignments "
                            "WHERE assignment_id=?", (assignment_id,)).fetchone()
            if row is None or (row["hit_id"], row["worker_id"]) != (hit_id, worker_id):
                return False
            if row["verified_at"] is None:
                c.execute("UPDATE assignments SET verified_at=?, verified_by=? "
                          "WHERE assignment_id=?", (common.utcnow(), by, assignment_id))
        return True

    def unverified_assignments(self) -> list[dict]:
        return self._rows("SELECT * FROM assignments WHERE verified_at IS NULL "
                          "ORDER BY assignment_id")

    def set_worker_flags(self, worker_id: str, flags) -> None:
        """Store the worker's quality flags (``mturk.analysis.worker_quality``), comma-separated;
        empty clears."""
        with self._tx() as c:
            self._ensure_worker(c, worker_id)
            c.execute("UPDATE workers SET qc_flags=? WHERE worker_id=?",
                      (",".join(flags) or None, worker_id))

    def trials_csv_path(self):
        """The trials.csv the study was loaded from (its paths are relative to it), or None."""
        from pathlib import Path

        r = self._one("SELECT trials_csv FROM studies WHERE trials_csv IS NOT NULL "
                      "ORDER BY created_at LIMIT 1")
        return Path(r["trials_csv"]) if r else None
