"""Both HIT page variants as MTurk renders them: inside a worker page's frame, with MTurk's query
parameters, the form's POST to externalSubmit intercepted and inspected. Screenshots at 1280x800
and 390x844 go to ``$PLIC_SCREENSHOTS`` (else the test's tmp folder)."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from mturk.market import Assignment
from mturk.market import collect as C
from mturk.market import publish as P
from mturk.market.questions import NS_HTML_QUESTION, answers_xml
from mturk.tokens import html_scope
from mturk.web.page import PREVIEW_ASSIGNMENT
from tests.mturk.test_browser_twoafc_page import (  # noqa: F401 - fixtures
    DESKTOP,
    IMAGES_LOADED,
    PHONE,
    SANDBOX,
    browser,
    server,
    trials_csv,
    wait_until,
)

pytestmark = pytest.mark.browser
PUBLIC = "https://study.example.org"            # the study server behind its TLS proxy
CDN = "https://img.example.org/study"           # the HTMLQuestion's public image host
CONTENT = "https://workersandbox.mturkcontent.com/dynamic/hit"   # where MTurk hosts HTMLQuestions


def mturk_page(src: str) -> str:
    """A worker page as MTurk draws it: its own header, the task in a frame below."""
    return f"""<!doctype html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><style>
body {{ margin: 0; font-family: sans-serif; }}
header {{ height: 48px; background: #232f3e; color: #fff; display: flex; align-items: center;
  padding: 0 12px; font-size: 14px; }}
