"""``mturk.market.manage``: status with cost so far, extend, expire, orphan cleanup."""

from __future__ import annotations

from decimal import Decimal

import pytest

from mturk.market import HitTypeSpec
from mturk.market import collect as C
from mturk.market import manage as M
from mturk.market import publish as P
from mturk.market.memory import InMemoryMarket
from mturk.store.study_db import StudyDB
from tests.mturk.test_collect import work
from tests.mturk.test_market_backends import Clock
from tests.mturk.test_publish import URL, trial_rows

QUIET = {"out": lambda s: None}


@pytest.fixture
def study(tmp_path):
    db = StudyDB(tmp_path / "study.sqlite")
    db.load_trials(trial_rows(n_batches=3, per_batch=4))
    m = InMemoryMarket(clock=Clock())
    P.publish(P.PublishConfig(external_url=URL, assignments=2, reward="0.50", min_window="none"),
              m, db, "local", **QUIET)
    return db, m, {h["batch_id"]: h["hit_id"] for h in db.list_hits()}


def test_status_cost_so_far(study):
    db, m, hits = study
    work(m, db, hits["b0"], "b0", "W1", good=True)
    work(m, db, hits["b0"], "b0", "W2", good=False)
    C.collect(C.CollectConfig(bonus="0.20", reject_min_wrong=1), m, db, "local", **QUIET)
    lines = []
    money = M.status(m, db, "local", out=lines.append, refresh=True)
    # one approved ($0.50 + $0.10 fee) and one bonus ($0.20 + $0.04 fee)
    assert money["spent"] == Decimal("0.84")
    # b1, b2 fully open (2 x $0.60 each); b0 is full
    assert money["committed"] == Decimal("2.40")
    assert any(hits["b0"] in line and " 1 " in line for line in lines)
    assert m.get_account_balance() == Decimal("10000.00") - money["spent"]


def test_extend_adds_assignments_once_and_time(study):
    db, m, hits = study
    db.claim_local_assignment("P1")  # a lab HIT in the same database is left alone
    assert [h["hit_id"] for h in M._select(db, "local", (), ())] == list(hits.values())
    M.extend(m, db, [db.get_hit(hits["b0"])], add=2, hours=24, **QUIET)
    assert m.get_hit(hits["b0"]).max_assignments == 4
    assert db.get_hit(hits["b0"])["max_assignments"] == 4
    # a retry of the same extension (same starting point) adds nothing more
    m.create_additional_assignments(hits["b0"], 2, f"plic-extend-{hits['b0']}-2-2")
    assert m.get_hit(hits["b0"]).max_assignments == 4


def test_expire(study):
    db, m, hits = study
    M.expire(m, db, [db.get_hit(hits["b1"])], **QUIET)
    assert m.get_hit(hits["b1"]).status == "Reviewable"
    assert db.get_hit(hits["b1"])["status"] == "expired"
    assert m.get_hit(hits["b0"]).status == "Assignable"


def test_cleanup_adopts_unrecorded_hits_and_removes_orphans(study):
    db, m, hits = study
    tid = m.get_hit(hits["b0"]).hit_type_id
    # created for batch b0 in round 2, the process died before recording it
    lost = m.create_hit(tid, "<x/>", 2, 3600, P.hit_token("local", "b0", 2))
    # an orphan from an older study (batch unknown here)
    orphan = m.create_hit(tid, "<x/>", 1, 3600, P.hit_token("local", "gone", 1))
    # someone else's HIT on the same account
    theirs = m.create_hit(m.create_hit_type(HitTypeSpec("x", "y", Decimal("1"), 60, 60)),
                          "<x/>", 1, 3600, "other-tool-token", annotation="other")
    dry = M.cleanup(m, db, "local", dry_run=True, **QUIET)
    assert dry["adopted"] == [lost.hit_id] and db.get_hit(lost.hit_id) is None
    res = M.cleanup(m, db, "local", **QUIET)
    assert res["adopted"] == [lost.hit_id] and db.get_hit(lost.hit_id)["batch_id"] == "b0"
    assert res["expired"] == [orphan.hit_id] and res["deleted"] == [orphan.hit_id]
    remaining = {h.hit_id for h in m.list_hits()}
    assert orphan.hit_id not in remaining and theirs.hit_id in remaining
    assert M.cleanup(m, db, "local", **QUIET) == {"adopted": [], "expired": [], "deleted": []}


def test_cleanup_keeps_orphans_with_work_to_review(study):
    db, m, hits = study
    tid = m.get_hit(hits["b0"]).hit_type_id
    orphan = m.create_hit(tid, "<x/>", 1, 3600, P.hit_token("local", "gone", 1))
    m.submit_assignment(orphan.hit_id, "W1", {})
    res = M.cleanup(m, db, "local", **QUIET)
    assert res["deleted"] == [] and orphan.hit_id in {h.hit_id for h in m.list_hits()}


def test_delete_done_only_deletes_finished_hits(study):
    db, m, hits = study
    work(m, db, hits["b0"], "b0", "W1")
    C.collect(C.CollectConfig(), m, db, "local", **QUIET)
    M.expire(m, db, [db.get_hit(hits["b0"]), db.get_hit(hits["b1"])], **QUIET)
    res = M.cleanup(m, db, "local", delete_done=True, **QUIET)
    assert sorted(res["deleted"]) == sorted([hits["b0"], hits["b1"]])
    assert db.get_hit(hits["b0"])["status"] == "disposed"
    assert db.get_hit(hits["b2"])["status"] == "assignable"
    assert len(db.judgments()) == 4  # the data stays


def test_cli(tmp_path, capsys):
    db = StudyDB(tmp_path / "s.sqlite")
    db.load_trials(trial_rows(n_batches=2))
    base = ["--db", str(db.path), "--backend", "memory", "--memory-state", str(tmp_path / "m")]
    assert P.main(base + ["--external-url", URL, "--min-window", "none"]) == 0
    assert M.main(["extend"] + base + ["--assignments", "1"]) == 0
    assert M.main(["expire"] + base + ["--batches", "b0"]) == 0
    assert M.main(["status"] + base + ["--refresh"]) == 0
    out = capsys.readouterr().out
    assert "2 HITs (local)" in out and "spent $0.00" in out
    assert M.main(["cleanup"] + base + ["--live"]) == 2
    assert M.main(["extend"] + base) == 2


def test_unblock(study):
    db, m, hits = study
    work(m, db, hits["b0"], "b0", "W2", good=False)
    work(m, db, hits["b1"], "b1", "W2", good=False)
    C.collect(C.CollectConfig(reject_min_wrong=1), m, db, "local", **QUIET)
    qid = db.get_qualification_type("plic-soft-block-v1", "local")
    assert db.is_blocked("W2") and m.worker_qualification(qid, "W2") == 1
    M.unblock(m, db, "local", ["W2"], "plic-soft-block-v1", **QUIET)
    assert not db.is_blocked("W2") and m.worker_qualification(qid, "W2") is None
    assert C.collect(C.CollectConfig(reject_min_wrong=1), m, db, "local", **QUIET).blocked == []
    assert not db.is_blocked("W2")  # the lift holds until W2 fails checks again
    work(m, db, hits["b2"], "b2", "W2", good=False)
    assert C.collect(C.CollectConfig(reject_min_wrong=1), m, db, "local",
                     **QUIET).blocked == ["W2"]
