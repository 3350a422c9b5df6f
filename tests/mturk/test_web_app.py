"""The Flask app: local and HIT flows, preview, CSP, and hostile input (nothing written)."""

from __future__ import annotations

import json

import pytest

from mturk.design.trials import TrialsConfig, build
from mturk.sim.toy_index import make_toy_index
from mturk.web.app import AppConfig, create_app

SANDBOX = "https://workersandbox.mturk.com"


@pytest.fixture(scope="module")
def trials_csv(tmp_path_factory):
    d = tmp_path_factory.mktemp("study")
    index = make_toy_index(d / "dist", n_refs=2, size=32, qualities=(5, 50, 90))
    return build(index, d / "study", TrialsConfig(batch_size=4, sentinel_share=0.25,
                                                  repeats=1))[0]


def _app(trials_csv, tmp_path, local=True):
    app = create_app(AppConfig(trials=str(trials_csv), db=str(tmp_path / "j.sqlite"), local=local))
    return app, app.extensions["plic_db"], app.test_client()


def _answers(task, side="left"):
    return [dict(trial_id=t["trial_id"], side=side, rt_ms=1234) for t in task["trials"]]


def token(client, n=1):
    """Participant n's token, as ``mturk.serve --participants`` writes it."""
    return client.application.extensions["plic_db"].keys().participant_token(n)


def _claim(client, n=1):
    a = client.post("/api/local/claim", json={"token": token(client, n)}).get_json()
    q = f"assignmentId={a['assignment_id']}&hitId={a['hit_id']}&workerId={a['worker_id']}"
    return a, client.get(f"/api/task?{q}").get_json()


def test_local_flow_records_choices_mapped_to_a_b(trials_csv, tmp_path):
    app, db, c = _app(trials_csv, tmp_path)
    assert c.get("/health").get_json()["ok"]
    a, task = _claim(c)
    body = dict(a, answers=_answers(task, "left"))
    r = c.post("/api/submit", json=body)
    assert r.status_code == 200 and r.get_json()["status"] == "created"
    rows = db.judgments(a["assignment_id"])
    assert len(rows) == len(task["trials"])
    for j in rows:
        t = db.trial(j["trial_id"])
        assert j["choice"] == t["left"] == j["shown_left"] and j["rt_ms"] == 1234
    # the page shows the left image of the trial's recorded left side
    from mturk.web.page import view_source
    from plic.tables import resolve_path

    ids = db.keys().page_ids(a["assignment_id"], [t["trial_id"] for t in db.batch_trials(
        db.get_hit(a["hit_id"])["batch_id"])])
    for pt in task["trials"]:
        t = db.trial(ids[pt["trial_id"]])
        for v in ("ref", "left", "right"):
            assert c.get(pt[v]).data == resolve_path(view_source(t, v)[1], trials_csv).read_bytes()
    # a duplicate is idempotent; a replay with other answers is refused
    assert c.post("/api/submit", json=body).get_json()["status"] == "duplicate"
    r = c.post("/api/submit", json=dict(a, answers=_answers(task, "right")))
    assert r.status_code == 409
    assert db.counts()["judgments"] == len(task["trials"])
    assert db.get_assignment(a["assignment_id"])["verified_by"] == "token"


def test_local_start_link_and_page(trials_csv, tmp_path):
    _, db, c = _app(trials_csv, tmp_path)
    r = c.get(f"/local/start?p={token(c)}")
    assert r.status_code == 302 and "/task?" in r.headers["Location"]
    page = c.get(r.headers["Location"])
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="task-data"' in html
    assert "frame-ancestors 'self' https://worker.mturk.com https://workersandbox.mturk.com" \
        in page.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in page.headers
    # no codec names or sentinel flags leak into the page
    for t in db.batch_trials(db.list_hits(mode="local")[0]["batch_id"]):
        assert t["a_id"] not in html and t["b_id"] not in html
    assert "sentinel" not in html.lower().split("instructions")[0]


