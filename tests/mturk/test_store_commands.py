"""The commands that take ``--db`` on both stores: publish -> the study server's page -> MTurk's
externalSubmit -> collect (the in-memory market standing in for MTurk), then
``python -m mturk.aggregate --db``: the same labels from a SQLite file and a PostgreSQL URL."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from mturk.analysis.aggregate import main as aggregate_main
from mturk.design.trials import TrialsConfig, build
from mturk.market import collect as C
from mturk.market import publish as P
from mturk.market.memory import InMemoryMarket
from mturk.sim.toy_index import make_toy_index
from mturk.web.app import AppConfig, create_app
from mturk.web.page import ANSWER_FIELD
from tests.mturk.test_market_backends import Clock

SANDBOX_SUBMIT = "https://workersandbox.mturk.com"


@pytest.fixture(scope="module")
def trials_csv(tmp_path_factory):
    d = tmp_path_factory.mktemp("commands")
    index = make_toy_index(d / "dist", n_refs=2, size=32, qualities=(5, 50, 90))
    return build(index, d / "study", TrialsConfig(batch_size=5, sentinel_share=0.2,
                                                  repeats=1))[0]


def _labels(tmp_path, trials_csv, url, tag):
    app = create_app(AppConfig(trials=str(trials_csv), db=url))
    db, client = app.extensions["plic_db"], app.test_client()
    m = InMemoryMarket(clock=Clock())
    P.publish(P.PublishConfig(external_url="https://study.example.org/hit", assignments=2,
                              quiz=False), m, db, "sandbox", out=lambda s: None)
    hits = db.list_hits()
    assert hits
    for k, hit in enumerate(hits):
        for w, side in (("W1", "left"), ("W2", "right" if k % 2 else "left")):
            aid = m.accept(hit["hit_id"], w)
            q = f"assignmentId={aid}&hitId={hit['hit_id']}&workerId={w}&turkSubmitTo=" \
                f"{SANDBOX_SUBMIT}"
            html = client.get(f"/hit?{q}").get_data(as_text=True)
            task = json.loads(re.search(r'id="task-data">(.*?)</script>', html, re.S).group(1))
            payload = {"assignment_id": aid, "hit_id": hit["hit_id"], "worker_id": w,
                       "answers": [{"trial_id": t["trial_id"], "side": side, "rt_ms": 2500}
                                   for t in task["trials"]]}
            assert client.post("/api/submit", json=payload).status_code == 200
            m.submit(aid, {ANSWER_FIELD: json.dumps(payload)})
    rep = C.collect(C.CollectConfig(), m, db, "sandbox", out=lambda s: None)
    assert rep.conflicts == [] and len(rep.verified) == 2 * len(hits)
    for w in ("W1", "W2"):          # collect's quality check rejects these careless workers:
        db.unblock_worker(w)        # take them back, so that there is something to aggregate
    for a in db.list_assignments():
        db.set_assignment_status(a["assignment_id"], "approved")
    db.dispose()
    out = tmp_path / tag
    # a tiny study: every worker kept (the rules' thresholds need more sentinels and time)
    assert aggregate_main(["--db", url, "--trials", str(trials_csv), "--out", str(out),
                           "--min-sentinels", "0", "--min-accuracy", "0", "--min-s-per-trial", "0",
                           "--min-side-trials", "1000", "--min-consensus-trials", "1000",
                           "--min-repeats", "1000"]) == 0
    return pd.read_csv(out / "labels.csv"), json.loads((out / "aggregate.json").read_text())


def test_publish_collect_aggregate_same_on_both_stores(tmp_path, trials_csv, pg_cluster):
    lite, s_lite = _labels(tmp_path, trials_csv, str(tmp_path / "j.sqlite"), "sqlite")
    pg, s_pg = _labels(tmp_path, trials_csv, pg_cluster.create_database(), "postgres")
    assert len(lite) > 0
    pd.testing.assert_frame_equal(lite, pg)
    for k in ("labels", "judgments", "kept_judgments", "workers", "kept_workers"):
        assert s_lite[k] == s_pg[k], k
