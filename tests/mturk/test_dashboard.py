"""The requester's dashboard without a browser: its figures against mturk.analysis on the same
database, the audited actions through the in-memory market, the refusals of the command."""

from __future__ import annotations

import re
import time
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from mturk.analysis.aggregate import agreement, filter_workers, ranking
from mturk.analysis.worker_quality import QualityRule
from mturk.dashboard import figures
from mturk.dashboard.actions import ActionError, perform
from mturk.dashboard.app import DashboardConfig, create_dashboard
from mturk.dashboard.main import main
from mturk.dashboard.study_maker import make_study
from mturk.market.base import MarketError
from mturk.market.manage import cost_so_far
from mturk.market.memory import InMemoryMarket
from mturk.store.study_db import StudyDB

SECRET = "a-requester-secret-for-tests"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    d = tmp_path_factory.mktemp("dash")
    market = InMemoryMarket(state_path=d / "study" / "market.json")
    db_path, trials = make_study(d, workers=40, assignments_per_worker=3, market=market)
    return db_path, market


def test_worker_table_matches_aggregate(study):
    db = StudyDB(study[0])
    mine = figures.workers(db).set_index("worker_id")
    _, theirs = filter_workers(db.judgments_frame(), QualityRule())
    theirs = theirs.set_index("worker_id")
    assert len(theirs) == 40 and set(theirs.index) <= set(mine.index)
    mine = mine.loc[theirs.index]
    assert theirs["flags"].astype(str).ne("").sum() >= 3          # the crowd has bad workers
    for col in ("assignments", "judgments", "sentinels", "sentinel_correct", "repeats",
                "repeats_inconsistent", "consensus_trials"):
        assert mine[col].astype(int).tolist() == theirs[col].astype(int).tolist(), col
    for col in ("sentinel_accuracy", "s_per_trial", "left_share", "side_p",
                "consensus_agreement"):
        np.testing.assert_allclose(mine[col].astype(float), theirs[col].astype(float),
                                   rtol=1e-9, equal_nan=True, err_msg=col)
    assert mine["flags"].tolist() == theirs["flags"].astype(str).tolist()
    assert mine["kept"].tolist() == theirs["kept"].tolist()
    assert mine["reason"].tolist() == theirs["reason"].astype(str).tolist()


def test_results_match_aggregate(study):
    db = StudyDB(study[0])
    kept, _ = filter_workers(db.judgments_frame(), QualityRule())
    r = figures.results(db)
    assert r.agreement == pytest.approx(agreement(kept))
    theirs = ranking(kept)
    mine = r.ranking
    assert list(mine.codec) == list(theirs.codec) and list(mine.target_bpp) == \
        list(theirs.target_bpp)
    for col in ("elo", "bt_log_strength", "mean_bpp"):
        np.testing.assert_allclose(mine[col], theirs[col], rtol=1e-9, err_msg=col)
    assert list(mine.wins) == list(theirs.wins)
    assert list(mine.comparisons) == list(theirs.comparisons)
    # the intervals: the same bootstrap in distribution, drawn differently (figures' docstring)
    width = (theirs.elo_hi - theirs.elo_lo).to_numpy()
    assert (mine.elo_lo <= mine.elo).all() and (mine.elo <= mine.elo_hi).all()
    np.testing.assert_allclose(mine.elo_lo, theirs.elo_lo, atol=0.35 * width.max())
    np.testing.assert_allclose(mine.elo_hi, theirs.elo_hi, atol=0.35 * width.max())
    assert r.kept_judgments == len(kept)
    assert 0 < r.split_half["spearman_brown"] <= 1


def test_bt_batch_is_bradley_terry():
    from mturk.analysis.aggregate import bradley_terry

    rng = np.random.default_rng(1)
    wins = rng.integers(0, 20, size=(6, 4, 4)).astype(float)
    wins[:, np.arange(4), np.arange(4)] = 0
    wins[2, 3, :] = wins[2, :, 3] = 0              # a player absent from one sample
    got = figures.bt_batch(wins)
    for s in range(6):
        d = {(str(i), str(j)): wins[s, i, j] for i in range(4) for j in range(4)
             if wins[s, i, j]}
        want = bradley_terry(d)
        for i in range(4):
            if str(i) in want:
                assert got[s, i] == pytest.approx(want[str(i)], abs=1e-8)
            else:
                assert np.isnan(got[s, i])