def test_hit_mode_preview_and_form(trials_csv, tmp_path):
    _, db, c = _app(trials_csv, tmp_path, local=False)
    db.add_hit("HIT1", db.batch_ids()[0], "sandbox", reward="0.40", max_assignments=3)
    r = c.get("/task?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=HIT1")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and 'data-mode="preview"' in html and "preview-banner" in html
    assert db.counts()["assignments"] == 0
    r = c.get(f"/task?assignmentId=ASG1&hitId=HIT1&workerId=WK1&turkSubmitTo={SANDBOX}")
    html = r.get_data(as_text=True)
    assert f'action="{SANDBOX}/mturk/externalSubmit"' in html
    assert 'name="assignmentId" value="ASG1"' in html
    assert db.get_assignment("ASG1")["status"] == "accepted"
    # turkSubmitTo must be MTurk's
    r = c.get("/task?assignmentId=ASG2&hitId=HIT1&workerId=WK1&turkSubmitTo=https://evil.example")
    assert r.status_code == 400
    assert c.post("/api/local/claim", json={"worker_id": "W"}).status_code == 404


@pytest.mark.parametrize("mutate, code", [
    (lambda b: b.update(assignment_id="UNKNOWN1"), 404),
    (lambda b: b.update(hit_id="NOHIT"), 404),
    (lambda b: b.update(worker_id="<script>alert(1)</script>"), 400),
    (lambda b: b.update(assignment_id="a" * 65), 400),
    (lambda b: b["answers"].pop(), 400),
    (lambda b: b["answers"][0].update(side="middle"), 400),
    (lambda b: b["answers"][0].update(trial_id="../../etc/passwd"), 400),
    (lambda b: b["answers"][0].update(trial_id="t-0123456789ab"), 400),
    (lambda b: b["answers"][0].update(rt_ms=-5), 400),
    (lambda b: b["answers"][0].update(rt_ms="fast"), 400),
    (lambda b: b.update(answers="all left"), 400),
    (lambda b: b["answers"].append(dict(b["answers"][0])), 400),
    (lambda b: b.update(worker_id="P0002"), 409),
])
def test_hostile_submissions_write_nothing(trials_csv, tmp_path, mutate, code):
    _, db, c = _app(trials_csv, tmp_path)
    a, task = _claim(c)
    body = json.loads(json.dumps(dict(a, answers=_answers(task))))
    mutate(body)
    before = db.counts()
    r = c.post("/api/submit", json=body)
    assert r.status_code == code, r.get_json()
    assert db.counts()["judgments"] == 0 and db.counts() == before
    assert db.get_assignment(a["assignment_id"])["status"] == "accepted"


def test_malformed_and_oversized_posts(trials_csv, tmp_path):
    _, db, c = _app(trials_csv, tmp_path)
    _claim(c)
    assert c.post("/api/submit", data="not json", content_type="application/json").status_code \
        == 400
    assert c.post("/api/submit", data=b"\xff\xfe", content_type="application/json").status_code \
        == 400
    assert c.post("/api/submit", json=[1, 2]).status_code == 400
    big = "x" * (300 * 1024)
    r = c.post("/api/submit", data=json.dumps({"pad": big}), content_type="application/json")
    assert r.status_code == 413
    assert db.counts()["judgments"] == 0


@pytest.mark.parametrize("url", [
    "/img/../../etc/passwd", "/img/..%2f..%2fetc%2fpasswd", "/img/%2e%2e/trials.csv",
    "/img/0123456789abcdef.png", "/img/trials.csv", "/static/../app.py", "/img/",
    "/img/b0000/x/9999999999/0-000000000000000000000000.png",
    "/img/b0000/..%2f..%2f/9999999999/0-000000000000000000000000.png",
    "/static/%2e%2e%2fapp.py", "/static/",
])
def test_image_path_traversal(trials_csv, tmp_path, url):
    _, _, c = _app(trials_csv, tmp_path)
    r = c.get(url)
    assert r.status_code == 404
    assert b"root:" not in r.data and b"trial_id" not in r.data


