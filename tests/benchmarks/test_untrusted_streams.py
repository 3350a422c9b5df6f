"""benchmarks.untrusted_streams: what a stream can cost per byte under the untrusted-input policy
(issue 32), on a tiny checkpoint."""

from __future__ import annotations

import json

from benchmarks import untrusted_streams
from codec import api

from ..forge import tiny_models


def test_the_untrusted_streams_bench_runs_and_reports(tmp_path, capsys):
    """``python -m benchmarks.untrusted_streams`` on a tiny checkpoint and two shapes: every
    accepted stream is within the policy, the all-zero streams of the larger shape are refused, and
    the report states the worst ratio."""
    ckpt = api.save(tiny_models()["hific-tiny"], tmp_path / "tiny.pt")
    assert untrusted_streams.main(["--models", str(ckpt), "--shapes", "64x64,64x1024",
                                    "--repeat", "1", "--max-pixels-per-byte", "100",
                                    "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "untrusted.json").read_text())
    rows = {r["shape"]: r for r in res["rows"]}
    assert set(rows) == {"64x64", "64x1024"}
    for r in rows.values():
        assert r["accepted_bytes"] >= r["accepted_min_bytes"] >= r["work"] / res["meta"]["per_byte"]
        assert r["ratio"] > 0 and r["cpu_ratio"] > 0
    assert rows["64x1024"]["zero_refused_ms"] is not None
    assert res["meta"]["per_byte"] == 100
    assert "Worst accepted stream (CPU time)" in (tmp_path / "untrusted.md").read_text()
