"""Publish -> the study server's page -> MTurk's externalSubmit -> collect, with the in-memory
market standing in for MTurk (the same flow a lab study or the demo runs)."""

from __future__ import annotations

import json

import pytest

from codec.tables import write_table
from mturk import collect as C
from mturk import publish as P
from mturk.market.memory import InMemoryMarket
from mturk.page import ANSWER_FIELD
from mturk.schema import TRIALS_COLUMNS
from tests.test_mturk_publish import trial_rows

flask = pytest.importorskip("flask")
SANDBOX_SUBMIT = "https://workersandbox.mturk.com"


def test_worker_round_trip_through_the_server(tmp_path):
    from mturk.app import AppConfig, create_app

    trials = tmp_path / "trials.csv"
    write_table(trials, trial_rows(n_batches=2), TRIALS_COLUMNS, "trial_id")
    app = create_app(AppConfig(trials=str(trials), db=str(tmp_path / "j.sqlite")))
    db = app.extensions["plic_db"]
    client = app.test_client()
    m = InMemoryMarket()
    cfg = P.PublishConfig(external_url="https://study.example.org/hit", assignments=2,
                          quiz=False)
    P.publish(cfg, m, db, "sandbox", out=lambda s: None)
    hit_id = db.list_hits(batch_id="b0")[0]["hit_id"]

    aid = m.accept(hit_id, "W1")
    query = f"assignmentId={aid}&hitId={hit_id}&workerId=W1&turkSubmitTo={SANDBOX_SUBMIT}"
    page = client.get(f"/hit?{query}")
    assert page.status_code == 200
    assert f"{SANDBOX_SUBMIT}/mturk/externalSubmit" in page.get_data(as_text=True)
    task = client.get(f"/api/task?{query}").get_json()
    answers = [{"trial_id": t["trial_id"], "side": "left", "rt_ms": 900} for t in task["trials"]]
    payload = {"assignment_id": aid, "hit_id": hit_id, "worker_id": "W1", "answers": answers}
    assert client.post("/api/submit", json=payload).get_json()["status"] == "created"
    # what the page then posts to MTurk's externalSubmit comes back as QuestionFormAnswers
    m.submit(aid, {ANSWER_FIELD: json.dumps(payload)})

    rep = C.collect(C.CollectConfig(), m, db, "sandbox", out=lambda s: None)
    assert rep.new_judgments == 0 and rep.conflicts == [] and rep.unreadable == []
    # every trial's sentinel in trial_rows is shown with "a" on the left and expects "a"
    assert rep.approved == [aid]
    assert db.get_assignment(aid)["status"] == "approved"
    assert len(db.judgments(aid)) == len(task["trials"])