def test_spend_matches_manage(study, tmp_path):
    db = StudyDB(study[0])
    assert figures.spend(db, "local") == cost_so_far(db, "local")
    o = figures.overview(db, "local", Decimal("1.00"))
    assert o["judgments"] == len(db.judgments())
    assert o["submitted"] + o["approved"] + o["rejected"] == len(db.list_assignments())
    assert sum(h["n"] for h in o["per_hour"]) == len(db.judgments())
    assert o["over_budget"] and o["projected"] == \
        f"{sum(cost_so_far(db, 'local').values()):.2f}"


def test_actions_are_audited_idempotent_and_failures_change_nothing(tmp_path):
    market = InMemoryMarket(state_path=tmp_path / "study" / "market.json")
    db_path, _ = make_study(tmp_path, workers=6, assignments_per_worker=1, market=market)
    db = StudyDB(db_path)
    a = db.list_assignments()[0]
    row = perform(db, market, "local", "approve", a["assignment_id"], {}, "ann", "act-1")
    assert row["outcome"] == "done" and row["actor"] == "ann"
    assert db.get_assignment(a["assignment_id"])["status"] == "approved"
    assert market.s["assignments"][a["assignment_id"]]["status"] == "Approved"
    balance = market.get_account_balance()
    again = perform(db, market, "local", "approve", a["assignment_id"], {}, "ann", "act-1")
    assert again == row and market.get_account_balance() == balance      # nothing twice
    # a bonus: paid once by its token, recorded as paid
    b = perform(db, market, "local", "bonus", a["assignment_id"],
                {"amount": "0.25", "reason": "thanks"}, "ann", "act-2")
    assert b["outcome"] == "done" and len(market.bonuses()) == 1
    assert [x["paid_at"] is not None for x in db.list_bonuses()] == [True]
    # the market refuses: shown as failed, and the database unchanged
    other = db.list_assignments()[1]

    class Broken(InMemoryMarket):
        def reject_assignment(self, assignment_id, feedback):
            raise MarketError("Service unavailable", "ServiceUnavailable")

    f = perform(db, Broken(), "local", "reject", other["assignment_id"], {"reason": "bad"},
                "ann", "act-3")
    assert f["outcome"] == "failed" and "ServiceUnavailable" in f["market_answer"]
    assert db.get_assignment(other["assignment_id"])["status"] == "submitted"
    with pytest.raises(ActionError):
        perform(db, market, "local", "reject", other["assignment_id"], {}, "ann", "act-4")
    assert db.audit_action("act-4") is None                   # refused before any record
    blk = perform(db, market, "local", "block", a["worker_id"], {"reason": "spam"}, "ann",
                  "act-5")
    assert blk["outcome"] == "done" and db.is_blocked(a["worker_id"])
    qid = db.get_qualification_type("plic-soft-block-v1", "local")
    assert market.worker_qualification(qid, a["worker_id"]) == 1
    un = perform(db, market, "local", "unblock", a["worker_id"], {}, "ann", "act-6")
    assert un["outcome"] == "done" and not db.is_blocked(a["worker_id"])
    assert market.worker_qualification(qid, a["worker_id"]) is None
    rows = db.audit_actions()
    assert {x["action_id"] for x in rows} == {"act-1", "act-2", "act-3", "act-5", "act-6"}
    assert [x["requested_at"] for x in rows] == sorted((x["requested_at"] for x in rows),
                                                       reverse=True)          # newest first
    assert all(x["outcome"] != "pending" and x["finished_at"] for x in rows)


def _csrf(text: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)


