"""The HIT page in headless Chromium (Debian's, driven by Playwright; never a download)."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from mturk.design.trials import TrialsConfig, build
from mturk.sim.toy_index import make_toy_index
from mturk.web.app import AppConfig, create_app
from mturk.web.serve import make_study_server

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SANDBOX = "https://workersandbox.mturk.com"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


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
def trials_csv(tmp_path_factory, sample_images):
    """Two sample photos, JPEG at three qualities, 256-px views: what a worker really sees."""
    d = tmp_path_factory.mktemp("bstudy")
    index = make_toy_index(d / "dist", images=sample_images, n_refs=2, size=256,
                           qualities=(5, 30, 80))
    return build(index, d / "study", TrialsConfig(batch_size=5, sentinel_share=0.2,
                                                  repeats=1))[0]


@pytest.fixture
def server(trials_csv, tmp_path):
    def start(local: bool):
        app = create_app(AppConfig(trials=str(trials_csv), db=str(tmp_path / "j.sqlite"),
                                   local=local))
        srv = make_study_server("127.0.0.1", 0, app)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        started.append(srv)
        return f"http://127.0.0.1:{srv.server_port}", app.extensions["plic_db"]

    started: list = []
    yield start
    for s in started:
        s.shutdown()


def _progress(page) -> str:
    return page.locator("#progress").inner_text()


def wait_until(page_or_frame, js: str, tries: int = 100) -> bool:
    """Poll a JS predicate (wait_for_function string-evaluates, which the CSP forbids)."""
    for _ in range(tries):
        if page_or_frame.evaluate(js):
            return True
        page_or_frame.wait_for_timeout(50)
    return False


IMAGES_LOADED = ("() => ['left-img', 'ref-img', 'right-img'].every(i => "
                 "document.getElementById(i).complete && document.getElementById(i).naturalWidth)")


def test_local_click_keyboard_guard_and_rows(browser, server):
    base, db = server(local=True)
    page = browser.new_page(viewport=DESKTOP)
    page.goto(f"{base}/local/start?p={db.keys().participant_token(1)}")
    n = len(db.batch_trials(db.list_hits(mode="local")[0]["batch_id"]))
    assert page.locator("#submit").is_disabled()
    assert f"0 of {n} answered" in _progress(page)
    assert wait_until(page, IMAGES_LOADED)
    assert page.locator("#ref-img").evaluate("i => i.naturalWidth") == 256
    sides = []
    order = [t["trial_id"] for t in json.loads(page.locator("#task-data").inner_text())["trials"]]
    page.click("#left")                                   # click
    sides.append("left")
    page.keyboard.press("2")                              # keyboard: 2 = right
    sides.append("right")
    page.focus("#right")                                  # Enter on a focused candidate
    page.keyboard.press("Enter")
    sides.append("right")
    assert page.locator("#submit").is_disabled()          # guard: some left
    page.keyboard.press("z")
    assert page.locator("#zoom").get_attribute("aria-pressed") == "true"
    box = page.locator("#left .frame").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.75)
    origins = page.evaluate("['left-img','ref-img','right-img'].map("
                            "i => document.getElementById(i).style.transformOrigin)")
    x, y = (float(v.rstrip("%")) for v in origins[0].split())
    assert len(set(origins)) == 1 and abs(x - 25) < 2 and abs(y - 75) < 2   # all crops move
    page.keyboard.press("z")
    page.keyboard.press("f")
    assert "flickering" in page.locator("#trial").get_attribute("class")
    # flicker: the candidates show the reference in turn, then come back
    assert wait_until(page, "() => ['left-img', 'right-img'].every(i => document."
                            "getElementById(i).src === document.getElementById('ref-img').src)")
    page.keyboard.press("f")
    assert page.evaluate("""() => {
        const task = JSON.parse(document.getElementById('task-data').textContent);
        const t = task.trials[Number(document.getElementById('trial').dataset.index)];
        const abs = u => new URL(u, location.href).href;
        return document.getElementById('left-img').src === abs(t.left) &&
               document.getElementById('right-img').src === abs(t.right);
    }""")
    page.focus("#left")                                   # Space on a focused candidate
    page.keyboard.press(" ")
    sides.append("left")
    page.keyboard.press("ArrowLeft")
    sides.append("left")
    assert f"{n} of {n} answered" in _progress(page)
    assert page.locator("#submit").is_enabled()
    page.click("#submit")
    page.wait_for_selector("#done", state="visible")
    a = db.list_assignments(status="submitted")
    assert len(a) == 1 and a[0]["worker_id"] == "P0001"
    ids = db.keys().page_ids(a[0]["assignment_id"], [t["trial_id"] for t in db.batch_trials(
        db.get_hit(a[0]["hit_id"])["batch_id"])])
    rows = {r["trial_id"]: r for r in db.judgments(a[0]["assignment_id"])}
    assert len(rows) == n
    for pid, side in zip(order, sides):                  # the page's order, the sides chosen
        t = db.trial(ids[pid])
        expect = t["left"] if side == "left" else ("b" if t["left"] == "a" else "a")
        assert rows[t["trial_id"]]["choice"] == expect and rows[t["trial_id"]]["rt_ms"] >= 0


def test_preview_mode_cannot_answer_or_submit(browser, server):
    base, db = server(local=False)
    db.add_hit("HITP", db.batch_ids()[0], "sandbox")
    page = browser.new_page(viewport=DESKTOP)
    page.goto(f"{base}/task?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=HITP")
    assert page.locator("#preview-banner").is_visible()
    for _ in range(6):
        page.keyboard.press("1")
    page.click("#left")
    assert "0 of" in _progress(page).split("\u2014")[1]
    assert page.locator("#submit").is_disabled()
    assert db.counts()["assignments"] == 0 and db.counts()["judgments"] == 0


def test_no_javascript_says_so_and_shows_no_empty_boxes(browser, server):
    base, db = server(local=True)
    ctx = browser.new_context(java_script_enabled=False, viewport=DESKTOP)
    page = ctx.new_page()
    page.goto(f"{base}/local/start?p={db.keys().participant_token(2)}")
    assert page.locator("#noscript").is_visible()
    assert "needs JavaScript" in page.locator("#noscript").inner_text()
    assert not page.locator("#trial").is_visible() and not page.locator("#tools").is_visible()
    ctx.close()


@pytest.mark.parametrize("dpr, device_px", [(1, 1), (2, 2), (1.5, 1)])
def test_images_are_never_downscaled_and_zoom_is_nearest_neighbour(browser, server, dpr,
                                                                    device_px):
    base, db = server(local=True)
    ctx = browser.new_context(viewport=DESKTOP, device_scale_factor=dpr)
    page = ctx.new_page()
    page.goto(f"{base}/local/start?p={db.keys().participant_token(3)}")
    assert wait_until(page, IMAGES_LOADED)
    for i in ("left-img", "ref-img", "right-img"):
        got = page.evaluate(f"""() => {{ const im = document.getElementById('{i}');
            return [im.getBoundingClientRect().width * devicePixelRatio, im.naturalWidth,
                    getComputedStyle(im).imageRendering]; }}""")
        # each image pixel drawn as a whole number (>= 1) of device pixels (CSS lengths snap
        # to 1/64 px, rounded up), sharp
        assert got[1] * device_px <= got[0] <= got[1] * device_px + dpr / 64 + 1e-6
        assert got[2] == "pixelated"
    assert not page.locator("#too-small").is_visible()
    page.keyboard.press("z")
    assert page.evaluate("() => getComputedStyle(document.getElementById('ref-img'))"
                         ".transform") == "matrix(3, 0, 0, 3, 0, 0)"
    ctx.close()


def test_hit_mode_posts_to_mturk_and_records(browser, server):
    base, db = server(local=False)
    db.add_hit("HIT1", db.batch_ids()[0], "sandbox", max_assignments=3)
    posted = []

    def mturk(route):
        posted.append((route.request.url, route.request.post_data))
        route.fulfill(status=200, body="ok from fake MTurk")

    page = browser.new_page(viewport=DESKTOP)
    page.route(f"{SANDBOX}/**", mturk)
    page.goto(f"{base}/task?assignmentId=ASG1&hitId=HIT1&workerId=WRK1&turkSubmitTo={SANDBOX}")
    form = page.locator("#submit-form")
    assert form.get_attribute("action") == f"{SANDBOX}/mturk/externalSubmit"
    assert form.get_attribute("method") == "POST"
    n = len(db.batch_trials(db.batch_ids()[0]))
    for _ in range(n):
        page.keyboard.press("1")
    with page.expect_navigation():
        page.click("#submit")
    assert len(posted) == 1 and posted[0][0] == f"{SANDBOX}/mturk/externalSubmit"
    fields = parse_qs(posted[0][1])
    assert fields["assignmentId"] == ["ASG1"]
    answers = json.loads(fields["answers"][0])
    assert answers["assignment_id"] == "ASG1" and len(answers["answers"]) == n
    assert {a["side"] for a in answers["answers"]} == {"left"}
    rows = db.judgments("ASG1")                     # the server recorded the same answers
    assert len(rows) == n and all(r["choice"] == r["shown_left"] for r in rows)
    assert db.get_assignment("ASG1")["status"] == "submitted"


@pytest.mark.parametrize("parent, allowed", [
    ("https://workersandbox.mturk.com/projects/x/tasks", True),
    ("https://evil.example.org/phish", False),
])
def test_framing_only_by_mturk(browser, server, parent, allowed):
    base, db = server(local=False)
    db.add_hit("HITF", db.batch_ids()[0], "sandbox")
    # The study server as a public https host (as behind its TLS proxy), proxied to loopback,
    # so the browser applies the real response headers without mixed-content rules in the way.
    public = "https://study.example.org"
    src = f"{public}/task?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=HITF"
    page = browser.new_page()
    page.route(f"{public}/**", lambda route: route.fulfill(
        response=route.fetch(url=route.request.url.replace(public, base))))
    page.route(parent, lambda route: route.fulfill(
        status=200, content_type="text/html",
        body=f'<html><body><iframe id="f" src="{src}" width="900" height="600"></iframe>'))
    page.goto(parent)
    page.wait_for_load_state("load")
    page.wait_for_timeout(300)
    frame = next((f for f in page.frames if f.url.startswith(public)), None)
    loaded = False
    if frame is not None:
        try:
            loaded = frame.evaluate("() => !!document.getElementById('task-data')")
        except Exception:        # a blocked frame has no document of ours
            loaded = False
    assert loaded is allowed
