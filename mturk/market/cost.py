"""What a study costs on Mechanical Turk: rewards plus MTurk's commission.

MTurk's fee (requester pricing since 2015): 20% of the reward for HITs with fewer than 10
assignments, 40% for HITs with 10 or more, and at least $0.01 per assignment; bonuses pay 20% with
the same $0.01 minimum. Fees are computed per payment and rounded half-up to the cent, so totals are
sums of cents (what the account is charged), never a rate times a sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
FEE_RATE = Decimal("0.20")
FEE_RATE_LARGE = Decimal("0.40")  # HITs with LARGE_HIT_ASSIGNMENTS or more assignments
LARGE_HIT_ASSIGNMENTS = 10
BONUS_FEE_RATE = Decimal("0.20")
MIN_FEE = CENT


def _d(x) -> Decimal:
    return Decimal(str(x))


def _cents(x: Decimal) -> Decimal:
    return x.quantize(CENT, rounding=ROUND_HALF_UP)


def fee_rate(assignments_per_hit: int) -> Decimal:
    return FEE_RATE_LARGE if assignments_per_hit >= LARGE_HIT_ASSIGNMENTS else FEE_RATE


def assignment_fee(reward, assignments_per_hit: int) -> Decimal:
    """MTurk's commission on one assignment paid ``reward``."""
    if _d(reward) < 0:
        raise ValueError("reward must be >= 0")
    return max(MIN_FEE, _cents(_d(reward) * fee_rate(int(assignments_per_hit))))


def bonus_fee(amount) -> Decimal:
    """MTurk's commission on one bonus payment."""
    if _d(amount) <= 0:
        raise ValueError("a bonus must be > 0")
    return max(MIN_FEE, _cents(_d(amount) * BONUS_FEE_RATE))


@dataclass(frozen=True)
class CostEstimate:
    """Cost of ``n_hits`` HITs with ``assignments_per_hit`` assignments paying ``reward`` each,
    plus ``n_bonuses`` bonuses of ``bonus`` (the most a study may pay out)."""

    n_hits: int
    assignments_per_hit: int
    reward: Decimal
    bonus: Decimal = Decimal("0")
    n_bonuses: int = 0

    @property
    def n_assignments(self) -> int:
        return self.n_hits * self.assignments_per_hit

    @property
    def rewards(self) -> Decimal:
        return _cents(_d(self.reward)) * self.n_assignments

    @property
    def fees(self) -> Decimal:
        return assignment_fee(self.reward, self.assignments_per_hit) * self.n_assignments

    @property
    def bonuses(self) -> Decimal:
        return _cents(_d(self.bonus)) * self.n_bonuses if self.n_bonuses else Decimal("0.00")

    @property
    def bonus_fees(self) -> Decimal:
        return bonus_fee(self.bonus) * self.n_bonuses if self.n_bonuses else Decimal("0.00")

    @property
    def total(self) -> Decimal:
        return self.rewards + self.fees + self.bonuses + self.bonus_fees

    def summary(self) -> str:
        rate = fee_rate(self.assignments_per_hit) * 100
        lines = [
            f"{self.n_hits} HITs x {self.assignments_per_hit} assignments x "
            f"${_cents(_d(self.reward))} = ${self.rewards}",
            f"MTurk fee ({rate:.0f}%, min $0.01 per assignment): "
            f"${assignment_fee(self.reward, self.assignments_per_hit)} x {self.n_assignments} "
            f"= ${self.fees}",
        ]
        if self.n_bonuses:
            lines.append(f"bonuses (at most): {self.n_bonuses} x ${_cents(_d(self.bonus))} = "
                         f"${self.bonuses}, fee 20% ${self.bonus_fees}")
        lines.append(f"total: ${self.total}")
        return "\n".join(lines)


def spent(approved_rewards, bonuses=()) -> Decimal:
    """Money already charged: ``approved_rewards`` is ``[(reward, assignments_per_hit), ...]`` for
    each approved assignment, ``bonuses`` the amounts of bonuses paid."""
    total = Decimal("0.00")
    for reward, per_hit in approved_rewards:
        total += _cents(_d(reward)) + assignment_fee(reward, per_hit)
    for b in bonuses:
        total += _cents(_d(b)) + bonus_fee(b)
    return total
