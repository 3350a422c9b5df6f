"""The requester's dashboard in headless Chromium (Debian's, driven by Playwright; never a
download): login and its refusals, every page's figures against mturk.analysis on the same
database, an approve and a block through the in-memory market with their audit rows, a POST
without its CSRF token refused, live refresh, and the workers' HIT server that has none of the
dashboard's routes. ``PLIC_DASHBOARD_SCREENSHOTS=DIR`` also saves each page as a PNG there
(the README's pictures: docs/dashboard/)."""

from __future__ import annotations

import os
import re
import shutil
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from mturk.analysis.aggregate import agreement, filter_workers, ranking
from mturk.analysis.worker_quality import QualityRule
from mturk.dashboard.app import DashboardConfig, create_dashboard
from mturk.dashboard.study_maker import make_study
from mturk.market.memory import InMemoryMarket
from mturk.store.study_db import StudyDB
from mturk.web.app import AppConfig, create_app
from mturk.web.serve import make_study_server

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SECRET = "browser-test-requester-secret"
SHOTS = os.environ.get("PLIC_DASHBOARD_SCREENSHOTS", "")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("chromium not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def study(tmp_path_factory, sample_images):
    d = tmp_path_factory.mktemp("bdash")
    market = InMemoryMarket(state_path=d / "study" / "market.json")
    db_path, trials = make_study(d, workers=24, assignments_per_worker=3, market=market,
                                 size=96, images=sample_images)
    return db_path, trials, market


@pytest.fixture(scope="module")
def dashboard(study):
    db_path, _, market = study
    app = create_dashboard(DashboardConfig(db=str(db_path), secret=SECRET, poll_s=1.0,
                                           budget=None), market)
    srv = make_study_server("127.0.0.1", 0, app)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def _login(browser, base, width=1280):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(f"{base}/")
    page.fill("input[name=name]", "ann")
    page.fill("input[name=secret]", SECRET)
    page.click("#login button")
    page.wait_for_selector("h1:has-text('Overview')")
    return page


def _shot(page, name: str, full: bool = False) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=full)


def wait_until(page, js: str, tries: int = 100) -> bool:
    for _ in range(tries):
        if page.evaluate(js):
            return True
        page.wait_for_timeout(100)
    return False


def test_login_and_its_refusals(browser, dashboard):
    page = browser.new_page()
    for path in ("/", "/workers", "/results", "/workers/W00001"):
        page.goto(dashboard + path)
        assert page.url.endswith("/login"), path               # nothing without a session
    page.fill("input[name=secret]", "not-the-secret")
    page.click("#login button")
    assert page.locator("#login-error").inner_text() == "wrong secret"
    assert page.url.endswith("/login") and SECRET not in page.url
    _shot(page, "login")
    cookies = page.context.cookies()
    assert all(c["httpOnly"] and c["sameSite"] == "Strict" for c in cookies)
    page.fill("input[name=secret]", SECRET)
    page.click("#login button")
    page.wait_for_selector("h1:has-text('Overview')")
    assert SECRET not in page.url
    assert page.evaluate("document.cookie") == ""                # HttpOnly: scripts see none
    page.click("header form button")                              # log out
    page.goto(dashboard + "/results")
    assert page.url.endswith("/login")
    page.close()


def test_pages_show_the_figures_of_mturk_analysis(browser, dashboard, study):
    db = StudyDB(study[0])
    kept, workers = filter_workers(db.judgments_frame(), QualityRule())
    page = _login(browser, dashboard)
    assert page.locator('[data-k="judgments"]').first.inner_text() == str(len(db.judgments()))
    assert page.locator('[data-k="submitted"]').inner_text() == \
        str(len(db.list_assignments(status="submitted")))
    _shot(page, "overview")
    page.goto(f"{dashboard}/workers?sort=worker_id")
    rows = page.locator("#workers-table tbody tr")
    assert rows.count() == len(workers)
    by_id = workers.set_index("worker_id")
    for i in range(rows.count()):
        r = rows.nth(i)
        wid = r.get_attribute("data-worker")
        assert r.locator("td.flags").inner_text() == str(by_id.loc[wid, "flags"])
    page.click('a[data-sort="side_p"]')                            # sort by a column
    shown = page.eval_on_selector_all("#workers-table tbody tr", "rs => rs.map(r => "
                                      "r.dataset.worker)")
    assert shown == list(workers.sort_values(["side_p", "worker_id"]).worker_id)
    page.select_option("select[name=filter]", "flagged")          # filter
    page.click("#filters button")
    shown = page.eval_on_selector_all("#workers-table tbody tr", "rs => rs.map(r => "
                                      "r.dataset.worker)")
    assert sorted(shown) == sorted(workers[workers["flags"].astype(str) != ""].worker_id)
    page.select_option("select[name=filter]", "all")
    page.click("#filters button")
    _shot(page, "workers")
    page.goto(f"{dashboard}/results")
    a = agreement(kept)
    assert page.locator('[data-k="pairwise_agreement"]').inner_text() == \
        f"{a['pairwise_agreement']:.4f}"
    assert page.locator('[data-k="fleiss_kappa"]').inner_text() == f"{a['fleiss_kappa']:.4f}"
    for r in ranking(kept).itertuples():
        cell = page.locator(f'#ranking tr[data-codec="{r.codec}"][data-target="{r.target_bpp}"]'
                            " td.elo")
        assert cell.inner_text() == f"{r.elo:.1f}"
    assert page.locator("svg.chart").count() == 2
    _shot(page, "results", full=True)
    page.close()


