"""The study server as a hostile worker or script sees it (issue 15): nothing on the page tells
sentinels apart, forged assignments never count, requests cannot set ``simulated``, and the small
holes (nested JSON, HEAD, refused pages, token-less lab links, symlinks, status by message text)
are closed."""

from __future__ import annotations

import json
import re
import time

import pandas as pd
import pytest

import mturk.web.app
import mturk.web.file_routes
from mturk.analysis.aggregate import aggregate
from mturk.design.trials import TrialsConfig, build
from mturk.sim.toy_index import make_toy_index
from mturk.store.study_db import DBError, UnknownIdError
from mturk.web.app import AppConfig, create_app

SANDBOX = "https://workersandbox.mturk.com"


@pytest.fixture(scope="module")
def trials_csv(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    index = make_toy_index(d / "dist", n_refs=3, size=40, qualities=(5, 30, 60, 90))
    return build(index, d / "study", TrialsConfig(batch_size=10, sentinel_share=0.3,
                                                  repeats=1, crop=32))[0]


def _app(trials_csv, tmp_path, **kw):
    app = create_app(AppConfig(trials=str(trials_csv), db=str(tmp_path / "j.sqlite"), **kw))
    return app, app.extensions["plic_db"], app.test_client()


def _task_of_page(html: str) -> dict:
    return json.loads(re.search(r'id="task-data">(.*?)</script>', html, re.S).group(1))


def _open(c, aid, hit, wid):
    r = c.get(f"/task?assignmentId={aid}&hitId={hit}&workerId={wid}&turkSubmitTo={SANDBOX}")
    return r, (_task_of_page(r.get_data(as_text=True)) if r.status_code == 200 else None)


def _submit(c, aid, hit, wid, task, side="left", **extra):
    body = dict(assignment_id=aid, hit_id=hit, worker_id=wid, **extra,
                answers=[dict(trial_id=t["trial_id"], side=side, rt_ms=4000)
                         for t in task["trials"]])
    return c.post("/api/submit", json=body)


# -- 1. nothing on the page tells the roles apart -----------------------------------------------

def test_a_script_cannot_find_the_sentinels_from_page_data(trials_csv, tmp_path):
    _, db, c = _app(trials_csv, tmp_path)
    batch = db.batch_ids()[0]
    db.add_hit("HIT1", batch, "sandbox", max_assignments=3)
    trials = db.batch_trials(batch)
    assert sum(t["kind"] == "sentinel" for t in trials) == 3
    pages = {}
    for aid, wid in (("ASG1", "W1"), ("ASG2", "W2")):
        r, task = _open(c, aid, "HIT1", wid)
        assert r.status_code == 200
        pages[aid] = task
    known_ids = {t["trial_id"] for t in trials} | {t[k] for t in trials for k in
                                                  ("ref_id", "a_id", "b_id")}
    for task in pages.values():
        urls = [t[v] for t in task["trials"] for v in ("ref", "left", "right")]
        assert len(set(urls)) == len(urls)               # no URL shared, not even the ref's
        for t in task["trials"]:
            assert re.fullmatch(r"[0-9a-f]{16}", t["trial_id"]) and t["trial_id"] not in known_ids
            body = {v: c.get(t[v]).data for v in ("ref", "left", "right")}
            # the old tell: a sentinel's obvious side was the reference's own file
            assert body["left"] != body["ref"] and body["right"] != body["ref"]
            assert all(b[:4] == b"\x89PNG" for b in body.values())
    # two workers of one HIT: no id or URL in common, and each sees its own order
    a, b = pages["ASG1"]["trials"], pages["ASG2"]["trials"]
    assert not {t["trial_id"] for t in a} & {t["trial_id"] for t in b}
    assert not {t["ref"] for t in a} & {t["ref"] for t in b}
    ids = db.keys()
    order = {aid: [ids.page_ids(aid, [t["trial_id"] for t in trials])[t["trial_id"]]
                   for t in p["trials"]] for aid, p in pages.items()}
    assert order["ASG1"] != order["ASG2"]
    html = c.get(f"/task?assignmentId=ASG1&hitId=HIT1&workerId=W1&turkSubmitTo={SANDBOX}")\
        .get_data(as_text=True).lower()
    assert "sentinel" not in html.split("instructions")[0] and "near" not in html


def test_image_urls_are_keyed_and_expire(trials_csv, tmp_path, monkeypatch):
    _, db, c = _app(trials_csv, tmp_path, image_ttl_s=60)
    db.add_hit("HIT1", db.batch_ids()[0], "sandbox", max_assignments=3)
    _, task = _open(c, "ASG1", "HIT1", "W1")
    url = task["trials"][0]["left"]
    assert c.get(url).status_code == 200
    head, name = url.rsplit("/", 1)
    k, mac = name[:-4].split("-")
    assert c.get(f"{head}/{int(k) + 1}-{mac}.png").status_code == 404      # another view
    assert c.get(f"{head}/{k}-{'0' * len(mac)}.png").status_code == 404    # a guessed MAC
    assert c.get(url.replace("/ASG1/", "/ASG2/")).status_code == 404        # another scope
    later = time.time() + 61
    monkeypatch.setattr(mturk.web.file_routes.time, "time", lambda: later)
    assert c.get(url).status_code == 404                                    # expired


# -- 2. only MTurk-issued assignments count ------------------------------------------------------

def test_forged_assignments_are_kept_but_never_counted(trials_csv, tmp_path):
    _, db, c = _app(trials_csv, tmp_path)
    db.add_hit("HIT1", db.batch_ids()[0], "sandbox", max_assignments=3)
    for i in range(3):                                   # anyone who knows the HIT id
        r, task = _open(c, f"FORGED{i}", "HIT1", f"EVIL{i}")
        assert r.status_code == 200
        assert _submit(c, f"FORGED{i}", "HIT1", f"EVIL{i}", task).status_code == 200
    # stored (nothing is lost) but unverified: aggregate leaves them out and says so
    assert len(db.judgments()) == 3 * 10
    assert all(a["verified_at"] is None for a in db.list_assignments())
    s = aggregate(db.path, trials_csv, tmp_path / "out", write_scores=False)
    assert s["labels"] == 0 and s["kept_judgments"] == 0 and s["unverified_left_out"] == 3
    # what MTurk reports (collect) verifies: only then do they count
    assert db.verify_assignment("FORGED0", "HIT1", "EVIL0")
    assert not db.verify_assignment("FORGED1", "HIT1", "SOMEONE_ELSE")   # not MTurk's worker
    s = aggregate(db.path, trials_csv, tmp_path / "out", write_scores=False)
    assert s["unverified_left_out"] == 2
    w = pd.read_csv(tmp_path / "out" / "workers.csv").set_index("worker_id")
    assert w.loc["EVIL0", "judgments"] == 10                      # counted now, and then
    assert "fast" in w.loc["EVIL0", "flags"]                       # timed by the server's clock
    assert w.loc["EVIL1", "reason"] == "no verified assignments"


def test_invented_claims_do_not_lock_out_real_workers(trials_csv, tmp_path):
    """Issue 28: three invented assignment ids used to take every place of a 3-place HIT, and
    the next real worker got 409 for the whole assignment duration. Unverified claims hold no
    place now; only what MTurk reported (verified) does."""
    _, db, c = _app(trials_csv, tmp_path)
    db.add_hit("HIT1", db.batch_ids()[0], "sandbox", max_assignments=3,
               assignment_duration_s=3600)
    for i in range(3):                                   # the attacker renews these at will
        assert _open(c, f"FORGED{i}", "HIT1", f"EVIL{i}")[0].status_code == 200
    r, task = _open(c, "REAL1", "HIT1", "W1")            # a real worker still gets the page
    assert r.status_code == 200
    assert _submit(c, "REAL1", "HIT1", "W1", task).status_code == 200
    # MTurk issues at most 3 real assignments; once they are verified, the HIT is done
    for aid, wid in (("REAL1", "W1"), ("REAL2", "W2"), ("REAL3", "W3")):
        if aid != "REAL1":
            assert _open(c, aid, "HIT1", wid)[0].status_code == 200
        assert db.verify_assignment(aid, "HIT1", wid)
    before = db.counts()
    assert _open(c, "FORGED9", "HIT1", "EVIL9")[0].status_code == 409
    assert db.counts() == before and db.get_assignment("FORGED9") is None
    assert _open(c, "FORGED0", "HIT1", "EVIL0")[0].status_code == 200   # its own page again


def test_submit_takes_json_only(trials_csv, tmp_path):
    """Issue 28: a text/plain cross-site form post (no CORS preflight) used to store judgments:
    the endpoint parsed any body as JSON. Anything but application/json is a 415 now."""
    _, db, c = _app(trials_csv, tmp_path)
    db.add_hit("HIT1", db.batch_ids()[0], "sandbox", max_assignments=3)
    _, task = _open(c, "ASG1", "HIT1", "W1")
    body = json.dumps(dict(assignment_id="ASG1", hit_id="HIT1", worker_id="W1",
                           answers=[dict(trial_id=t["trial_id"], side="left", rt_ms=4000)
                                    for t in task["trials"]]))
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                  None, "application/json-patch+json"):
        headers = {"Content-Type": ctype} if ctype else {}
        r = c.post("/api/submit", data=body, headers=headers)
        assert r.status_code == 415, ctype
        assert r.is_json and "application/json" in r.get_json()["error"]
    assert db.judgments() == [] and db.get_assignment("ASG1")["answers_sha"] is None
    r = c.post("/api/submit", data=body,
               headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200 and len(db.judgments()) == 10


# -- 5. "simulated" comes from the server's configuration only ----------------------------------

@pytest.mark.parametrize("server_simulated", [False, True])
def test_simulated_flag_is_the_servers_not_the_requests(trials_csv, tmp_path, server_simulated):
    _, db, c = _app(trials_csv, tmp_path, simulated=server_simulated)
    db.add_hit("HIT1", db.batch_ids()[0], "sandbox", max_assignments=3)
    _, task = _open(c, "ASG1", "HIT1", "W1")
    r = _submit(c, "ASG1", "HIT1", "W1", task, simulated=not server_simulated)
    assert r.status_code == 200
    assert db.get_assignment("ASG1")["simulated"] == int(server_simulated)
    db.verify_assignment("ASG1", "HIT1", "W1")
    s = aggregate(db.path, trials_csv, tmp_path / "out", write_scores=False)
    assert s["simulated"] is server_simulated


# -- 7. the smaller holes ------------------------------------------------------------------------

def test_deeply_nested_json_is_a_400(trials_csv, tmp_path):
    _, db, c = _app(trials_csv, tmp_path, local=True)
    deep = "[" * 100_000 + "]" * 100_000
    for path in ("/api/submit", "/api/local/claim"):
        r = c.post(path, data=deep, content_type="application/json")
        assert r.status_code == 400, path
        r = c.post(path, data='{"a":' * 50_000 + "1" + "}" * 50_000,
                   content_type="application/json")
        assert r.status_code in (400, 413), path
    assert db.counts()["assignments"] == 0


def test_head_and_refused_pages_record_nothing(trials_csv, tmp_path):
    _, db, c = _app(trials_csv, tmp_path)
    db.add_hit("HIT1", db.batch_ids()[0], "sandbox", max_assignments=3)
    q = "assignmentId=ASG1&hitId=HIT1&workerId=W1"
    assert c.head(f"/task?{q}&turkSubmitTo={SANDBOX}").status_code == 200
    assert c.head(f"/hit?{q}&turkSubmitTo={SANDBOX}").status_code == 200
    assert c.get(f"/task?{q}&turkSubmitTo=https://evil.example").status_code == 400
    assert c.get(f"/task?{q}").status_code == 400                    # no turkSubmitTo at all
    assert c.get(f"/api/task?{q}").status_code == 404                # the JSON view never writes
    assert db.counts()["assignments"] == 0 and db.counts()["workers"] == 0
    assert c.get(f"/task?{q}&turkSubmitTo={SANDBOX}").status_code == 200
    assert db.counts()["assignments"] == 1


def test_lab_links_need_a_token_and_one_token_is_one_participant(trials_csv, tmp_path):
    _, db, c = _app(trials_csv, tmp_path, local=True)
    assert c.get("/local/start").status_code == 403
    assert c.get("/local/start?workerId=P1").status_code == 403
    assert c.get("/local/start?p=P0001-" + "0" * 24).status_code == 403  # a forged token
    assert c.post("/api/local/claim", json={"worker_id": "W1"}).status_code == 403
    assert db.counts()["assignments"] == 0 and db.counts()["workers"] == 0
    token = db.keys().participant_token(7)
    where = {c.get(f"/local/start?p={token}").headers["Location"] for _ in range(50)}
    assert len(where) == 1                                          # 50 visits: one assignment
    assert db.counts()["workers"] == 1 and db.counts()["assignments"] == 1
    assert db.list_assignments()[0]["worker_id"] == "P0007"
    # a lab HIT's page cannot be opened with an invented assignment
    hit = db.list_assignments()[0]["hit_id"]
    assert c.get(f"/task?assignmentId=local-forged&hitId={hit}&workerId=P0007").status_code \
        == 404
    assert db.counts()["assignments"] == 1


def test_symlinks_in_the_static_folder_are_not_served(trials_csv, tmp_path, monkeypatch):
    static = tmp_path / "static"
    static.mkdir()
    for name in ("2afc.css", "2afc.js"):
        (static / name).write_text((mturk.web.file_routes.STATIC / name).read_text())
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    (static / "leak.txt").symlink_to(secret)
    (static / "2afc2.js").symlink_to(static / "2afc.js")
    monkeypatch.setattr(mturk.web.file_routes, "STATIC", static)
    _, _, c = _app(trials_csv, tmp_path)
    assert c.get("/static/2afc.js").status_code == 200
    for name in ("leak.txt", "2afc2.js", "../secret.txt", "%2e%2e/secret.txt"):
        r = c.get(f"/static/{name}")
        assert r.status_code == 404 and b"root:" not in r.data


@pytest.mark.parametrize("exc, code", [
    (UnknownIdError("no such assignment here"), 404),     # the text does not say "unknown"
    (DBError("unknown-looking text, but a bad value"), 400),
])
def test_status_comes_from_the_error_type_not_its_text(trials_csv, tmp_path, monkeypatch,
                                                       exc, code):
    _, db, c = _app(trials_csv, tmp_path)
    db.add_hit("HIT1", db.batch_ids()[0], "sandbox", max_assignments=3)
    _, task = _open(c, "ASG1", "HIT1", "W1")

    def boom(*a, **kw):
        raise exc

    monkeypatch.setattr(db, "record_submission", boom)
    r = _submit(c, "ASG1", "HIT1", "W1", task)
    assert r.status_code == code and r.get_json()["error"] == str(exc)


# -- 4. a reopened assignment gets its stored answers back ---------------------------------------

def test_reopened_assignment_gets_its_stored_answers(trials_csv, tmp_path):
    _, db, c = _app(trials_csv, tmp_path)
    db.add_hit("HIT1", db.batch_ids()[0], "sandbox", max_assignments=3)
    _, task = _open(c, "ASG1", "HIT1", "W1")
    assert task["stored"] is None
    assert _submit(c, "ASG1", "HIT1", "W1", task, side="left").status_code == 200
    _, again = _open(c, "ASG1", "HIT1", "W1")
    assert [a["trial_id"] for a in again["stored"]["answers"]] == \
        [t["trial_id"] for t in again["trials"]]
    assert {a["side"] for a in again["stored"]["answers"]} == {"left"}
    r = _submit(c, "ASG1", "HIT1", "W1", again, side="right")        # other answers: refused,
    assert r.status_code == 409                                        # and told what stands
    assert r.get_json()["stored"]["answers"] == again["stored"]["answers"]
    assert {j["choice"] == j["shown_left"] for j in db.judgments("ASG1")} == {True}
