"""ACR and DSIS studies: trials, the ratings table and its migration, the server, the simulator."""

from __future__ import annotations

import json
import sqlite3
import threading

import pandas as pd
import pytest

from mturk.design.rating import HIDDEN_REF_CODEC
from mturk.design.study import study_design
from mturk.design.trials import TrialsConfig, build
from mturk.design.trials import main as trials_main
from mturk.sim.crowd import SimConfig, run_crowd
from mturk.sim.rating_crowd import mapped, rate
from mturk.sim.toy_index import make_toy_index
from mturk.store.migrations import MIGRATIONS
from mturk.store.study_db import AlreadySubmittedError, DBError, StudyDB
from mturk.web.app import AppConfig, create_app
from mturk.web.page import AnswerError
from mturk.web.rating_page import parse_ratings

QUALITIES = (5, 20, 50, 95)


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return make_toy_index(tmp_path_factory.mktemp("dist"), n_refs=3, size=32,
                          qualities=QUALITIES)


@pytest.mark.parametrize("design", ["acr", "dsis"])
def test_rating_trials_layout(index, tmp_path, design):
    path, written = build(index, tmp_path, TrialsConfig(batch_size=10, design=design))
    assert written and study_design(path) == design
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    # a rating trial names one stimulus on both sides, shown "left", no sentinels or repeats
    assert (df.a_id == df.b_id).all() and (df.a_path == df.b_path).all()
    assert (df.left == "a").all() and (df.kind == "test").all() and (df.repeat_of == "").all()
    dists = df[df.a_codec != HIDDEN_REF_CODEC]
    assert sorted(dists.a_id) == sorted(f"toy{r}-jpegq{q}-t1.0" for r in range(3)
                                        for q in QUALITIES)       # every distortion once
    hidden = df[df.a_codec == HIDDEN_REF_CODEC]
    if design == "dsis":
        assert hidden.empty
    else:
        assert sorted(hidden.a_id) == ["toy0", "toy1", "toy2"]
        assert (hidden.a_id == hidden.ref_id).all() and (hidden.a_path == hidden.ref_path).all()
        # every distortion shares its batch with its reference's hidden reference
        for r in dists.itertuples():
            assert ((hidden.ref_id == r.ref_id) & (hidden.batch_id == r.batch_id)).any()
    assert df.groupby("batch_id").size().max() <= 10
    assert not build(index, tmp_path, TrialsConfig(batch_size=10, design=design))[1]