def test_worker_page_shows_the_trials_at_one_to_one(browser, dashboard, study):
    db = StudyDB(study[0])
    wid = db.list_workers()[0]["worker_id"]
    page = _login(browser, dashboard)
    page.goto(f"{dashboard}/workers/{wid}")
    trials = page.locator(".trial")
    n = len([j for a in db.list_assignments(worker_id=wid) for j in db.judgments(
        a["assignment_id"])])
    assert trials.count() == min(n, 12)
    assert wait_until(page, "() => [...document.querySelectorAll('img.one')].every("
                            "i => i.complete && i.naturalWidth > 0)")
    sizes = page.eval_on_selector_all("img.one", "is => is.map(i => [i.naturalWidth, "
                                      "i.getBoundingClientRect().width])")
    assert sizes and all(nat == shown for nat, shown in sizes)     # one image pixel per pixel
    first = db.dash_worker_judgments(wid, 1, 0)[1][0]
    t = page.locator(f'.trial[data-trial="{first["trial_id"]}"]').first
    assert t.locator("b.choice").inner_text() == first["choice"]
    assert t.locator("figure.ref img").count() == 1 and t.locator("figure").count() == 3
    _shot(page, "worker")
    page.close()


def test_approve_and_block_through_the_market_with_audit_rows(browser, dashboard, study):
    db_path, _, market = study
    db = StudyDB(db_path)
    asg = db.list_assignments(status="submitted")[0]
    wid = asg["worker_id"]
    page = _login(browser, dashboard)
    page.goto(f"{dashboard}/workers/{wid}")
    page.click(f'tr[data-assignment="{asg["assignment_id"]}"] a:has-text("Approve")')
    assert "Confirm: approve" in page.locator("h1").inner_text()
    _shot(page, "confirm")
    page.click("#do")
    page.wait_for_selector("#flash")
    assert "done" in page.locator("#flash").inner_text()
    assert db.get_assignment(asg["assignment_id"])["status"] == "approved"
    assert market.s["assignments"][asg["assignment_id"]]["status"] == "Approved"
    row = page.locator(f'table.audit tr[data-action="approve"][data-target="'
                       f'{asg["assignment_id"]}"]')
    assert row.locator("td.outcome").inner_text() == "done"
    assert "ann" in row.inner_text() and "ApproveAssignment" in row.inner_text()
    page.click("#block")
    page.fill("input[name=reason]", "answers at random")
    page.click("#do")
    page.wait_for_selector("#flash")
    row = page.locator(f'table.audit tr[data-action="block"][data-target="{wid}"]')
    assert row.locator("td.outcome").inner_text() == "done"
    assert "answers at random" in row.inner_text()
    assert db.is_blocked(wid)
    qid = db.get_qualification_type("plic-soft-block-v1", "local")
    assert market.worker_qualification(qid, wid) == 1
    # the market refuses (an approved assignment cannot be rejected): shown as failed, and
    # nothing recorded as done
    page.goto(f"{dashboard}/confirm/reject/{asg['assignment_id']}")
    page.fill("input[name=reason]", "changed my mind")
    page.click("#do")
    page.wait_for_selector("#flash")
    assert "failed" in page.locator("#flash").inner_text()
    row = page.locator(f'table.audit tr[data-action="reject"][data-target="'
                       f'{asg["assignment_id"]}"]')
    assert row.locator("td.outcome").inner_text() == "failed"
    assert "MarketError" in row.inner_text()
    assert db.get_assignment(asg["assignment_id"])["status"] == "approved"
    assert market.s["assignments"][asg["assignment_id"]]["status"] == "Approved"
    audit = {(a["action"], a["target"]): a for a in db.audit_actions()}
    assert audit["approve", asg["assignment_id"]]["outcome"] == "done"
    assert audit["block", wid]["actor"] == "ann"
    _shot(page, "worker_audit")
    page.close()


