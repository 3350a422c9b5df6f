"""Aggregation on hand-made judgments with known answers (tests/mturk/data/aggregate_golden)."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mturk.analysis.aggregate import FilterRule, aggregate, bradley_terry, main
from mturk.schema import LABELS_COLUMNS, TRIALS_COLUMNS
from mturk.store.study_db import StudyDB
from plic.tables import read_table, resolve_path

GOLDEN = Path(__file__).parent / "data" / "aggregate_golden"


def _load(db_path: Path) -> StudyDB:
    db = StudyDB(db_path)
    trials = read_table(GOLDEN / "trials.csv", TRIALS_COLUMNS, "trial_id")
    db.load_trials(trials)
    left = dict(zip(trials.trial_id, trials.left))
    db.add_hit("H0", "b0", "sandbox", max_assignments=7)
    j = pd.read_csv(GOLDEN / "judgments.csv", dtype=str)
    for (aid, wid, status), g in j.groupby(["assignment_id", "worker_id", "status"]):
        # 5 trials in 20 s by the server's clock and 3 s each by the page's: not fast
        db.accept_assignment(aid, "H0", wid, accepted_at="2026-01-01T00:00:00.000+00:00")
        db.record_submission(aid, "H0", wid, [
            dict(trial_id=t, choice=c, shown_left=left[t], rt_ms=3000)
            for t, c in zip(g.trial_id, g.choice)],
            submitted_at="2026-01-01T00:00:20.000+00:00")
        db.verify_assignment(aid, "H0", wid)        # as mturk.market.collect does for MTurk's own
        if status != "submitted":
            db.set_assignment_status(aid, status)
    db.block_worker("W7", "test")
    return db


@pytest.fixture
def result(tmp_path):
    _load(tmp_path / "j.sqlite")
    s = aggregate(tmp_path / "j.sqlite", GOLDEN / "trials.csv", tmp_path / "out")
    return tmp_path / "out", s


def test_labels_match_golden(result):
    out, _ = result
    got = read_table(out / "labels.csv", LABELS_COLUMNS, "trial_id")
    if os.environ.get("PLIC_REGEN_GOLDEN"):
        shutil.copy(out / "labels.csv", GOLDEN / "expected_labels.csv")
        pytest.skip("golden file regenerated: review the diff")
    exp = read_table(GOLDEN / "expected_labels.csv", LABELS_COLUMNS, "trial_id")
    assert list(got.trial_id) == list(exp.trial_id) == ["T1", "T2", "T3"]   # no sentinels
    for g, e in zip(got.to_dict("records"), exp.to_dict("records")):
        assert math.isclose(float(g["p_b"]), float(e["p_b"]), abs_tol=1e-12)
        assert int(g["n"]) == int(e["n"]) == 3
        for col in ("ref_path", "a_path", "b_path"):
            assert resolve_path(g[col], out / "labels.csv").resolve() == \
                resolve_path(e[col], GOLDEN / "expected_labels.csv").resolve()
        for col in ("a_id", "b_id", "a_codec", "b_codec", "a_bpp", "b_bpp", "ref_id"):
            assert g[col] == e[col]


def test_worker_filter_agreement_and_ranking(result, tmp_path):
    out, s = result
    w = pd.read_csv(out / "workers.csv").set_index("worker_id")
    assert list(w.index[w.kept]) == ["W1", "W2", "W3"]
    assert w.loc["W4", "sentinel_accuracy"] == 0.5 and "accuracy" in w.loc["W4", "reason"]
    assert w.loc["W5", "sentinel_correct"] == 0
    assert w.loc["W6", "reason"] == "no counted assignments"
    assert w.loc["W7", "reason"] == "blocked"
    assert s["kept_judgments"] == 15 and s["judgments"] == 35 and s["labels"] == 3
    assert math.isclose(s["agreement"]["pairwise_agreement"], 7 / 9)
    assert math.isclose(s["agreement"]["fleiss_kappa"], 0.55)
    assert s["simulated"] is False
    rank = pd.read_csv(out / "ranking.csv")
    assert list(rank.codec) == ["y", "z", "x"] and list(rank["rank"]) == [1, 2, 3]
    assert list(rank.wins) == [5, 3, 1] and list(rank.comparisons) == [6, 6, 6]
    assert (rank.elo_lo <= rank.elo).all() and (rank.elo <= rank.elo_hi).all()
    assert abs(rank.bt_log_strength.sum()) < 1e-9
    assert (out / "ranking.png").stat().st_size > 1000
    # scores went to the database
    db = StudyDB(tmp_path / "j.sqlite")
    assert db.get_worker("W4")["sentinel_score"] == 0.5


def test_rule_is_configurable(tmp_path):
    _load(tmp_path / "j.sqlite")
    s = aggregate(tmp_path / "j.sqlite", GOLDEN / "trials.csv", tmp_path / "o",
                  FilterRule(min_sentinels=2, min_accuracy=0.5))
    assert s["kept_workers"] == 4                  # W4 now passes
    assert main(["--db", str(tmp_path / "nope.sqlite"), "--out", str(tmp_path)]) == 2
    assert main(["--db", str(tmp_path / "j.sqlite"), "--trials", str(GOLDEN / "trials.csv"),
                 "--out", str(tmp_path / "cli"), "--min-accuracy", "1.0"]) == 0
    assert json.loads((tmp_path / "cli" / "aggregate.json").read_text())["kept_workers"] == 3


def test_bradley_terry_recovers_strengths():
    import numpy as np

    rng = np.random.default_rng(0)
    true = {"a": 1.0, "b": 0.0, "c": -1.0}
    wins: dict = {}
    for _ in range(4000):
        i, j = rng.choice(list(true), 2, replace=False)
        p = 1 / (1 + math.exp(true[j] - true[i]))
        w, l = (i, j) if rng.random() < p else (j, i)
        wins[w, l] = wins.get((w, l), 0) + 1
    est = bradley_terry(wins)
    for k in true:
        assert abs(est[k] - true[k]) < 0.12
    # an unbeaten player stays finite
    assert math.isfinite(bradley_terry({("a", "b"): 5})["a"])
