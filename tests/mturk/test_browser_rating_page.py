"""The ACR and DSIS rating pages in headless Chromium, inside an MTurk-like worker frame: keys and
clicks, the reference-then-test sequence of DSIS, 1:1 display, preview, the phone guard, and the
externalSubmit POST beside the server's record. Screenshots go to ``$PLIC_SCREENSHOTS``."""

from __future__ import annotations

import json
import threading

import pytest

from mturk.design.trials import TrialsConfig, build
from mturk.sim.toy_index import make_toy_index
from mturk.web.app import AppConfig, create_app
from mturk.web.serve import make_study_server
from tests.mturk.test_browser_mturk_frame import (
    PUBLIC,
    frame_of,
    intercept,
    mturk_page,
    shots,
    wait_posted,
)
from tests.mturk.test_browser_twoafc_page import (  # noqa: F401 - fixtures
    DESKTOP,
    PHONE,
    SANDBOX,
    browser,
    wait_until,
)

pytestmark = pytest.mark.browser
NARROW = {"width": 280, "height": 600}
LOADED = "() => { const i = document.getElementById('stimulus-img'); " \
         "return i.complete && i.naturalWidth > 0; }"


@pytest.fixture(scope="module")
def index(tmp_path_factory, sample_images):
    d = tmp_path_factory.mktemp("rstudy")
    return make_toy_index(d / "dist", images=sample_images, n_refs=2, size=256,
                          qualities=(5, 30, 80))


@pytest.fixture
def rating_server(index, tmp_path):
    started: list = []

    def start(design: str):
        trials = build(index, tmp_path / design, TrialsConfig(batch_size=8, design=design))[0]
        app = create_app(AppConfig(trials=str(trials), db=str(tmp_path / f"{design}.sqlite")))
        srv = make_study_server("127.0.0.1", 0, app)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        started.append(srv)
        return f"http://127.0.0.1:{srv.server_port}", app.extensions["plic_db"]

    yield start
    for s in started:
        s.shutdown()


def open_in_frame(browser, base, query, viewport, posted):  # noqa: F811
    page = browser.new_page(viewport=viewport)
    page.route(f"{PUBLIC}/**", lambda route: route.fulfill(
        response=route.fetch(url=route.request.url.replace(PUBLIC, base))))
    intercept(page, posted, {f"{SANDBOX}/projects": mturk_page(f"{PUBLIC}/task?{query}")})
    page.goto(f"{SANDBOX}/projects/P1/tasks/T1")
    frame = frame_of(page, PUBLIC)
    frame.wait_for_selector("#trial")
    return page, frame


def state(frame) -> dict:
    return frame.evaluate("""() => {
        const task = JSON.parse(document.getElementById('task-data').textContent);
        const i = Number(document.getElementById('trial').dataset.index);
        const img = document.getElementById('stimulus-img');
        const abs = u => u && new URL(u, location.href).href;
        return {phase: document.getElementById('trial').dataset.phase, src: img.src,
                img: abs(task.trials[i].img), ref: abs(task.trials[i].ref), index: i,
                id: task.trials[i].trial_id, n: task.trials.length,
                disabled: document.getElementById('scale').disabled,
                full: img.getBoundingClientRect().width * devicePixelRatio >= img.naturalWidth};
    }""")


def rated(frame) -> int:
    return int(frame.locator("#progress").inner_text().split("\u2014")[1].split(" of ")[0])


def check_recorded(db, aid, posted_answers):
    """The server's rows equal what went to MTurk, mapped back through the page ids."""
    hit = db.get_hit(db.get_assignment(aid)["hit_id"])
    ids = db.keys().page_ids(aid, [t["trial_id"] for t in db.batch_trials(hit["batch_id"])])
    rows = {r["trial_id"]: r["score"] for r in db.ratings(aid)}
    assert rows == {ids[a["trial_id"]]: a["score"] for a in posted_answers}


def test_acr_page_in_an_mturk_frame(browser, rating_server, tmp_path):  # noqa: F811
    base, db = rating_server("acr")
    db.add_hit("HITA", db.batch_ids()[0], "sandbox", max_assignments=3)
    posted: list = []
    page, frame = open_in_frame(browser, base, f"assignmentId=ASGA&hitId=HITA&workerId=WRKA"
                                f"&turkSubmitTo={SANDBOX}", DESKTOP, posted)
    task = json.loads(frame.locator("#task-data").inner_text())
    assert task["design"] == "acr" and all("ref" not in t for t in task["trials"])
    labels = [b.strip() for b in frame.locator(".score").all_inner_texts()]
    assert labels == ["5 Excellent", "4 Good", "3 Fair", "2 Poor", "1 Bad"]
    assert wait_until(frame, LOADED)
    page.screenshot(path=str(shots(tmp_path) / "acr-1280x800.png"))
    s = state(frame)
    assert s["phase"] == "test" and s["src"] == s["img"] and s["full"] and not s["disabled"]
    scores = {}
    frame.click(".score[data-score='4']")                       # a click
    scores[s["id"]] = 4
    for k in range(1, s["n"]):                                  # then the keys 1..5
        s = state(frame)
        assert rated(frame) == k and frame.locator("#submit").is_disabled()
        key = 1 + k % 5
        frame.press("body", str(key))
        scores[s["id"]] = key
    frame.press("body", "Backspace")                            # back, change the last one
    s = state(frame)
    frame.press("body", "2")
    scores[s["id"]] = 2
    assert rated(frame) == s["n"] and frame.locator("#submit").is_enabled()
    frame.click("#submit")
    wait_posted(page, posted, 1)
    answers = json.loads(posted[0]["answers"][0])
    assert posted[0]["assignmentId"] == ["ASGA"] and answers["hit_id"] == "HITA"
    assert {a["trial_id"]: a["score"] for a in answers["answers"]} == scores
    check_recorded(db, "ASGA", answers["answers"])