def test_a_post_without_its_csrf_token_is_refused(browser, dashboard, study):
    db = StudyDB(study[0])
    wid = db.list_workers()[-1]["worker_id"]
    page = _login(browser, dashboard)
    status = page.evaluate("""async (wid) => {
        const body = new URLSearchParams({action: 'block', target: wid, action_id: 'forged1',
                                          reason: 'x'});
        const r = await fetch('/act', {method: 'POST', body});
        return r.status;
    }""", wid)
    assert status == 400
    assert db.audit_action("forged1") is None and not db.is_blocked(wid)
    page.close()


def test_pages_refresh_without_a_reload(browser, dashboard, study):
    db_path = study[0]
    db = StudyDB(db_path)
    page = _login(browser, dashboard)
    page.evaluate("window.sameDocument = true")
    before = int(page.locator('[data-k="judgments"]').first.inner_text())
    # a new assignment arrives while the page is open
    hit = db.list_hits()[0]
    trials = db.batch_trials(hit["batch_id"])
    now = datetime.now(timezone.utc)
    db.accept_assignment("LIVE1", hit["hit_id"], "WLIVE",
                         accepted_at=(now - timedelta(minutes=2)).isoformat())
    db.record_submission("LIVE1", hit["hit_id"], "WLIVE", [
        dict(trial_id=t["trial_id"], choice="a", shown_left=t["left"], rt_ms=2000)
        for t in trials])
    want = str(before + len(trials))
    assert wait_until(page, f"() => document.querySelector('[data-k=judgments]').textContent"
                            f" === '{want}'")
    assert page.evaluate("window.sameDocument") is True          # no reload happened
    page.close()


def test_the_hit_server_has_no_dashboard_route(browser, study, tmp_path):
    _, trials, _ = study
    app = create_app(AppConfig(trials=str(trials), db=str(tmp_path / "hit.sqlite"), local=True))
    srv = make_study_server("127.0.0.1", 0, app)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_port}"
    try:
        db = app.extensions["plic_db"]
        page = browser.new_page()
        page.goto(f"{base}/local/start?p={db.keys().participant_token(1)}")  # a worker's page
        got = page.evaluate("""async () => {
            const out = {};
            for (const p of ['/login', '/workers', '/workers/P0001', '/results',
                             '/api/live.json', '/confirm/block/P0001', '/img/x/ref']) {
                out[p] = (await fetch(p)).status;
            }
            for (const p of ['/act', '/login', '/logout']) {
                out['POST ' + p] = (await fetch(p, {method: 'POST'})).status;
            }
            const home = await (await fetch('/')).text();
            out.home = /dashboard|audit|Log in/i.test(home);
            return out;
        }""")
        assert got.pop("home") is False
        assert all(s in (404, 405) for s in got.values()), got
        assert not any(re.search(r"dashboard", r.rule) for r in app.url_map.iter_rules())
        page.close()
    finally:
        srv.shutdown()


def test_results_page_of_a_rating_study(browser, tmp_path, sample_images):
    from mturk.analysis.mos import aggregate_ratings

    db_path, trials = make_study(tmp_path, workers=14, assignments_per_worker=4, design="acr",
                                 batch_size=12, n_refs=3, size=96, images=sample_images)
    aggregate_ratings(db_path, trials, tmp_path / "out")
    codec = pd.read_csv(tmp_path / "out" / "codec_mos.csv")
    app = create_dashboard(DashboardConfig(db=str(db_path), secret=SECRET), InMemoryMarket())
    srv = make_study_server("127.0.0.1", 0, app)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        page = _login(browser, f"http://127.0.0.1:{srv.server_port}")
        page.click("header nav a:has-text('Results')")
        assert "ACR ratings" in page.locator("h1").inner_text()
        for r in codec.itertuples():
            cell = page.locator(f'#codec-mos tr[data-codec="{r.codec}"]'
                                f'[data-target="{r.target_bpp}"] td.mean')
            assert cell.inner_text() == f"{r.mean:.3f}"
        assert page.locator("svg.chart").count() == 1
        _shot(page, "results_ratings", full=True)
        page.close()
    finally:
        srv.shutdown()
