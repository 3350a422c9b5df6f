"""benchmarks.metric_speed: the metric's throughput and fit-time tables, tiny."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import metric_speed
from perceptual_metric.trunks import WeightsError, resolve_weights


def test_bench_writes_its_tables(tmp_path):
    try:
        resolve_weights("alex", download=False)
    except WeightsError as e:
        pytest.skip(f"no AlexNet weights: {e}")
    assert metric_speed.main(["--nets", "alex", "--seconds", "0.1", "--batch", "2", "--size", "64",
                             "--labels", "20", "--steps", "5", "--out", str(tmp_path)]) == 0
    meta = json.loads((tmp_path / "perceptual_metric.json").read_text())
    (row,) = meta["throughput"]
    assert row["metric"] == "lpips-alex" and row["pairs_per_s"] > 0 and row["pairs_per_s_grad"] > 0
    assert meta["fit"]["labels"] == 20 and meta["fit"]["steps"] == 5
    assert 0 < meta["fit"]["prepare_s"] <= meta["fit"]["fit_s"]
    assert np.isfinite(meta["meta"]["loadavg_start"])
    assert "load average" in (tmp_path / "perceptual_metric.md").read_text()
