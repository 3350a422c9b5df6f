"""The narrow marketplace interface that publish/collect/manage code against.

Two implementations: :class:`mturk.market.boto.Boto3Market` (Amazon Mechanical Turk through boto3,
sandbox or live) and :class:`mturk.market.memory.InMemoryMarket` (tests, local lab studies, the
demo). Both pass ``tests/mturk/test_market_backends.py``, one conformance test.

Conventions shared by every implementation:

- Money is :class:`decimal.Decimal` in US dollars (MTurk's API takes strings such as ``"0.50"``).
- ``create_hit`` takes a ``unique_request_token``; a repeat with the same token returns the HIT that
  the first call created, with ``Hit.existed`` set, never a second HIT.
- ``send_bonus`` also takes a token and returns ``False`` when that bonus was already paid.
- Errors are :class:`MarketError`; the retryable kind (throttling, service faults, timeouts) is
  :class:`TransientMarketError`, and implementations retry it with backoff before raising.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

#: Assignment states as MTurk names them.
SUBMITTED, APPROVED, REJECTED = "Submitted", "Approved", "Rejected"
ASSIGNMENT_STATUSES = (SUBMITTED, APPROVED, REJECTED)
#: HIT states as MTurk names them.
HIT_STATUSES = ("Assignable", "Unassignable", "Reviewable", "Reviewing", "Disposed")


class MarketError(RuntimeError):
    """A marketplace call failed. ``code`` is the service's error code (e.g. ``RequestError``)."""

    def __init__(self, message: str, code: str = "", operation: str = ""):
        super().__init__(message)
        self.code = code
        self.operation = operation


class TransientMarketError(MarketError):
    """Throttling, a service fault or a network error: worth retrying later."""


class NotFoundError(MarketError):
    """The HIT, assignment or qualification type does not exist (or is no longer visible)."""


def dollars(value) -> Decimal:
    """``value`` as a Decimal rounded to cents (strings, ints, floats or Decimals)."""
    return Decimal(str(value)).quantize(Decimal("0.01"))


def money_str(value) -> str:
    """MTurk's money format: ``"0.50"``."""
    return f"{dollars(value):.2f}"


@dataclass(frozen=True)
class QualificationRequirement:
    """One entry of a HIT type's QualificationRequirements."""

    qualification_type_id: str
    comparator: str  # LessThan, GreaterThanOrEqualTo, EqualTo, In, Exists, DoesNotExist, ...
    integer_values: tuple[int, ...] = ()
    #: (country, subdivision or "") pairs, e.g. ("US", "") or ("US", "WA").
    locale_values: tuple[tuple[str, str], ...] = ()
    actions_guarded: str = "Accept"  # Accept, PreviewAndAccept, DiscoverPreviewAndAccept

    def to_api(self) -> dict:
        out: dict = {"QualificationTypeId": self.qualification_type_id,
                     "Comparator": self.comparator, "ActionsGuarded": self.actions_guarded}
        if self.integer_values:
            out["IntegerValues"] = [int(v) for v in self.integer_values]
        if self.locale_values:
            out["LocaleValues"] = [{"Country": c, **({"Subdivision": s} if s else {})}
                                   for c, s in self.locale_values]
        return out


@dataclass(frozen=True)
class HitTypeSpec:
    """What a HIT type fixes: every HIT of a batch shares it (workers see them as one group)."""

    title: str
    description: str
    reward: Decimal
    assignment_duration_s: int
    auto_approval_delay_s: int
    keywords: str = ""
    requirements: tuple[QualificationRequirement, ...] = ()


@dataclass
class QualificationType:
    qualification_type_id: str
    name: str
    status: str = "Active"


@dataclass
class Hit:
    hit_id: str
    hit_type_id: str
    status: str
    max_assignments: int
    reward: Decimal
    expiration: datetime | None = None
    annotation: str = ""
    pending: int = 0
    available: int = 0
    completed: int = 0
    #: True when create_hit found the HIT already created under the same request token.
    existed: bool = False


