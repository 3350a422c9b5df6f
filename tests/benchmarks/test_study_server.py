"""The load benchmark's count check, including a kill -9 and restart (slow; no timings asserted)."""

from __future__ import annotations

import json

import pytest

from benchmarks.study_server import run


@pytest.mark.slow
def test_bench_loses_and_duplicates_nothing_across_kill9(tmp_path):
    r = run(levels=(1, 4), seconds=2.0, kill_level=4, out_dir=tmp_path / "out",
            workdir=tmp_path / "work")
    c = r["count_check"]
    assert c["ok"], c
    assert c["lost"] == 0 and c["duplicate_judgments"] == 0 and c["integrity"] == "ok"
    assert c["db_judgments"] == c["acknowledged_judgments"] > 0
    assert r["kill"]["concurrency"] == 4
    assert json.loads((tmp_path / "out" / "mturk.json").read_text())["simulated"] is True
    assert "kill -9" in (tmp_path / "out" / "mturk.md").read_text()
