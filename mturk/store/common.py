"""What the study database and its record mixins share: modes, statuses, the typed errors the
server maps to HTTP statuses (``mturk.web.errors.STATUS``), the submit result, timestamps and money.

``mturk.store.study_db`` (``StudyDB``) and its mixins (``db_assign``, ``db_market``, ``db_trust``,
``db_ratings``) all import from here, so none of them imports another: no circle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

MODES = ("sandbox", "live", "local")
ASSIGNMENT_STATUSES = ("accepted", "submitted", "approved", "rejected", "abandoned")
SIDES = ("a", "b")


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class DBError(ValueError):
    """A write the database refuses (bad values); nothing was written. The study server answers
    each subclass with its own HTTP status (``mturk.web.errors.STATUS``), never by reading the
    text."""


class UnknownIdError(DBError):
    """An id (HIT, assignment, batch, bonus token) the database does not know."""


class ConflictError(DBError):
    """An id used with other content: another HIT or worker, another bonus, other answers."""


class AlreadySubmittedError(ConflictError):
    """A resubmission of an assignment with answers different from those recorded: the
    recorded answers stand (``StudyDB.stored_answers``)."""

    def __init__(self, msg: str, assignment_id: str):
        super().__init__(msg)
        self.assignment_id = assignment_id


class HitFullError(DBError):
    """The HIT already has as many assignments as it allows (``StudyDB.accept_assignment``)."""


class StoreUnavailableError(RuntimeError):
    """The store cannot answer now (its server restarting, a dropped connection, a full disk, a
    lock held too long); nothing was written. Not a refusal of the values: the study server
    answers 503 with ``Retry-After``, and the same request may simply be sent again."""


@dataclass(frozen=True)
class SubmitResult:
    status: str          # "created" or "duplicate"
    assignment_id: str
    n_judgments: int


#: seconds an accepted assignment holds its place on a HIT whose assignment duration is unknown
DEFAULT_ASSIGNMENT_DURATION_S = 3600


def money(amount) -> str:
    try:
        d = Decimal(str(amount))
    except InvalidOperation as e:
        raise DBError(f"bad amount {amount!r}") from e
    if d < 0 or d.as_tuple().exponent < -2:
        raise DBError(f"bad amount {amount!r}: use a non-negative USD value like '0.50'")
    return f"{d:.2f}"


# -- one assignment's submission, the same for judgments (mturk.store.study_db) and ratings
# (db_ratings) ---- Each takes the cursor of the caller's transaction (``StudyDB._tx``).

def hit_and_assignment(c, assignment_id: str, hit_id: str, worker_id: str,
                       other: str = "HIT/worker"):
    """(HIT row, assignment row or None); raises ``UnknownIdError`` for an unknown HIT and
    ``ConflictError`` when the assignment belongs to another HIT or worker (``other`` words it)."""
    hit = c.execute("SELECT * FROM hits WHERE hit_id=?", (hit_id,)).fetchone()
    if hit is None:
        raise UnknownIdError(f"unknown HIT {hit_id!r}")
    old = c.execute("SELECT * FROM assignments WHERE assignment_id=?",
                    (assignment_id,)).fetchone()
    if old is not None and (old["hit_id"] != hit_id or old["worker_id"] != worker_id):
        raise ConflictError(f"assignment {assignment_id!r} belongs to another {other}")
    return hit, old


def open_submission(c, assignment_id: str, hit_id: str, worker_id: str, sha: str, n: int,
                    require_accepted: bool):
    """(HIT row, assignment row or None, result): ``result`` is the ``duplicate``
    ``SubmitResult`` of a repeat with the same answers (``sha``), else None and the caller
    stores them. Other answers already stored raise ``AlreadySubmittedError``; an assignment
    never accepted raises ``UnknownIdError`` when ``require_accepted``."""
    hit, old = hit_and_assignment(c, assignment_id, hit_id, worker_id)
    if old is not None and old["answers_sha"] is not None:
        if old["answers_sha"] != sha:
            raise AlreadySubmittedError(f"assignment {assignment_id!r} was already "
                                        "submitted with other answers", assignment_id)
        return hit, old, SubmitResult("duplicate", assignment_id, n)
    if old is None and require_accepted:
        raise UnknownIdError(f"unknown assignment {assignment_id!r}")
    return hit, old, None


def mark_submitted(c, old, assignment_id: str, hit_id: str, worker_id: str, *, now: str,
                   accepted_at: str | None, simulated: bool, sha: str) -> None:
    """Record the assignment as submitted with answers ``sha`` (insert it when ``old`` is None)."""
    if old is None:
        c.execute("INSERT INTO assignments (assignment_id, hit_id, worker_id, status, "
                  "accepted_at, submitted_at, simulated, answers_sha) "
                  "VALUES (?,?,?,'submitted',?,?,?,?)",
                  (assignment_id, hit_id, worker_id, accepted_at, now, int(simulated), sha))
    else:
        c.execute("UPDATE assignments SET status='submitted', submitted_at=?, "
                  "simulated=?, answers_sha=? WHERE assignment_id=?",
                  (now, int(simulated), sha, assignment_id))
