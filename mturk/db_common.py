"""What the study database and its record mixins share: modes, statuses, the typed errors the
server maps to HTTP statuses (``mturk.app.STATUS``), the submit result, timestamps and money.

``mturk.db`` (``StudyDB``) and its mixins (``db_assign``, ``db_market``, ``db_trust``,
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
    each subclass with its own HTTP status (``mturk.app.STATUS``), never by reading the text."""


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