@dataclass
class Assignment:
    assignment_id: str
    worker_id: str
    hit_id: str
    status: str
    answer_xml: str = ""
    accept_time: datetime | None = None
    submit_time: datetime | None = None
    feedback: str = ""


@dataclass
class BonusRecord:
    worker_id: str
    assignment_id: str
    amount: Decimal
    reason: str
    unique_request_token: str = field(default="", repr=False)


class Market(abc.ABC):
    """What the study needs from a crowdsourcing marketplace, and nothing more."""

    #: "sandbox", "live" or "local" (in memory): recorded beside every id in the database
    #: (``mturk.store.study_db.MODES``).
    mode: str = "local"

    @abc.abstractmethod
    def get_account_balance(self) -> Decimal: ...

    # -- qualifications -------------------------------------------------------------------------
    @abc.abstractmethod
    def find_qualification_type(self, name: str) -> QualificationType | None:
        """The caller's own qualification type with exactly this name, if any."""

    @abc.abstractmethod
    def create_qualification_type(self, name: str, description: str, *, keywords: str = "",
                                  test_xml: str | None = None, answer_key_xml: str | None = None,
                                  test_duration_s: int | None = None,
                                  retry_delay_s: int | None = None,
                                  auto_granted: bool = False) -> QualificationType:
        """Create it; a name already taken raises :class:`MarketError` (use find first)."""

    @abc.abstractmethod
    def associate_qualification(self, qualification_type_id: str, worker_id: str,
                                value: int = 1, notify: bool = False) -> None: ...

    @abc.abstractmethod
    def disassociate_qualification(self, qualification_type_id: str, worker_id: str,
                                   reason: str = "") -> None:
        """Take the qualification away (undoes a soft block); a no-op when not held."""

    @abc.abstractmethod
    def worker_qualification(self, qualification_type_id: str, worker_id: str) -> int | None:
        """The worker's integer value for the qualification, or None when they don't hold it."""

    # -- HITs -----------------------------------------------------------------------------------
    @abc.abstractmethod
    def create_hit_type(self, spec: HitTypeSpec) -> str:
        """The HIT type id (MTurk returns the same id for the same properties)."""

    @abc.abstractmethod
    def create_hit(self, hit_type_id: str, question_xml: str, max_assignments: int,
                   lifetime_s: int, unique_request_token: str, annotation: str = "") -> Hit:
        """Create one HIT; the same token again returns the first HIT with ``existed=True``."""

    @abc.abstractmethod
    def get_hit(self, hit_id: str) -> Hit: ...

    @abc.abstractmethod
    def list_hits(self) -> Iterator[Hit]:
        """Every HIT of the account (all pages)."""

    @abc.abstractmethod
    def update_expiration(self, hit_id: str, expire_at: datetime) -> None:
        """A time in the past expires the HIT now; a later one extends it."""

    @abc.abstractmethod
    def create_additional_assignments(self, hit_id: str, n: int,
                                      unique_request_token: str) -> None: ...

    @abc.abstractmethod
    def delete_hit(self, hit_id: str) -> None:
        """Only for HITs that are expired or reviewable with every assignment reviewed."""

    # -- assignments ----------------------------------------------------------------------------
    @abc.abstractmethod
    def list_assignments(self, hit_id: str,
                         statuses: Sequence[str] = ASSIGNMENT_STATUSES) -> Iterator[Assignment]:
        """All assignments of the HIT in these states (all pages)."""

    @abc.abstractmethod
    def approve_assignment(self, assignment_id: str, feedback: str = "") -> None: ...

    @abc.abstractmethod
    def reject_assignment(self, assignment_id: str, feedback: str) -> None: ...

    @abc.abstractmethod
    def send_bonus(self, worker_id: str, assignment_id: str, amount, reason: str,
                   unique_request_token: str) -> bool:
        """Pay a bonus; False when a bonus with this token was already paid."""

    @abc.abstractmethod
    def list_bonus_payments(self, assignment_id: str) -> list[BonusRecord]:
        """Bonuses paid for the assignment (tokens are not reported back: empty there).

        Request tokens expire after 24 hours, so a payer that may retry later checks this first.
        """
