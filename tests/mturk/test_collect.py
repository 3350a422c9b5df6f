"""``mturk.market.collect``: judgments stored once, the review rule, soft blocks, bonuses paid
once."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from mturk.market import MarketError
from mturk.market import collect as C
from mturk.market import publish as P
from mturk.market.memory import InMemoryMarket
from mturk.store.study_db import StudyDB
from tests.mturk.test_market_backends import Clock
from tests.mturk.test_publish import URL, trial_rows

QUIET = {"out": lambda s: None}


@pytest.fixture
def study(tmp_path):
    db = StudyDB(tmp_path / "study.sqlite")
    db.load_trials(trial_rows(n_batches=3, per_batch=4))
    m = InMemoryMarket(clock=Clock())
    P.publish(P.PublishConfig(external_url=URL, assignments=2, min_window="none"), m, db, "local",
              **QUIET)
    hits = {h["batch_id"]: h["hit_id"] for h in db.list_hits()}
    return db, m, hits


def page_answers(db, batch, good=True, hit_id="x", aid="y", wid="z", scope=None):
    """What the HIT page posts: page trial ids (keyed by ``scope``, the assignment id unless
    given) and sides per trial; sentinels right when ``good``."""
    keys, out = db.keys(), []
    for t in db.batch_trials(batch):
        if t["kind"] == "sentinel":
            right_side = "left" if t["expected"] == t["left"] else "right"
            side = right_side if good else ("right" if right_side == "left" else "left")
        else:
            side = "left"
        out.append({"trial_id": keys.page_trial_id(scope or aid, t["trial_id"]), "side": side,
                    "rt_ms": 1500})
    return {"answers": json.dumps({"assignment_id": aid, "hit_id": hit_id, "worker_id": wid,
                                   "answers": out})}


def work(m, db, hit_id, batch, worker, good=True):
    """A worker accepts the HIT on the market and submits what the page posts; the id."""
    aid = m.accept(hit_id, worker)
    m.clock.t += timedelta(seconds=40)          # 4 comparisons in 40 s: not too fast
    m.submit(aid, page_answers(db, batch, good=good, hit_id=hit_id, aid=aid, wid=worker))
    return aid


def run(db, m, **kw):
    kw.setdefault("reject_min_wrong", 1)  # these batches hold one sentinel each
    return C.collect(C.CollectConfig(**kw), m, db, "local", **QUIET)


def test_collect_stores_reviews_and_is_idempotent(study):
    db, m, hits = study
    good = work(m, db, hits["b0"], "b0", "W1", good=True)
    bad = work(m, db, hits["b0"], "b0", "W2", good=False)
    rep = run(db, m)
    assert rep.approved == [good] and rep.rejected == [bad]
    assert rep.new_judgments == 8 and len(db.judgments()) == 8
    on_market = {a.assignment_id: a for a in m.list_assignments(hits["b0"])}
    assert on_market[good].status == "Approved" and on_market[bad].status == "Rejected"
    assert "1 of 1 check comparisons" in on_market[bad].feedback
    assert db.get_assignment(good)["status"] == "approved"
    assert db.get_assignment(bad)["status"] == "rejected"
    assert db.get_assignment(bad)["feedback"] == on_market[bad].feedback
    # choices map back from sides through the trial's left
    sentinel = next(j for j in db.judgments(good) if j["trial_id"] == "t03")
    assert sentinel["choice"] == "a"
    assert db.get_worker("W1")["sentinel_score"] == 1.0
    assert db.get_worker("W2")["sentinel_score"] == 0.0

    again = run(db, m)
    assert again.new_judgments == 0 and again.approved == [] and again.rejected == []
    assert len(db.judgments()) == 8


def test_server_record_is_kept_and_conflicts_reported(study):
    db, m, hits = study
    aid = m.accept(hits["b1"], "W1")
    form = page_answers(db, "b1", good=True, hit_id=hits["b1"], aid=aid, wid="W1")
    # the study server recorded the same answers when the page posted them
    from mturk.web.twoafc_page import parse_answers

    payload = json.loads(form["answers"])
    trials = {t["trial_id"]: t for t in db.batch_trials("b1")}
    minute_ago = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    db.accept_assignment(aid, hits["b1"], "W1", accepted_at=minute_ago)
    db.record_submission(aid, hits["b1"], "W1",
                         parse_answers(payload, trials, db.keys().page_ids(aid, list(trials)))[1])
    assert db.get_assignment(aid)["verified_at"] is None      # the server's word alone
    m.submit(aid, form)
    rep = run(db, m)
    assert rep.new_judgments == 0 and rep.conflicts == [] and rep.approved == [aid]
    assert rep.verified == [aid] and db.get_assignment(aid)["verified_by"] == "mturk"

    # a second worker whose server record differs from what MTurk holds
    aid2 = m.accept(hits["b1"], "W3")
    db.accept_assignment(aid2, hits["b1"], "W3", accepted_at=minute_ago)
    bad = json.loads(page_answers(db, "b1", good=False, aid=aid2)["answers"])
    db.record_submission(aid2, hits["b1"], "W3",
                         parse_answers(bad, trials, db.keys().page_ids(aid2, list(trials)))[1])
    m.clock.t += timedelta(seconds=40)
    m.submit(aid2, page_answers(db, "b1", good=True, hit_id=hits["b1"], aid=aid2, wid="W3"))
    rep = run(db, m)
    assert rep.conflicts == [aid2]
    # reviewed on the server's record (which fails the sentinel)
    assert rep.rejected == [aid2]


def test_unreadable_answers_are_left_for_a_person(study):
    db, m, hits = study
    aid = m.submit_assignment(hits["b2"], "W1", {"comment": "no answers field"})
    aid2 = m.submit_assignment(hits["b2"], "W2", {"answers": "{not json"})
    aid3 = m.accept(hits["b1"], "W3")      # page ids of another assignment: not this page's
    m.submit(aid3, page_answers(db, "b1", hit_id=hits["b1"], aid="OTHER", wid="W3"))
    rep = run(db, m)
    assert sorted(rep.unreadable) == sorted([aid, aid2, aid3]) and not rep.rejected
    assert {a.status for a in m.list_assignments(hits["b2"])} == {"Submitted"}
    assert db.get_assignment(aid)["status"] == "submitted"


def test_repeat_spammer_is_soft_blocked_and_cannot_take_more_hits(study):
    db, m, hits = study
    work(m, db, hits["b0"], "b0", "W2", good=False)
    work(m, db, hits["b1"], "b1", "W2", good=False)
    rep = run(db, m, block_after=2)
    assert len(rep.rejected) == 2 and rep.blocked == ["W2"]
    assert db.is_blocked("W2")
    qid = db.get_qualification_type("plic-soft-block-v1", "local")
    assert m.worker_qualification(qid, "W2") == 1
    with pytest.raises(MarketError):  # the HIT type requires the block to not exist
        m.accept(hits["b2"], "W2")
    assert run(db, m).blocked == []  # not blocked twice


def test_bonus_paid_once_even_after_a_crash(study, monkeypatch):
    db, m, hits = study
    good = work(m, db, hits["b0"], "b0", "W1", good=True)
    work(m, db, hits["b0"], "b0", "W2", good=False)
    real = db.mark_bonus_paid

    def crash(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(db, "mark_bonus_paid", crash)
    with pytest.raises(KeyboardInterrupt):
        run(db, m, bonus="0.25")
    assert len(m.bonuses()) == 1  # paid on the market, not yet marked in the database
    monkeypatch.setattr(db, "mark_bonus_paid", real)
    m.s["bonuses"] = {"expired-token": m.s["bonuses"].popitem()[1]}  # tokens expire after 24 h
    rep = run(db, m, bonus="0.25")
    assert rep.bonuses_paid == [good]
    assert len(m.bonuses()) == 1 and m.bonuses()[0]["assignment_id"] == good
    assert run(db, m, bonus="0.25").bonuses_paid == []
    assert db.list_bonuses()[0]["paid_at"] and Decimal(db.list_bonuses()[0]["amount"]) == \
        Decimal("0.25")


def test_crash_between_review_and_record_is_completed_by_the_next_run(study, monkeypatch):
    db, m, hits = study
    aid = work(m, db, hits["b0"], "b0", "W1", good=True)
    real = db.set_assignment_status

    def crash(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(db, "set_assignment_status", crash)
    with pytest.raises(KeyboardInterrupt):
        run(db, m)
    assert db.get_assignment(aid)["status"] == "submitted"
    monkeypatch.setattr(db, "set_assignment_status", real)
    calls = []
    monkeypatch.setattr(m, "approve_assignment", lambda *a, **k: calls.append(a))
    rep = run(db, m)
    assert calls == [] and rep.approved == []  # not approved twice
    assert db.get_assignment(aid)["status"] == "approved"


def test_hits_unknown_to_the_market_are_skipped(study):
    db, m, hits = study
    claimed = db.claim_local_assignment("P1")  # a lab participant, through the study server
    assert claimed and claimed["hit_id"].startswith("local-")
    aid = work(m, db, hits["b0"], "b0", "W1")
    rep = run(db, m)
    assert rep.approved == [aid]


def test_dry_run_reviews_nothing(study):
    db, m, hits = study
    work(m, db, hits["b0"], "b0", "W2", good=False)
    rep = run(db, m, dry_run=True)
    assert rep.rejected == [] and {a.status for a in m.list_assignments(hits["b0"])} == \
        {"Submitted"}


def test_the_rule():
    assert C.decide(0, 0, 0.5)[0] == "Approved"
    assert C.decide(1, 2, 0.5)[0] == "Approved"
    assert C.decide(1, 3, 0.5)[0] == "Rejected"
    assert "2 of 3" in C.decide(1, 3, 0.5)[1]
    assert C.decide(0, 1, 0.5)[0] == "Approved"  # one slip is not spam (min_wrong 2)
    assert C.decide(0, 1, 0.5, min_wrong=1)[0] == "Rejected"
    assert C.decide(8, 10, 0.5)[0] == "Approved"
    assert C.decide(2, 10, 0.5)[0] == "Rejected"


def test_one_wrong_sentinel_is_approved_by_default(study):
    db, m, hits = study
    aid = work(m, db, hits["b0"], "b0", "W2", good=False)
    rep = C.collect(C.CollectConfig(), m, db, "local", **QUIET)
    assert rep.approved == [aid] and db.get_worker("W2")["sentinel_score"] == 0.0


def test_cli_collect_with_memory_backend(tmp_path, capsys):
    db = StudyDB(tmp_path / "s.sqlite")
    db.load_trials(trial_rows(n_batches=1))
    state = tmp_path / "m.json"
    base = ["--db", str(db.path), "--backend", "memory", "--memory-state", str(state)]
    assert P.main(base + ["--external-url", URL, "--min-window", "none"]) == 0
    m = InMemoryMarket(state_path=state, clock=Clock())
    work(m, db, db.list_hits()[0]["hit_id"], "b0", "W1")
    assert C.main(base) == 0
    assert "approved 1" in capsys.readouterr().out
    assert C.main(base + ["--live"]) == 2


# -- the boto3 path under Stubber ------------------------------------------------------------------

def test_boto_collect_reviews_blocks_and_pays_once(tmp_path):
    pytest.importorskip("botocore")

    from botocore.stub import Stubber

    from mturk.market import Backoff
    from mturk.market import questions as Q
    from mturk.market.boto import Boto3Market
    from tests.mturk.test_market_backends import boto_client

    db = StudyDB(tmp_path / "s.sqlite")
    db.load_trials(trial_rows(n_batches=1))
    hid, good, bad = "H" * 30, "A" * 29 + "1", "A" * 29 + "2"
    db.add_hit(hid, "b0", "sandbox", reward="0.50", max_assignments=2)
    db.set_qualification_type("plic-soft-block-v1", "sandbox", "B" * 30)
    client = boto_client()
    stub = Stubber(client)
    stub.activate()
    market = Boto3Market(client, backoff=Backoff(sleep=lambda s: None))
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def asg(aid, worker, status, good_answers):
        fields = page_answers(db, "b0", good=good_answers, aid=aid)
        return {"AssignmentId": aid, "WorkerId": worker, "HITId": hid,
                "AssignmentStatus": status, "Answer": Q.answers_xml(fields), "SubmitTime": now,
                "AcceptTime": now - timedelta(minutes=2)}

    listing = {"HITId": hid, "AssignmentStatuses": ["Submitted", "Approved", "Rejected"],
               "MaxResults": 100}
    stub.add_response("list_assignments_for_hit",
                      {"NumResults": 2, "Assignments": [asg(good, "W1", "Submitted", True),
                                                        asg(bad, "W2", "Submitted", False)]},
                      listing)
    stub.add_response("approve_assignment", {},
                      {"AssignmentId": good, "RequesterFeedback": C.THANKS})
    stub.add_client_error("reject_assignment", "ThrottlingException", "Rate exceeded")
    stub.add_response("reject_assignment", {},
                      {"AssignmentId": bad, "RequesterFeedback": C.decide(0, 1, 0.5, 1)[1]})
    stub.add_response("associate_qualification_with_worker", {},
                      {"QualificationTypeId": "B" * 30, "WorkerId": "W2", "IntegerValue": 1,
                       "SendNotification": False})
    stub.add_response("list_bonus_payments", {"NumResults": 0, "BonusPayments": []},
                      {"AssignmentId": good, "MaxResults": 100})
    stub.add_response("send_bonus", {},
                      {"WorkerId": "W1", "AssignmentId": good, "BonusAmount": "0.10",
                       "Reason": "Bonus for accurate comparisons",
                       "UniqueRequestToken": C.bonus_token(good)})
    cfg = C.CollectConfig(bonus="0.10", block_after=1, reject_min_wrong=1)
    rep = C.collect(cfg, market, db, "sandbox", **QUIET)
    stub.assert_no_pending_responses()
    assert rep.approved == [good] and rep.rejected == [bad] and rep.blocked == ["W2"]
    assert rep.bonuses_paid == [good] and len(db.judgments()) == 8
    assert sorted(rep.verified) == [good, bad]     # MTurk's own listing verifies them

    # the second run: MTurk reports the reviews; nothing is approved, blocked or paid again
    stub.add_response("list_assignments_for_hit",
                      {"NumResults": 2, "Assignments": [asg(good, "W1", "Approved", True),
                                                        asg(bad, "W2", "Rejected", False)]},
                      listing)
    rep = C.collect(cfg, market, db, "sandbox", **QUIET)
    stub.assert_no_pending_responses()
    assert rep.approved == rep.rejected == rep.blocked == rep.bonuses_paid == []
