"""benchmarks.cluster_overhead: the paper estimate of a CLIC-scale run from measured costs (the
timed runs themselves are in ``make bench``)."""

from __future__ import annotations

import pytest

from benchmarks.cluster_overhead import CLIC_MPX, WORKERS, estimate


def test_bench_estimate_arithmetic():
    costs = {"jpeg": {"s_per_mpx": 2.0}, "webp": {"s_per_mpx": 4.0}, "bpg": {"error": "none"}}
    e = estimate(costs, efficiency=0.8, overhead=0.05, n_targets=4)
    assert e["codecs"] == ["jpeg", "webp"]  # a codec not measured is left out, not guessed
    clic, big = e["rows"]
    assert clic["cpu_hours"] == pytest.approx(CLIC_MPX * 6.0 * 1.05 / 3600)
    assert big["cpu_hours"] == pytest.approx(100 * clic["cpu_hours"])
    assert clic["wall_hours"][1] == pytest.approx(clic["cpu_hours"])
    for n in WORKERS[1:]:
        assert clic["wall_hours"][n] == pytest.approx(clic["cpu_hours"] / (n * 0.8))