def test_unknown_ids_on_task_pages(trials_csv, tmp_path):
    _, db, c = _app(trials_csv, tmp_path, local=False)
    assert c.get("/task?assignmentId=A1&hitId=NOPE&workerId=W1").status_code == 404
    assert c.get("/task?assignmentId=<b>&hitId=NOPE&workerId=W1").status_code == 400
    db.add_hit("HIT1", db.batch_ids()[0], "sandbox", max_assignments=3)
    r = c.get("/task?assignmentId=A1&hitId=HIT1&workerId=%3Cscript%3Ealert(1)%3C/script%3E"
              f"&turkSubmitTo={SANDBOX}")
    assert r.status_code == 400 and b"<script>alert" not in r.data
    assert c.post("/api/local/claim", json={"token": "<script>"}).status_code == 404
    # /api/task records nothing: an assignment the page never opened is unknown there
    assert c.get("/api/task?assignmentId=A1&hitId=HIT1&workerId=W1").status_code == 404
    assert c.get(f"/task?assignmentId=A1&hitId=HIT1&workerId=W1&turkSubmitTo={SANDBOX}")\
        .status_code == 200
    assert c.get("/api/task?assignmentId=A1&hitId=HIT1&workerId=W1").status_code == 200
    # the same assignment id opened by another worker is refused
    assert c.get("/api/task?assignmentId=A1&hitId=HIT1&workerId=W2").status_code == 409
    assert db.counts()["assignments"] == 1


def test_html_question_rendering(trials_csv, tmp_path):
    from mturk.market.html_question import render_html_question
    from mturk.schema import TRIALS_COLUMNS
    from mturk.store.study_db import StudyDB
    from mturk.tokens import html_scope
    from mturk.web.twoafc_page import parse_answers
    from plic.tables import read_table, resolve_path

    keys = StudyDB(tmp_path / "k.sqlite").keys()
    df = read_table(trials_csv, TRIALS_COLUMNS)
    batch = df[df.batch_id == df.batch_id.iloc[0]].to_dict("records")
    b = batch[0]["batch_id"]
    html = render_html_question(batch, keys, b, "https://cdn.example.org/study/",
                                lambda p: resolve_path(p, trials_csv))
    assert f'action="{SANDBOX}/mturk/externalSubmit"' in html
    assert "<script src=" not in html and 'rel="stylesheet"' not in html   # self-contained
    name = keys.static_name("html", b, batch[0]["trial_id"], "ref")
    assert f"https://cdn.example.org/study/{name}" in html
    for t in batch:
        assert t["a_id"] not in html and t["b_id"] not in html and t["trial_id"] not in html
    with pytest.raises(ValueError):
        render_html_question(batch, keys, b, "http://insecure.example.org", str)
    # collect.py's side: the posted answers parse back into database rows
    by_id = {t["trial_id"]: t for t in batch}
    ids = keys.page_ids(html_scope(b), list(by_id))
    payload = dict(assignment_id="A1", hit_id="H1", worker_id="W1",
                   answers=[dict(trial_id=p, side="right", rt_ms=5) for p in ids])
    got, rows = parse_answers(json.dumps(payload), by_id, ids)
    assert got == dict(assignment_id="A1", hit_id="H1", worker_id="W1")
    assert all(r["choice"] != r["shown_left"] for r in rows)
    assert sorted(r["trial_id"] for r in rows) == sorted(by_id)


def test_blocked_workers_are_turned_away(trials_csv, tmp_path):
    _, db, c = _app(trials_csv, tmp_path)
    db.block_worker("P0009", "failed sentinels")
    assert c.post("/api/local/claim", json={"token": token(c, 9)}).status_code == 403
    assert c.get(f"/local/start?p={token(c, 9)}").status_code == 403
    a, task = _claim(c, 1)
    q = f"assignmentId={a['assignment_id']}&hitId={a['hit_id']}&workerId=P0009"
    assert c.get(f"/task?{q}").status_code == 403
    assert db.counts()["assignments"] == 1
    # a worker blocked after opening the page cannot submit either
    db.block_worker("P0001", "failed quality control")
    body = dict(a, answers=_answers(task))
    assert c.post("/api/submit", json=body).status_code == 403
    assert db.counts()["judgments"] == 0
