"""The marketplace backends: one narrow interface (:class:`Market`), two implementations.

- :class:`~mturk.market.boto.Boto3Market`: Amazon Mechanical Turk (sandbox by default).
- :class:`~mturk.market.memory.InMemoryMarket`: in memory, for tests, lab studies and the demo.

:func:`open_market` picks one from the CLI settings.
"""

from __future__ import annotations

from pathlib import Path

from .base import (
    APPROVED,
    ASSIGNMENT_STATUSES,
    REJECTED,
    SUBMITTED,
    Assignment,
    Hit,
    HitTypeSpec,
    Market,
    MarketError,
    NotFoundError,
    QualificationRequirement,
    QualificationType,
    TransientMarketError,
    dollars,
    money_str,
)
from .retry import Backoff

__all__ = [
    "APPROVED", "ASSIGNMENT_STATUSES", "REJECTED", "SUBMITTED", "Assignment", "Backoff", "Hit",
    "HitTypeSpec", "Market", "MarketError", "NotFoundError", "QualificationRequirement",
    "QualificationType", "TransientMarketError", "dollars", "money_str", "open_market",
]


def open_market(backend: str = "mturk", sandbox: bool = True, state_path: str | Path | None = None,
                profile: str | None = None) -> Market:
    """``backend`` "mturk" (boto3; ``sandbox`` picks the endpoint) or "memory" (``state_path``
    keeps its state between runs)."""
    if backend == "memory":
        from .memory import InMemoryMarket

        return InMemoryMarket(state_path=state_path)
    if backend == "mturk":
        from .boto import Boto3Market

        return Boto3Market.connect(sandbox=sandbox, profile=profile)
    raise ValueError(f"unknown market backend {backend!r} (mturk or memory)")
