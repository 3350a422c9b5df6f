"""MTurk's fee schedule, as ``mturk.market.cost`` computes it."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from mturk.market.cost import CostEstimate, assignment_fee, bonus_fee, spent


@pytest.mark.parametrize("reward, per_hit, fee", [
    ("1.00", 1, "0.20"), ("1.00", 9, "0.20"), ("1.00", 10, "0.40"), ("1.00", 100, "0.40"),
    ("0.01", 1, "0.01"), ("0.00", 3, "0.01"), ("0.04", 1, "0.01"), ("0.05", 1, "0.01"),
    ("0.03", 10, "0.01"), ("0.50", 3, "0.10"), ("0.07", 1, "0.01"), ("0.08", 1, "0.02"),
])
def test_assignment_fee(reward, per_hit, fee):
    assert assignment_fee(reward, per_hit) == D(fee)


def test_bonus_fee_is_20_percent_min_a_cent():
    assert bonus_fee("1.00") == D("0.20")
    assert bonus_fee("0.02") == D("0.01")
    with pytest.raises(ValueError):
        bonus_fee("0")


def test_estimate_totals_and_the_10_assignment_threshold():
    small = CostEstimate(n_hits=20, assignments_per_hit=9, reward=D("0.50"))
    big = CostEstimate(n_hits=18, assignments_per_hit=10, reward=D("0.50"))
    assert small.rewards == D("90.00") and small.fees == D("18.00") and small.total == D("108.00")
    assert big.rewards == D("90.00") and big.fees == D("36.00") and big.total == D("126.00")
    with_bonus = CostEstimate(2, 3, D("0.50"), bonus=D("0.10"), n_bonuses=6)
    assert with_bonus.total == D("3.00") + D("0.60") + D("0.60") + D("0.12")
    text = with_bonus.summary()
    assert "$4.32" in text and "20%" in text


def test_total_is_exact_in_cents():
    e = CostEstimate(n_hits=333, assignments_per_hit=3, reward="0.33")
    assert e.total == e.rewards + e.fees
    assert e.total.as_tuple().exponent == -2


def test_spent_counts_fees_per_payment():
    assert spent([("0.50", 3), ("0.50", 3)], bonuses=["0.25"]) == D("1.00") + D("0.20") + D(
        "0.25") + D("0.05")
