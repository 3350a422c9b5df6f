"""Publish -> the study server's page -> MTurk's externalSubmit -> collect, with the in-memory
market standing in for MTurk (the same flow a lab study or the demo runs)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from mturk.market import collect as C
from mturk.market import publish as P
from mturk.market.memory import InMemoryMarket
from mturk.web.page import ANSWER_FIELD
from tests.mturk.test_market_backends import Clock

flask = pytest.importorskip("flask")
SANDBOX_SUBMIT = "https://workersandbox.mturk.com"


def test_worker_round_trip_through_the_server(tmp_path, monkeypatch):
    from datetime import datetime, timezone

    import mturk.store.common
    from mturk.design.trials import TrialsConfig, build
    from mturk.sim.toy_index import make_toy_index
    from mturk.web.app import AppConfig, create_app

    index = make_toy_index(tmp_path / "dist", n_refs=2, size=32, qualities=(5, 50, 90))
    trials = build(index, tmp_path / "study", TrialsConfig(batch_size=5, sentinel_share=0.2,
                                                           repeats=1))[0]
    app = create_app(AppConfig(trials=str(trials), db=str(tmp_path / "j.sqlite")))
    db = app.extensions["plic_db"]
    client = app.test_client()
    m = InMemoryMarket(clock=Clock())
    cfg = P.PublishConfig(external_url="https://study.example.org/hit", assignments=2,
                          quiz=False)
    P.publish(cfg, m, db, "sandbox", out=lambda s: None)
    hit_id = db.list_hits(batch_id="b0000")[0]["hit_id"]
    assert "Needs a browser window at least" in next(iter(m.s["hit_types"].values()))["key"]

    aid = m.accept(hit_id, "W1")
    query = f"assignmentId={aid}&hitId={hit_id}&workerId=W1&turkSubmitTo={SANDBOX_SUBMIT}"
    # the worker opened the page two minutes before submitting (the server's clock)
    then = (datetime.now(timezone.utc) - timedelta(minutes=2)).isoformat()
    with monkeypatch.context() as mp:
        mp.setattr(mturk.store.common, "utcnow", lambda: then)
        page = client.get(f"/hit?{query}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f"{SANDBOX_SUBMIT}/mturk/externalSubmit" in html
    task = json.loads(re.search(r'id="task-data">(.*?)</script>', html, re.S).group(1))
    answers = [{"trial_id": t["trial_id"], "side": "left", "rt_ms": 2500} for t in task["trials"]]
    payload = {"assignment_id": aid, "hit_id": hit_id, "worker_id": "W1", "answers": answers}
    assert client.post("/api/submit", json=payload).get_json()["status"] == "created"
    assert db.get_assignment(aid)["verified_at"] is None      # stored, not yet verified
    # what the page then posts to MTurk's externalSubmit comes back as QuestionFormAnswers
    m.clock.t += timedelta(seconds=60)
    m.submit(aid, {ANSWER_FIELD: json.dumps(payload)})

    rep = C.collect(C.CollectConfig(), m, db, "sandbox", out=lambda s: None)
    assert rep.new_judgments == 0 and rep.conflicts == [] and rep.unreadable == []
    assert rep.verified == [aid] and db.get_assignment(aid)["verified_by"] == "mturk"
    assert rep.approved == [aid]
    assert db.get_assignment(aid)["status"] == "approved"
    assert len(db.judgments(aid)) == len(task["trials"])