def test_dsis_page_shows_the_reference_first(browser, rating_server, tmp_path):  # noqa: F811
    base, db = rating_server("dsis")
    db.add_hit("HITD", db.batch_ids()[0], "sandbox", max_assignments=3)
    posted: list = []
    page, frame = open_in_frame(browser, base, f"assignmentId=ASGD&hitId=HITD&workerId=WRKD"
                                f"&turkSubmitTo={SANDBOX}", DESKTOP, posted)
    frame.click("#stimulus")                  # the keyboard goes to the frame a worker clicked
    assert frame.locator(".score").first.inner_text().strip() == "5 Imperceptible"
    n = state(frame)["n"]
    for k in range(n):
        s = state(frame)
        assert s["phase"] == "ref" and s["src"] == s["ref"] and s["disabled"]
        frame.press("body", "3")                                 # no rating before the test
        assert rated(frame) == k
        if k == 0:
            assert wait_until(frame, LOADED) and state(frame)["full"]
            page.screenshot(path=str(shots(tmp_path) / "dsis-reference-1280x800.png"))
        frame.press("body", " " if k % 2 else "Enter")
        s = state(frame)
        assert s["phase"] == "test" and s["src"] == s["img"] and not s["disabled"]
        if k == 0:
            frame.press("body", "r")                             # the reference again
            assert state(frame)["phase"] == "ref"
            frame.click("#to-test")
        frame.press("body", str(5 - k % 5))
    assert rated(frame) == n
    frame.click("#submit")
    wait_posted(page, posted, 1)
    answers = json.loads(posted[0]["answers"][0])["answers"]
    assert sorted(a["score"] for a in answers) == sorted(5 - k % 5 for k in range(n))
    check_recorded(db, "ASGD", answers)


@pytest.mark.parametrize("design", ["acr", "dsis"])
def test_preview_and_small_windows_take_no_ratings(browser, rating_server, design,  # noqa: F811
                                                  tmp_path):
    base, db = rating_server(design)
    db.add_hit("HITP", db.batch_ids()[0], "sandbox", max_assignments=3)
    posted: list = []
    page, frame = open_in_frame(browser, base, "assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE"
                                "&hitId=HITP", DESKTOP, posted)
    assert frame.locator("#preview-banner").is_visible()
    frame.click("#stimulus")
    frame.press("body", " ")
    frame.press("body", "5")
    assert rated(frame) == 0 and frame.locator("#submit").is_disabled() and state(frame)["full"]
    page.close()
    # one 256-px view fits a 390-px phone; a narrower window does not
    page, frame = open_in_frame(browser, base, f"assignmentId=ASGP&hitId=HITP&workerId=WRKP"
                                f"&turkSubmitTo={SANDBOX}", PHONE, posted)
    assert wait_until(frame, LOADED) and not frame.locator("#too-small").is_visible()
    page.screenshot(path=str(shots(tmp_path) / f"{design}-390x844.png"))
    page.close()
    page, frame = open_in_frame(browser, base, f"assignmentId=ASGS&hitId=HITP&workerId=WRKS"
                                f"&turkSubmitTo={SANDBOX}", NARROW, posted)
    assert wait_until(frame, LOADED)
    warn = frame.locator("#too-small")
    assert warn.is_visible() and "too small" in warn.inner_text() and state(frame)["full"]
    frame.click("#stimulus")
    frame.press("body", " ")
    frame.press("body", "4")
    assert rated(frame) == 0 and frame.locator("#submit").is_disabled()
    assert db.ratings() == [] and posted == []


def test_min_window_rating_is_where_the_page_starts_to_fit(browser, rating_server):  # noqa: F811
    from mturk.web.page import SCROLLBAR_PX
    from mturk.web.rating_page import min_window_rating

    base, db = rating_server("acr")
    db.add_hit("HITW", db.batch_ids()[0], "sandbox", max_assignments=3)
    w, h = min_window_rating(256, 256)
    url = f"{base}/task?assignmentId=ASGW&hitId=HITW&workerId=WRKW&turkSubmitTo={SANDBOX}"
    for size, fits in (((w, h), True), ((w - SCROLLBAR_PX - 1, h), False), ((w, h - 1), False)):
        page = browser.new_page(viewport={"width": size[0], "height": size[1]})
        page.goto(url)
        assert wait_until(page, LOADED)
        assert page.locator("#too-small").is_visible() is not fits, size
        page.close()