def test_http_guards(study):
    app = create_dashboard(DashboardConfig(db=str(study[0]), secret=SECRET), study[1])
    c = app.test_client()
    for url in ("/", "/workers", "/results", "/workers/W00001", "/confirm/block/W00001"):
        r = c.get(url)
        assert r.status_code == 302 and r.location.endswith("/login"), url
    assert c.get("/api/live.json").status_code == 401
    tok = _csrf(c.get("/login").text)
    assert c.post("/login", data={"secret": SECRET}).status_code == 400       # no CSRF token
    assert c.post("/login", data={"secret": "nope", "csrf_token": tok}).status_code == 401
    r = c.post("/login", data={"secret": SECRET, "csrf_token": tok})
    assert r.status_code == 302
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and SECRET not in cookie
    assert c.get("/").status_code == 200
    assert c.post("/act", data={"action": "block", "target": "W00001", "action_id": "x1",
                                "reason": "r"}).status_code == 400           # no CSRF token
    assert StudyDB(study[0]).audit_action("x1") is None
    assert "default-src 'none'" in c.get("/").headers["Content-Security-Policy"]


def test_command_refuses_without_a_secret(study, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("PLIC_DASHBOARD_SECRET", raising=False)
    assert main(["--db", str(study[0]), "--backend", "memory"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no requester secret" in err[0]
    short = tmp_path / "s"
    short.write_text("short\n")
    assert main(["--db", str(study[0]), "--secret-file", str(short)]) == 2
    assert "shorter than 12" in capsys.readouterr().err
    monkeypatch.setenv("PLIC_DASHBOARD_SECRET", SECRET)
    assert main(["--db", str(study[0]), "--host", "0.0.0.0", "--backend", "memory"]) == 2
    assert "not a loopback address" in capsys.readouterr().err
    assert main(["--db", str(tmp_path / "none.sqlite"), "--backend", "memory"]) == 2
    assert "no study database" in capsys.readouterr().err


def test_workers_page_sorts_and_filters(study):
    app = create_dashboard(DashboardConfig(db=str(study[0]), secret=SECRET), study[1])
    c = app.test_client()
    c.post("/login", data={"secret": SECRET, "csrf_token": _csrf(c.get("/login").text)})
    w = figures.workers(StudyDB(study[0]))
    page = c.get("/workers?sort=side_p&dir=asc&filter=flagged").text
    shown = re.findall(r'<tr data-worker="([^"]+)"', page)
    flagged = w[w["flags"] != ""].sort_values(["side_p", "worker_id"])
    assert shown == list(flagged.worker_id)
    page = c.get("/workers?filter=fast").text
    shown = re.findall(r'<tr data-worker="([^"]+)"', page)
    assert shown == sorted(w[w["flags"].str.contains("fast")].worker_id)
    assert pd.Series(shown).size >= 1


@pytest.mark.parametrize("design", ["acr", "dsis"])
def test_rating_results_are_those_of_mturk_mos(tmp_path, design):
    from mturk.analysis.mos import aggregate_ratings

    db_path, trials = make_study(tmp_path, workers=16, assignments_per_worker=4, design=design,
                                 batch_size=12, n_refs=3)
    summary = aggregate_ratings(db_path, trials, tmp_path / "out")
    mos = pd.read_csv(tmp_path / "out" / "mos.csv").set_index("stimulus_id")
    codec = pd.read_csv(tmp_path / "out" / "codec_mos.csv")
    app = create_dashboard(DashboardConfig(db=str(db_path), secret=SECRET), InMemoryMarket())
    c = app.test_client()
    c.post("/login", data={"secret": SECRET, "csrf_token": _csrf(c.get("/login").text)})
    page = c.get("/results").text
    assert f"{design.upper()} ratings" in page
    for sid, r in mos.iterrows():
        cell = re.search(rf'data-stimulus="{re.escape(str(sid))}">.*?<td class="mos">([^<]+)',
                         page, re.S)
        assert cell and cell.group(1) == f"{r.mos:.3f}", sid
    for r in codec.itertuples():
        cell = re.search(rf'data-codec="{re.escape(r.codec)}" data-target="{r.target_bpp}">'
                         r'.*?<td class="mean">([^<]+)', page, re.S)
        assert cell and cell.group(1) == f"{r.mean:.3f}", (r.codec, r.target_bpp)
    shown = re.search(r'id="bt500">([^<]+)', page).group(1)
    assert shown == (", ".join(summary["bt500_rejected"]) or "none")
    rows = re.findall(r'<tr data-worker="([^"]+)">(.*?)</tr>', page, re.S)
    assert len(rows) == summary["workers"]
    dropped = {w for w, row in rows if row.rstrip().endswith("<td>no</td>")}
    assert dropped == set(summary["rejected_workers"]) and dropped          # screened out


def test_the_same_figures_on_postgresql(study):
    """The dashboard's SQL on the PostgreSQL store (issue 28) gives the SQLite store's figures."""
    from mturk.store.copy import copy_study
    from mturk.store.pg_cluster import PgCluster, find_bin_dir

    if find_bin_dir() is None:
        pytest.skip("PostgreSQL is not installed")
    src = StudyDB(study[0])
    with PgCluster() as pg:
        dst = StudyDB(pg.url())
        try:
            copy_study(src, dst, progress=lambda *a: None)
            a, b = figures.workers(src), figures.workers(dst)
            for col in a.columns.drop("blocked_reason"):
                if a[col].dtype.kind in "fi":
                    np.testing.assert_allclose(a[col].astype(float), b[col].astype(float),
                                               rtol=1e-12, equal_nan=True, err_msg=col)
                else:
                    assert a[col].tolist() == b[col].tolist(), col
            ra, rb = figures.results(src), figures.results(dst)
            assert ra.agreement == pytest.approx(rb.agreement)
            assert ra.split_half == pytest.approx(rb.split_half)
            pd.testing.assert_frame_equal(ra.ranking, rb.ranking)
            assert figures.overview(src, "local") == figures.overview(dst, "local")
            assert perform(dst, InMemoryMarket(), "local", "block", "W00002", {"reason": "x"},
                           "ann", "pg-1")["outcome"] == "done"
            assert dst.audit_actions()[0]["action_id"] == "pg-1" and dst.is_blocked("W00002")
        finally:
            dst.dispose()


def test_the_command_refreshes_figures_in_the_background(tmp_path):
    db_path, _ = make_study(tmp_path, workers=5, assignments_per_worker=1)
    app = create_dashboard(DashboardConfig(db=str(db_path), secret=SECRET, poll_s=0.2),
                           InMemoryMarket(), background=True)
    figs = app.extensions["plic_dashboard"]["figures"]
    first = figs.snapshot()
    assert figs.snapshot() is first                      # pages reuse the snapshot
    db = StudyDB(db_path)
    db.block_worker("W00001", "test")
    for _ in range(100):
        if figs.snapshot() is not first:
            break
        time.sleep(0.05)
    snap = figs.snapshot()
    assert snap is not first and snap["stamp"] == db.dash_change_stamp()
    w = snap["workers"].set_index("worker_id")
    assert w.loc["W00001", "blocked"] == 1 and w.loc["W00001", "reason"] == "blocked"


def test_a_lab_study_is_reviewed_in_the_database_only(tmp_path):
    db_path, _ = make_study(tmp_path, workers=2, assignments_per_worker=1)
    db = StudyDB(db_path)
    claim = db.claim_local_assignment("P0001")            # as a participant link does
    aid, hit = claim["assignment_id"], claim["hit_id"]
    assert db.get_hit(hit)["question"] == "local"
    db.record_submission(aid, hit, "P0001", [
        dict(trial_id=t["trial_id"], choice="a", shown_left=t["left"], rt_ms=2000)
        for t in db.batch_trials(db.get_hit(hit)["batch_id"])])
    market = InMemoryMarket()
    row = perform(db, market, "local", "approve", aid, {}, "ann", "lab-1")
    assert row["outcome"] == "done" and "database only" in row["market_answer"]
    assert db.get_assignment(aid)["status"] == "approved"
    with pytest.raises(ActionError, match="no marketplace"):
        perform(db, market, "local", "bonus", aid, {"amount": "0.10", "reason": "x"}, "ann",
                "lab-2")