iframe {{ border: 0; display: block; width: 100%; height: calc(100vh - 48px); }}
</style></head><body><header>amazon mturk &middot; worker sandbox &middot; HIT</header>
<iframe id="hit" src="{src}"></iframe></body></html>"""


def shots(tmp_path) -> Path:
    d = Path(os.environ.get("PLIC_SCREENSHOTS") or tmp_path)
    d.mkdir(parents=True, exist_ok=True)
    return d


def frame_of(page, prefix: str):
    for _ in range(100):
        f = next((f for f in page.frames if f.url.startswith(prefix)), None)
        if f is not None:
            return f
        page.wait_for_timeout(50)
    raise AssertionError(f"no frame at {prefix}")


def answered(frame) -> int:
    text = frame.locator("#progress").inner_text()
    return int(text.split("\u2014")[1].split(" of ")[0])


def full_size(frame) -> bool:
    return frame.evaluate("""() => ['left-img', 'ref-img', 'right-img'].every(i => {
        const im = document.getElementById(i);
        return im.getBoundingClientRect().width * devicePixelRatio >= im.naturalWidth; })""")


def intercept(page, posted: list, pages: dict):
    """Route MTurk's hosts: worker pages and HTMLQuestion content from ``pages``, the
    externalSubmit POST into ``posted``."""
    def handle(route):
        url = route.request.url
        if urlsplit(url).path == "/mturk/externalSubmit":
            posted.append(parse_qs(route.request.post_data or ""))
            route.fulfill(status=200, content_type="text/html", body="<p>HIT submitted</p>")
            return
        for prefix, body in pages.items():
            if url.startswith(prefix):
                route.fulfill(status=200, content_type="text/html", body=body)
                return
        route.fulfill(status=404, body="not here")
    page.route(f"{SANDBOX}/**", handle)
    page.route("https://workersandbox.mturkcontent.com/**", handle)


def wait_posted(page, posted: list, n: int) -> None:
    for _ in range(200):
        if len(posted) >= n:
            return
        page.wait_for_timeout(50)
    raise AssertionError("nothing was posted to externalSubmit")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_external_question_in_an_mturk_frame(browser, server, tmp_path, viewport):  # noqa: F811
    base, db = server(local=False)
    batch = db.batch_ids()[0]
    db.add_hit("HITX", batch, "sandbox", max_assignments=3)
    q = f"assignmentId=ASGX&hitId=HITX&workerId=WRKX&turkSubmitTo={SANDBOX}"
    posted: list = []
    page = browser.new_page(viewport=viewport)
    page.route(f"{PUBLIC}/**", lambda route: route.fulfill(
        response=route.fetch(url=route.request.url.replace(PUBLIC, base))))
    intercept(page, posted, {f"{SANDBOX}/projects": mturk_page(f"{PUBLIC}/task?{q}")})
    page.goto(f"{SANDBOX}/projects/P1/tasks/T1?assignment_id=ASGX")
    frame = frame_of(page, PUBLIC)
    frame.wait_for_selector("#trial")
    assert wait_until(frame, IMAGES_LOADED)
    size = f"{viewport['width']}x{viewport['height']}"
    page.screenshot(path=str(shots(tmp_path) / f"external-{size}.png"))
    n = len(db.batch_trials(batch))
    assert full_size(frame)                            # never downscaled, whatever the window
    if viewport is PHONE:
        warn = frame.locator("#too-small")
        assert warn.is_visible() and "too small" in warn.inner_text()
        frame.click("#left")
        frame.focus("#right")
        frame.press("#right", "Enter")
        assert answered(frame) == 0 and frame.locator("#submit").is_disabled()
        assert db.judgments() == [] and posted == []
        return
    assert not frame.locator("#too-small").is_visible()
    for _ in range(n):
        frame.click("#left")
    frame.click("#submit")
    wait_posted(page, posted, 1)
    fields = posted[0]
    assert fields["assignmentId"] == ["ASGX"]
    answers = json.loads(fields["answers"][0])
    assert (answers["assignment_id"], answers["hit_id"], answers["worker_id"]) == \
        ("ASGX", "HITX", "WRKX")
    # what MTurk will hand collect reads back into the same rows the server stored
    trials = {t["trial_id"]: t for t in db.batch_trials(batch)}
    rows = C.read_answers(Assignment("ASGX", "WRKX", "HITX", "Submitted",
                                     answers_xml({k: v[0] for k, v in fields.items()})),
                          trials, db.keys().page_ids("ASGX", list(trials)))
    stored = {(j["trial_id"], j["choice"]) for j in db.judgments("ASGX")}
    assert {(r["trial_id"], r["choice"]) for r in rows} == stored and len(stored) == n


def _html_question(db, batch: str, tmp_path: Path) -> str:
    cfg = P.PublishConfig(question="html", image_base_url=CDN + "/", quiz=False)
    P.export_images(cfg, db, [batch], tmp_path / "cdn", out=lambda s: None)
    xml = P.question_xml(cfg, db, batch, "sandbox")
    return ET.fromstring(xml).find(f"{{{NS_HTML_QUESTION}}}HTMLContent").text


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_html_question_in_an_mturk_frame(browser, server, tmp_path, viewport):  # noqa: F811
    _, db = server(local=False)                 # only its database: MTurk hosts this page
    batch = db.batch_ids()[0]
    html = _html_question(db, batch, tmp_path)
    cdn = tmp_path / "cdn"
    size = f"{viewport['width']}x{viewport['height']}"

    def open_as(aid: str):
        posted: list = []
        page = browser.new_page(viewport=viewport)
        page.route(f"{CDN}/**", lambda route: route.fulfill(
            status=200, content_type="image/png",
            body=(cdn / urlsplit(route.request.url).path.rsplit("/", 1)[1]).read_bytes()))
        q = f"assignmentId={aid}&hitId=HITH&workerId=WRKH&turkSubmitTo={SANDBOX}"
        if aid == PREVIEW_ASSIGNMENT:
            q = f"assignmentId={aid}&hitId=HITH"
        intercept(page, posted, {f"{SANDBOX}/projects": mturk_page(f"{CONTENT}?{q}"),
                                 CONTENT: html})
        page.goto(f"{SANDBOX}/projects/P2/tasks/T2")
        frame = frame_of(page, CONTENT)
        frame.wait_for_selector("#trial")
        assert wait_until(frame, IMAGES_LOADED)
        return page, frame, posted

    # preview: MTurk opens the page without an assignment
    page, frame, posted = open_as(PREVIEW_ASSIGNMENT)
    assert frame.locator("#preview-banner").is_visible()
    frame.click("#left")
    assert answered(frame) == 0 and frame.locator("#submit").is_disabled()
    assert frame.locator("input[name=assignmentId]").input_value() == ""
    page.screenshot(path=str(shots(tmp_path) / f"htmlquestion-preview-{size}.png"))
    page.close()

    page, frame, posted = open_as("ASGH")
    assert not frame.locator("#preview-banner").is_visible()
    assert frame.locator("input[name=assignmentId]").input_value() == "ASGH"
    assert frame.locator("#submit-form").get_attribute("action") == \
        f"{SANDBOX}/mturk/externalSubmit"
    page.screenshot(path=str(shots(tmp_path) / f"htmlquestion-{size}.png"))
    assert full_size(frame)
    n = len(db.batch_trials(batch))
    if viewport is PHONE:
        assert frame.locator("#too-small").is_visible()
        frame.click("#right")
        assert answered(frame) == 0 and frame.locator("#submit").is_disabled()
        return
    for i in range(n):
        frame.click("#left" if i % 2 else "#right")
    frame.click("#submit")
    wait_posted(page, posted, 1)
    fields = posted[0]
    assert fields["assignmentId"] == ["ASGH"]
    answers = json.loads(fields["answers"][0])
    assert (answers["assignment_id"], answers["hit_id"], answers["worker_id"]) == \
        ("ASGH", "HITH", "WRKH")
    trials = {t["trial_id"]: t for t in db.batch_trials(batch)}
    rows = C.read_answers(Assignment("ASGH", "WRKH", "HITH", "Submitted",
                                     answers_xml({k: v[0] for k, v in fields.items()})),
                          trials, db.keys().page_ids(html_scope(batch), list(trials)))
    assert sorted(r["trial_id"] for r in rows) == sorted(trials)


def test_reopened_assignment_shows_its_stored_answers_and_submits_them(
        browser, server, tmp_path):  # noqa: F811
    base, db = server(local=False)
    batch = db.batch_ids()[0]
    db.add_hit("HITR", batch, "sandbox", max_assignments=3)
    n = len(db.batch_trials(batch))

    def open_page(aid: str, wid: str):
        posted: list = []
        page = browser.new_page(viewport=DESKTOP)
        page.route(f"{PUBLIC}/**", lambda route: route.fulfill(
            response=route.fetch(url=route.request.url.replace(PUBLIC, base))))
        q = f"assignmentId={aid}&hitId=HITR&workerId={wid}&turkSubmitTo={SANDBOX}"
        intercept(page, posted, {f"{SANDBOX}/projects": mturk_page(f"{PUBLIC}/task?{q}")})
        page.goto(f"{SANDBOX}/projects/P3/tasks/T3")
        frame = frame_of(page, PUBLIC)
        frame.wait_for_selector("#trial")
        return page, frame, posted

    page, frame, posted = open_page("ASGR", "WRKR")
    for _ in range(n):
        frame.click("#left")
    frame.click("#submit")
    wait_posted(page, posted, 1)
    first = json.loads(posted[0]["answers"][0])
    page.close()
    # the worker comes back (MTurk's post failed, or they reloaded): the saved answers stand
    page, frame, posted = open_page("ASGR", "WRKR")
    banner = frame.locator("#stored-banner")
    assert banner.is_visible() and "stand" in banner.inner_text()
    assert answered(frame) == n and frame.locator("#submit").is_enabled()
    frame.click("#right")                                  # answering is off
    assert frame.locator("#right").get_attribute("class").count("chosen") == 0
    page.screenshot(path=str(shots(tmp_path) / "reopened-1280x800.png"))
    frame.click("#submit")
    wait_posted(page, posted, 1)
    again = json.loads(posted[0]["answers"][0])
    assert posted[0]["assignmentId"] == ["ASGR"] and again["answers"] == [
        dict(a, rt_ms=a["rt_ms"]) for a in again["answers"]]
    assert {(a["trial_id"], a["side"]) for a in again["answers"]} == \
        {(a["trial_id"], a["side"]) for a in first["answers"]}
    page.close()

    # two windows of one assignment: the second one's other answers meet a 409, and the page
    # switches to what the first saved, then lets the worker submit that to MTurk
    page_a, frame_a, posted_a = open_page("ASGS", "WRKS")
    page_b, frame_b, posted_b = open_page("ASGS", "WRKS")
    for _ in range(n):
        frame_a.click("#left")
        frame_b.click("#right")
    frame_a.click("#submit")
    wait_posted(page_a, posted_a, 1)
    frame_b.click("#submit")
    assert wait_until(frame_b, "() => !document.getElementById('stored-banner').hidden")
    assert posted_b == [] and "already saved" in frame_b.locator("#stored-banner").inner_text()
    frame_b.click("#submit")
    wait_posted(page_b, posted_b, 1)
    saved = json.loads(posted_a[0]["answers"][0])["answers"]
    assert {(a["trial_id"], a["side"]) for a in json.loads(posted_b[0]["answers"][0])["answers"]}\
        == {(a["trial_id"], a["side"]) for a in saved}
    assert {j["choice"] == j["shown_left"] for j in db.judgments("ASGS")} == {True}
