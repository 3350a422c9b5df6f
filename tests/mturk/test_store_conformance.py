"""The study database's API, the same on both backends: a SQLite file and a real PostgreSQL
server (a throwaway cluster; skipped with one line where PostgreSQL is not installed)."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

from mturk.store.study_db import (
    MIGRATIONS,
    AlreadySubmittedError,
    ConflictError,
    DBError,
    HitFullError,
    StudyDB,
    UnknownIdError,
)


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
def db(store_url):
    d = StudyDB(store_url)
    assert d.load_trials(_trials()) == 6
    yield d
    d.dispose()


def test_backend_follows_the_url(store_url, db):
    assert type(db).__name__ == ("PgStudyDB" if store_url.startswith("postgresql://")
                                 else "StudyDB")
    assert db.schema_version() == len(MIGRATIONS)
    again = StudyDB(db.path)                     # the same store, opened again: nothing re-run
    assert again.schema_version() == len(MIGRATIONS) and again.load_trials(_trials()) == 0
    assert again.secret() == db.secret() and len(db.secret()) == 32
    again.dispose()
    bad = _trials()
    bad[0]["b_id"] = "other"
    with pytest.raises(DBError):
        db.load_trials(bad)


def test_batches_trials_and_order(db):
    assert db.batch_ids() == ["b0", "b1"] and db.batch_ids("study") == ["b0", "b1"]
    assert [t["trial_id"] for t in db.batch_trials("b1")] == ["t10", "t11", "t12"]
    assert db.trial("t01")["left"] == "a" and db.trial("nope") is None
    # text sorts by bytes on both (SQLite's order): upper case before lower, '-' before digits
    db.add_hit("hb", "b0", "sandbox")
    for i, aid in enumerate(("ab", "AB", "a-b", "a1")):
        db.accept_assignment(aid, "hb", f"W{i}")
    assert [a["assignment_id"] for a in db.list_assignments()] == sorted(["ab", "AB", "a-b", "a1"])


def test_submission_idempotent_and_conflict(db):
    db.add_hit("H1", "b0", "sandbox", reward="0.50", unique_request_token="tok1")
    db.accept_assignment("A1", "H1", "W1")
    ans = _answers(db, "b0")
    r = db.record_submission("A1", "H1", "W1", ans)
    assert r.status == "created" and r.n_judgments == 3
    assert db.record_submission("A1", "H1", "W1", list(reversed(ans))).status == "duplicate"
    with pytest.raises(AlreadySubmittedError):
        db.record_submission("A1", "H1", "W1", _answers(db, "b0", choice="b"))
    with pytest.raises(ConflictError):
        db.record_submission("A1", "H1", "W2", ans)
    assert len(db.judgments()) == 3 and len(db.judgments("A1")) == 3
    assert db.get_assignment("A1")["status"] == "submitted"
    assert db.audit() == dict(per_assignment={"A1": 3}, duplicates=0, judgments=3,
                              integrity="ok")


def test_bad_submissions_write_nothing(db):
    db.add_hit("H1", "b0", "sandbox")
    db.accept_assignment("A1", "H1", "W1")
    ans = _answers(db, "b0")
    with pytest.raises(UnknownIdError):
        db.record_submission("A9", "H1", "W1", ans)
    with pytest.raises(DBError):
        db.record_submission("A1", "H1", "W1", ans[:2])
    with pytest.raises(DBError):
        db.record_submission("A1", "H1", "W1", ans[:2] + _answers(db, "b1")[:1])
    with pytest.raises(UnknownIdError):
        db.record_submission("A1", "H9", "W1", ans)
    assert db.judgments() == [] and db.get_assignment("A1")["status"] == "accepted"
    before = db.counts()
    with pytest.raises(DBError):
        db.add_hit("H3", "nope", "live")
    assert db.counts() == before


def test_hits_quals_bonuses_workers(db):
    h = db.add_hit("H1", "b0", "live", unique_request_token="tok", reward="0.5",
                   max_assignments=5, hit_type_id="T1", expires_at="2030-01-01T00:00:00+00:00")
    assert h["reward"] == "0.50" and h["max_assignments"] == 5
    assert db.add_hit("H2", "b0", "live", unique_request_token="tok")["hit_id"] == "H1"
    assert db.hit_by_token("tok")["hit_id"] == "H1"
    db.update_hit("H1", max_assignments=7)
    assert db.get_hit("H1")["max_assignments"] == 7 and db.get_hit("H1")["status"] == "assignable"
    db.set_hit_status("H1", "disposed")
    assert [x["hit_id"] for x in db.list_hits(status="disposed")] == ["H1"]
    db.set_qualification_type("plic-2afc", "sandbox", "Q1")
    db.set_qualification_type("plic-2afc", "sandbox", "Q2")
    assert db.get_qualification_type("plic-2afc", "sandbox") == "Q2"
    assert db.get_qualification_type("plic-2afc", "live") is None
    db.upsert_assignment("A1", "H1", "W1", "submitted", submitted_at="2026-01-01T00:00:00Z")
    db.upsert_assignment("A1", "H1", "W1", "approved")
    assert db.get_assignment("A1")["submitted_at"] == "2026-01-01T00:00:00Z"
    db.set_assignment_status("A1", "approved", feedback="thanks")
    assert db.get_assignment("A1")["feedback"] == "thanks"
    b = db.add_bonus("A1", "W1", "0.1", "accuracy", "bonus-A1")
    assert b["amount"] == "0.10" and db.add_bonus("A1", "W1", "0.10", "x", "bonus-A1") == b
    with pytest.raises(ConflictError):
        db.add_bonus("A1", "W1", "0.20", "x", "bonus-A1")
    db.add_bonus("A1", "W1", "0.2", "more", "bonus-A1b")
    assert [x["bonus_id"] for x in db.list_bonuses()] == [b["bonus_id"], b["bonus_id"] + 1]
    db.mark_bonus_paid("bonus-A1")
    assert [x["unique_token"] for x in db.list_bonuses(unpaid_only=True)] == ["bonus-A1b"]
    db.set_worker_score("W1", 3, 4)
    db.block_worker("W1", "failed sentinels")
    assert db.is_blocked("W1") and db.get_worker("W1")["sentinel_score"] == 0.75
    db.unblock_worker("W1")
    assert not db.is_blocked("W1")
    db.set_worker_flags("W1", ["fast", "sides"])
    assert db.get_worker("W1")["qc_flags"] == "fast,sides"


def test_local_claims(db):
    a1 = db.claim_local_assignment("P1")
    a2 = db.claim_local_assignment("P2")
    assert {a1["hit_id"], a2["hit_id"]} == {"local-b0", "local-b1"}
    assert db.claim_local_assignment("P1")["assignment_id"] == a1["assignment_id"]
    assert a1["verified_by"] == "token" and a1["verified_at"]
    db.record_submission(a1["assignment_id"], a1["hit_id"], "P1",
                         _answers(db, db.get_hit(a1["hit_id"])["batch_id"]))
    a3 = db.claim_local_assignment("P1")
    assert a3["hit_id"] != a1["hit_id"]
    time.sleep(0.01)
    assert db.claim_local_assignment("P4", max_per_batch=1, stale_after_s=0) is not None


def test_places_are_held_by_verified_assignments_only(db):
    db.add_hit("H1", "b0", "sandbox", max_assignments=2)
    for i in range(5):                      # invented ids: recorded, never a lockout
        db.accept_assignment(f"FORGED{i}", "H1", f"EVIL{i}")
    db.accept_assignment("REAL1", "H1", "W1")
    db.accept_assignment("REAL2", "H1", "W2")
    assert db.verify_assignment("REAL1", "H1", "W1")
    assert not db.verify_assignment("REAL2", "H1", "SOMEONE")
    db.accept_assignment("LATE", "H1", "W3")               # one verified: a place is left
    assert db.verify_assignment("REAL2", "H1", "W2")
    with pytest.raises(HitFullError):                      # both places verified: done
        db.accept_assignment("LATER", "H1", "W4")
    assert db.get_assignment("LATER") is None
    assert db.accept_assignment("FORGED0", "H1", "EVIL0")["assignment_id"] == "FORGED0"
    assert {a["assignment_id"] for a in db.unverified_assignments()} == \
        {f"FORGED{i}" for i in range(5)} | {"LATE"}


def test_ratings(store_url):
    db = StudyDB(store_url)
    db.load_trials(_trials(n_batches=1))
    db.add_hit("H", "b0", "sandbox")
    db.accept_assignment("A", "H", "W")
    ans = [dict(trial_id=t["trial_id"], score=s, rt_ms=500)
           for t, s in zip(db.batch_trials("b0"), (1, 3, 5))]
    assert db.record_ratings("A", "H", "W", "acr", ans).status == "created"
    assert db.record_ratings("A", "H", "W", "acr", ans[::-1]).status == "duplicate"
    with pytest.raises(AlreadySubmittedError):
        db.record_ratings("A", "H", "W", "acr", [dict(a, score=2) for a in ans])
    assert [r["score"] for r in db.ratings("A")] == [1, 3, 5]
    f = db.ratings_frame()
    assert list(f["score"]) == [1, 3, 5] and f["rt_ms"].dtype.kind == "i"
    db.dispose()


def test_frames_are_the_same_on_both_backends(pg_cluster, tmp_path):
    frames = []
    for url in (str(tmp_path / "j.sqlite"), pg_cluster.create_database()):
        db = StudyDB(url)
        db.load_trials(_trials())
        for b in ("b0", "b1"):
            db.add_hit(f"H{b}", b, "sandbox", max_assignments=3)
            for i in range(2):
                db.accept_assignment(f"A{b}{i}", f"H{b}", f"W{i}", accepted_at="2026-01-01")
                db.record_submission(f"A{b}{i}", f"H{b}", f"W{i}", _answers(db, b, "ab"[i]),
                                     submitted_at="2026-01-02")
        db.verify_assignment("Ab00", "Hb0", "W0")
        db.block_worker("W1", "x")
        f = db.judgments_frame().drop(columns=["verified_at"])
        frames.append(f)
        db.dispose()
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert len(frames[0]) == 12


def test_concurrent_writers_exactly_once(store_url):
    db = StudyDB(store_url)
    db.load_trials(_trials(n_batches=1, per_batch=5))
    db.add_hit("H", "b0", "sandbox", max_assignments=3)
    ans = _answers(db, "b0")
    errors, created, full = [], [], []

    def work(k):
        try:
            for i in range(12):         # every thread accepts and submits every assignment
                try:
                    db.accept_assignment(f"A{i}", "H", f"W{i}")
                except HitFullError:
                    full.append(i)
                    continue
                r = db.record_submission(f"A{i}", "H", f"W{i}", ans)
                if r.status == "created":
                    created.append(i)
                if i % 3 == 0:
                    db.verify_assignment(f"A{i}", "H", f"W{i}")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(created) == sorted(set(created))          # each assignment stored once
    a = db.audit()
    assert a["duplicates"] == 0 and a["judgments"] == 5 * len(created)
    verified = [x for x in db.list_assignments() if x["verified_at"]]
    assert len(verified) <= 3                                # places never overfilled
    db.dispose()


def test_concurrent_lab_claims_keep_the_cap_and_one_assignment_per_visit(store_url):
    db = StudyDB(store_url)
    db.load_trials(_trials())
    got, errors = [], []

    def claim(wid, cap):
        try:
            got.append((wid, db.claim_local_assignment(wid, max_per_batch=cap)))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=claim, args=(f"P{k}", 1)) for k in range(6)]
    threads += [threading.Thread(target=claim, args=("SAME", None)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    capped = [a for w, a in got if w != "SAME" and a is not None]
    assert len(capped) <= 2 and len({a["hit_id"] for a in capped}) == len(capped)
    same = {a["assignment_id"] for w, a in got if w == "SAME"}
    assert len(same) == 1                           # four visits at once: one assignment
    db.dispose()
