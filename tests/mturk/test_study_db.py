"""The study database: migrations, idempotent and atomic submissions, the publishing API."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from mturk.store.study_db import MIGRATIONS, ConflictError, DBError, StudyDB


def _trials(n_batches=2, per_batch=3):
    rows = []
    for b in range(n_batches):
        for i in range(per_batch):
            rows.append(dict(trial_id=f"t{b}{i}", batch_id=f"b{b}", ref_id="r", ref_path="r.png",
                             a_id=f"d{i}", a_path=f"d{i}.png", b_id=f"e{i}", b_path=f"e{i}.png",
                             a_codec="jpeg", b_codec="webp", a_bpp="0.5", b_bpp="0.4",
                             target_bpp="0.5", left="a" if i % 2 else "b",
                             kind="sentinel" if i == 0 else "test", expected="a" if i == 0 else ""))
    return rows


def _answers(db, batch, choice="a"):
    return [dict(trial_id=t["trial_id"], choice=choice, shown_left=t["left"], rt_ms=900)
            for t in db.batch_trials(batch)]


@pytest.fixture
def db(tmp_path):
    d = StudyDB(tmp_path / "j.sqlite")
    assert d.load_trials(_trials()) == 6
    return d


def test_migrations_and_wal(tmp_path, db):
    assert db.schema_version() == len(MIGRATIONS)
    raw = sqlite3.connect(db.path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # reopening runs nothing twice and keeps the data
    again = StudyDB(db.path)
    assert again.schema_version() == len(MIGRATIONS)
    assert again.counts()["trials"] == 6
    assert db.load_trials(_trials()) == 0           # idempotent
    changed = _trials()
    changed[0]["a_id"] = "other"
    with pytest.raises(DBError):
        db.load_trials(changed)


def test_audit_counts_what_the_writes_left(tmp_path, db):
    assert db.audit() == dict(per_assignment={}, duplicates=0, judgments=0, integrity="ok")
    db.add_hit("H1", "b0", "sandbox")
    db.add_hit("H2", "b1", "sandbox", max_assignments=2)
    db.accept_assignment("A1", "H1", "W1")
    db.accept_assignment("A2", "H2", "W1")
    db.accept_assignment("A3", "H2", "W2")           # accepted, never submitted: not counted
    db.record_submission("A1", "H1", "W1", _answers(db, "b0"))
    db.record_submission("A2", "H2", "W1", _answers(db, "b1"))
    db.record_submission("A2", "H2", "W1", _answers(db, "b1"))     # a retry writes nothing
    want = dict(per_assignment={"A1": 3, "A2": 3}, duplicates=0, judgments=6, integrity="ok")
    assert db.audit() == want
    assert StudyDB(db.path).audit() == want          # another connection (bench: after a kill)


def test_batch_order_and_fields(db):
    rows = db.batch_trials("b1")
    assert [r["trial_id"] for r in rows] == ["t10", "t11", "t12"]
    assert rows[0]["expected"] == "a" and rows[1]["expected"] == ""
    assert rows[1]["left"] == "a" and rows[0]["left"] == "b"


def test_submission_idempotent_and_conflict(db):
    db.add_hit("H1", "b0", "sandbox", reward="0.50", unique_request_token="tok1")
    db.accept_assignment("A1", "H1", "W1")
    ans = _answers(db, "b0")
    r = db.record_submission("A1", "H1", "W1", ans)
    assert r.status == "created" and r.n_judgments == 3
    r2 = db.record_submission("A1", "H1", "W1", list(reversed(ans)))
    assert r2.status == "duplicate"
    assert len(db.judgments()) == 3
    with pytest.raises(ConflictError):
        db.record_submission("A1", "H1", "W1", _answers(db, "b0", choice="b"))
    with pytest.raises(ConflictError):
        db.record_submission("A1", "H1", "W2", ans)
    assert len(db.judgments()) == 3
    assert db.get_assignment("A1")["status"] == "submitted"


def test_bad_submissions_write_nothing(db):
    db.add_hit("H1", "b0", "sandbox")
    db.accept_assignment("A1", "H1", "W1")
    ans = _answers(db, "b0")
    with pytest.raises(DBError):                  # unknown assignment
        db.record_submission("A9", "H1", "W1", ans)
    with pytest.raises(DBError):                  # incomplete
        db.record_submission("A1", "H1", "W1", ans[:2])
    with pytest.raises(DBError):                  # a trial of another batch
        db.record_submission("A1", "H1", "W1", ans[:2] + _answers(db, "b1")[:1])
    bad = [dict(a) for a in ans]
    bad[1]["shown_left"] = "b" if bad[1]["shown_left"] == "a" else "a"
    with pytest.raises(DBError):                  # tampered side
        db.record_submission("A1", "H1", "W1", bad)
    with pytest.raises(DBError):                  # unknown HIT
        db.record_submission("A1", "H9", "W1", ans)
    assert db.judgments() == []
    assert db.get_assignment("A1")["status"] == "accepted"


def test_hits_tokens_quals_bonuses_workers(db):
    h = db.add_hit("H1", "b0", "live", unique_request_token="tok", reward="0.5",
                   max_assignments=5, hit_type_id="T1", expires_at="2030-01-01T00:00:00+00:00")
    assert h["reward"] == "0.50" and h["max_assignments"] == 5
    assert db.add_hit("H2", "b0", "live", unique_request_token="tok")["hit_id"] == "H1"
    assert db.hit_by_token("tok")["hit_id"] == "H1"
    assert [x["hit_id"] for x in db.list_hits(mode="live")] == ["H1"]
    db.set_hit_status("H1", "disposed")
    assert db.list_hits(status="disposed")[0]["hit_id"] == "H1"
    with pytest.raises(DBError):
        db.add_hit("H3", "nope", "live")
    with pytest.raises(DBError):
        db.add_hit("H3", "b0", "production")
    db.set_qualification_type("plic-2afc", "sandbox", "Q1")
    db.set_qualification_type("plic-2afc", "sandbox", "Q2")
    assert db.get_qualification_type("plic-2afc", "sandbox") == "Q2"
    assert db.get_qualification_type("plic-2afc", "live") is None
    db.upsert_assignment("A1", "H1", "W1", "submitted", submitted_at="2026-01-01T00:00:00Z")
    db.set_assignment_status("A1", "approved", feedback="thanks")
    assert db.get_assignment("A1")["feedback"] == "thanks"
    b = db.add_bonus("A1", "W1", "0.1", "accuracy", "bonus-A1")
    assert b["amount"] == "0.10" and db.add_bonus("A1", "W1", "0.10", "x", "bonus-A1") == b
    with pytest.raises(ConflictError):
        db.add_bonus("A1", "W1", "0.20", "x", "bonus-A1")
    with pytest.raises(DBError):
        db.add_bonus("A1", "W1", "0.001", "x", "bonus-2")
    assert len(db.list_bonuses(unpaid_only=True)) == 1
    db.mark_bonus_paid("bonus-A1")
    assert db.list_bonuses(unpaid_only=True) == []
    db.set_worker_score("W1", 3, 4)
    db.block_worker("W1", "failed sentinels")
    assert db.is_blocked("W1") and db.get_worker("W1")["sentinel_score"] == 0.75
    db.unblock_worker("W1")
    assert not db.is_blocked("W1")


def test_local_claims_spread_over_batches(db):
    a1 = db.claim_local_assignment("P1")
    a2 = db.claim_local_assignment("P2")
    assert {a1["hit_id"], a2["hit_id"]} == {"local-b0", "local-b1"}
    # a second visit before submitting: the same assignment, not a new one
    assert db.claim_local_assignment("P1")["assignment_id"] == a1["assignment_id"]
    assert a1["verified_by"] == "token" and a1["verified_at"]
    db.record_submission(a1["assignment_id"], a1["hit_id"], "P1",
                         _answers(db, db.get_hit(a1["hit_id"])["batch_id"]))
    a3 = db.claim_local_assignment("P1")
    assert a3["hit_id"] != a1["hit_id"]
    db.record_submission(a3["assignment_id"], a3["hit_id"], "P1",
                         _answers(db, db.get_hit(a3["hit_id"])["batch_id"]))
    assert db.claim_local_assignment("P1") is None          # P1 has every batch
    assert db.get_hit("local-b0")["mode"] == "local"


def test_local_claims_respect_capacity_and_expire(db):
    assert db.claim_local_assignment("P1", max_per_batch=1) is not None
    assert db.claim_local_assignment("P2", max_per_batch=1) is not None
    assert db.claim_local_assignment("P3", max_per_batch=1) is None      # both batches full
    # P1 and P2 walked away without submitting: after the timeout their places free up
    time.sleep(0.01)                                # timestamps have millisecond resolution
    assert db.claim_local_assignment("P3", max_per_batch=1, stale_after_s=0) is not None


def test_concurrent_submissions_exactly_once(tmp_path):
    db = StudyDB(tmp_path / "c.sqlite")
    db.load_trials(_trials(n_batches=1, per_batch=5))
    db.add_hit("H", "b0", "local", max_assignments=20)
    ans = _answers(db, "b0")
    for i in range(20):
        db.accept_assignment(f"A{i}", "H", f"W{i}")
    errors = []

    def work(k):
        try:
            for i in range(20):            # every thread submits every assignment
                db.record_submission(f"A{i}", "H", f"W{i}", ans)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert db.counts()["judgments"] == 20 * 5