def test_trials_cli_refuses_unknown_design(index, tmp_path, capsys):
    assert trials_main(["--index", str(index), "--out", str(tmp_path), "--design", "mos"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mturk.trials: error: unknown design 'mos'") and "\n" not in err
    assert not (tmp_path / "trials.csv").exists()


def test_migration_upgrades_a_version_2_database(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    for _name, sql in MIGRATIONS[:2]:               # the schema before the ratings table
        for stmt in sql.split(";"):
            if stmt.strip():
                conn.execute(stmt)
    conn.execute("PRAGMA user_version=2")
    conn.execute("INSERT INTO studies VALUES ('s', NULL, 'now')")
    conn.commit()
    conn.close()
    db = StudyDB(path)
    assert db.schema_version() == len(MIGRATIONS) >= 3
    assert db.ratings() == [] and db._one("SELECT study_id FROM studies") == {"study_id": "s"}
    cols = {r["name"] for r in db._rows("PRAGMA table_info(ratings)")}
    assert {"assignment_id", "trial_id", "design", "score", "rt_ms"} <= cols


def test_record_ratings_rules(index, tmp_path):
    trials = build(index, tmp_path, TrialsConfig(batch_size=10, design="acr"))[0]
    db = StudyDB(tmp_path / "j.sqlite")
    rows = pd.read_csv(trials, dtype=str, keep_default_na=False)
    db.load_trials(rows)
    batch = rows.batch_id.iloc[0]
    ids = list(rows[rows.batch_id == batch].trial_id)
    db.add_hit("H1", batch, "local")
    answers = [dict(trial_id=t, score=1 + i % 5, rt_ms=900) for i, t in enumerate(ids)]
    with pytest.raises(DBError, match="exactly once"):
        db.record_ratings("A1", "H1", "W1", "acr", answers[:-1], require_accepted=False)
    with pytest.raises(DBError, match="integer score"):
        db.record_ratings("A1", "H1", "W1", "acr", [dict(answers[0], score=6)] + answers[1:],
                          require_accepted=False)
    assert db.ratings() == []                       # all or nothing
    assert db.record_ratings("A1", "H1", "W1", "acr", answers,
                             require_accepted=False).status == "created"
    assert db.record_ratings("A1", "H1", "W1", "acr", answers[::-1]).status == "duplicate"
    with pytest.raises(AlreadySubmittedError):
        db.record_ratings("A1", "H1", "W1", "acr", [dict(answers[0], score=5 - answers[0]["score"]
                                                         % 5)] + answers[1:])
    stored = {r["trial_id"]: r["score"] for r in db.ratings("A1")}
    assert stored == {a["trial_id"]: a["score"] for a in answers}


def test_parse_ratings_refuses_malformed():
    trials = {"t1": {"left": "a"}}
    page = {"p1": "t1"}
    base = dict(assignment_id="A", hit_id="H", worker_id="W")
    assert parse_ratings(dict(base, answers=[dict(trial_id="p1", score=4, rt_ms=10)]), trials,
                         page)[1] == [dict(trial_id="t1", score=4, rt_ms=10)]
    for bad in (dict(trial_id="p1", score=0), dict(trial_id="p1", score=4.0),
                dict(trial_id="p1", score=True), dict(trial_id="p2", score=3),
                dict(trial_id="p1", score=3, rt_ms=-1), dict(trial_id="p1", side="left")):
        with pytest.raises(AnswerError):
            parse_ratings(dict(base, answers=[bad]), trials, page)


def test_simulated_rating_keeps_the_scale_and_follows_the_truth():
    import numpy as np

    rng = np.random.default_rng(0)
    assert mapped(1e9, 0.5, 0.1) == pytest.approx(5) and mapped(-1e9, 0.5, 0.1) == pytest.approx(1)
    assert mapped(0.5, 0.5, 0.1) == pytest.approx(3)
    careful = [rate("careful", 3.4, 0.5, 0.5, rng) for _ in range(4000)]
    assert set(careful) <= {1, 2, 3, 4, 5} and abs(np.mean(careful) - 3.9) < 0.05
    spam = [rate("random", 3.4, 0.5, 0.5, rng) for _ in range(4000)]
    assert abs(np.mean(spam) - 3.0) < 0.1 and set(spam) == {1, 2, 3, 4, 5}


@pytest.fixture
def live(index, tmp_path, request):
    from werkzeug.serving import make_server

    design = request.param
    trials = build(index, tmp_path / "study", TrialsConfig(batch_size=10, design=design))[0]
    app = create_app(AppConfig(trials=str(trials), db=str(tmp_path / "j.sqlite"), local=True,
                               simulated=True))
    db = app.extensions["plic_db"]
    links = tmp_path / "participants.txt"
    links.write_text("".join(f"{db.keys().participant_token(i)}\n" for i in range(1, 13)))
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield design, f"http://127.0.0.1:{srv.server_port}", trials, db, links, app
    srv.shutdown()


@pytest.mark.parametrize("live", ["acr", "dsis"], indirect=True)
def test_simulated_raters_over_http(live):
    design, url, trials, db, links, app = live
    s = run_crowd(SimConfig(url=url, trials=str(trials), participants=str(links), workers=12,
                            batches_per_worker=5, oracle="psnr", mix="careful=0.75,random=0.25",
                            concurrency=3, seed=3))
    assert s["simulated"] and s["design"] == design and s["failures"] == []
    n_batches = len(db.batch_ids())
    assert s["submissions"] == 12 * n_batches       # everyone rated every batch once
    r = db.ratings_frame()
    assert len(r) == s["judgments"] == 12 * db.counts()["trials"] and db.judgments() == []
    assert set(r.design) == {design} and (r.simulated == 1).all()
    assert (r.stimulus_id.map(s["mapped_scores"]).notna()).all()
    # careful raters follow the oracle's order: JPEG quality 95 above quality 5
    careful = r[r.worker_id.map(s["worker_types"]) == "careful"]
    by_codec = careful.groupby("codec").score.mean()
    assert by_codec["jpeg-q95"] > by_codec["jpeg-q50"] > by_codec["jpeg-q5"]
    # the page trial data of an ACR page never carries the reference's image
    client = app.test_client()
    a = db.list_assignments()[0]
    task = client.get(f"/api/task?assignmentId={a['assignment_id']}&hitId={a['hit_id']}"
                      f"&workerId={a['worker_id']}").get_json()
    assert task["design"] == design and task["stored"] is not None
    assert all(("ref" in t) == (design == "dsis") for t in task["trials"])
    # a changed resubmission gets 409 with the stored scores; they stand
    changed = [dict(x, score=1 if x["score"] != 1 else 2) for x in task["stored"]["answers"]]
    res = client.post("/api/submit", data=json.dumps(dict(
        assignment_id=a["assignment_id"], hit_id=a["hit_id"], worker_id=a["worker_id"],
        answers=changed)), content_type="application/json")
    assert res.status_code == 409 and res.get_json()["stored"] == task["stored"]


def test_collect_brings_ratings_from_mturk(tmp_path):
    from datetime import timedelta

    from mturk.design.study import rating_design
    from mturk.market import collect as C
    from mturk.market import publish as P
    from mturk.market.memory import InMemoryMarket
    from tests.mturk.test_market_backends import Clock
    from tests.mturk.test_publish import URL

    rows = [dict(trial_id=f"acr-{b}{i}", batch_id=f"b{b}", ref_id="r", ref_path="img/r.png",
                 a_id=f"d{b}{i}", a_path=f"img/d{b}{i}.png", b_id=f"d{b}{i}",
                 b_path=f"img/d{b}{i}.png", a_codec="jpeg", b_codec="jpeg", a_bpp="0.3",
                 b_bpp="0.3", target_bpp="0.3", left="a", kind="test", expected="",
                 repeat_of="") for b in range(2) for i in range(3)]
    assert rating_design([r["trial_id"] for r in rows]) == "acr"
    assert rating_design(["t-1", "acr-2"]) is None and rating_design([]) is None
    db = StudyDB(tmp_path / "s.sqlite")
    db.load_trials(rows)
    m = InMemoryMarket(clock=Clock())
    quiet = dict(out=lambda *a, **k: None)
    P.publish(P.PublishConfig(external_url=URL, assignments=2, min_window="none"), m, db,
              "local", **quiet)
    hit = next(h["hit_id"] for h in db.list_hits() if h["batch_id"] == "b0")
    aid = m.accept(hit, "W1")
    m.clock.t += timedelta(seconds=40)
    keys = db.keys()
    scores = {t["trial_id"]: 1 + k for k, t in enumerate(db.batch_trials("b0"))}
    answers = [dict(trial_id=keys.page_trial_id(aid, t), score=s, rt_ms=900)
               for t, s in scores.items()]
    m.submit(aid, {"answers": json.dumps(dict(assignment_id=aid, hit_id=hit, worker_id="W1",
                                              answers=answers))})
    rep = C.collect(C.CollectConfig(), m, db, "local", **quiet)
    assert rep.approved == [aid] and rep.verified == [aid] and db.judgments() == []
    assert {r["trial_id"]: r["score"] for r in db.ratings(aid)} == scores
    assert db.get_assignment(aid)["status"] == "approved"
    assert C.collect(C.CollectConfig(), m, db, "local", **quiet).approved == []   # idempotent


@pytest.mark.parametrize("design", ["acr", "dsis"])
def test_html_question_of_a_rating_batch_is_the_rating_page(index, tmp_path, design):
    from mturk.market.html_question import render_html_question
    from mturk.tokens import html_scope

    trials = build(index, tmp_path, TrialsConfig(batch_size=10, design=design))[0]
    db = StudyDB(tmp_path / "j.sqlite")
    db.load_trials(pd.read_csv(trials, dtype=str, keep_default_na=False))
    batch = db.batch_ids()[0]
    html = render_html_question(db.batch_trials(batch), db.keys(), batch,
                                "https://img.example.org/s",
                                lambda p: trials.parent / p)
    task = json.loads(html.split('id="task-data">')[1].split("</script>")[0])
    assert task["design"] == design and task["mode"] == "htmlquestion"
    assert len(task["trials"]) == len(db.batch_trials(batch))
    assert all(("ref" in t) == (design == "dsis") for t in task["trials"])
    page_ids = db.keys().page_ids(html_scope(batch), [t["trial_id"] for t in
                                                      db.batch_trials(batch)])
    assert {t["trial_id"] for t in task["trials"]} == set(page_ids)
    assert "rating.js" not in html and "function rate(" in html         # assets inlined


def test_publish_states_the_rating_pages_window(index, tmp_path):
    from mturk.market.publish import PublishConfig, window_sentence
    from mturk.web.rating_page import min_window_rating
    from mturk.web.twoafc_page import min_window

    trials = build(index, tmp_path, TrialsConfig(batch_size=10, design="acr"))[0]
    db = StudyDB(tmp_path / "j.sqlite")
    db.load_trials(pd.read_csv(trials, dtype=str, keep_default_na=False),
                   trials_csv=str(trials.resolve()))
    cfg = PublishConfig(external_url="https://study.example.org/task")
    w, h = min_window_rating(32, 32)                   # the toy views are 32 x 32
    assert f"{w} x {h} pixels" in window_sentence(cfg, db, db.batch_ids())
    assert (w, h) < min_window(32, 32)                 # one view needs less than three


def test_aggregate_points_a_rating_study_to_mturk_mos(index, tmp_path, capsys):
    from mturk.analysis.aggregate import main as aggregate_main

    trials = build(index, tmp_path, TrialsConfig(batch_size=10, design="dsis"))[0]
    StudyDB(tmp_path / "j.sqlite")
    assert aggregate_main(["--db", str(tmp_path / "j.sqlite"), "--trials", str(trials),
                           "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "mturk.mos" in err and "\n" not in err and not (tmp_path / "o").exists()
