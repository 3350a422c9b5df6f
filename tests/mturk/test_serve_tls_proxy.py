"""HTTPS in front (issue 28): nginx terminates TLS with a self-signed certificate on loopback and
passes to ``python -m mturk.serve --workers 2 --behind-proxy``; the lab page loads in headless
Chromium through the proxy, its images and scripts over https, and a submission lands."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from mturk.design.trials import TrialsConfig, build
from mturk.sim.toy_index import make_toy_index
from mturk.store.study_db import StudyDB
from mturk.web.tls_proxy import nginx_conf, self_signed_cert

from .test_serve_gunicorn import Served

pytestmark = pytest.mark.browser
pytest.importorskip("gunicorn", reason="gunicorn not installed (pip install 'plic[serve]')")
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def proxied(tmp_path):
    if NGINX is None:
        pytest.skip("nginx not installed (apt-get install nginx-light)")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed")
    index = make_toy_index(tmp_path / "dist", n_refs=2, size=64, qualities=(5, 50, 90))
    trials = build(index, tmp_path / "study", TrialsConfig(batch_size=4, sentinel_share=0.25,
                                                           repeats=0))[0]
    db = str(tmp_path / "j.sqlite")
    srv = Served(trials, db, tmp_path, "--workers", "2", "--behind-proxy")
    cert, key = self_signed_cert(tmp_path / "tls")
    port = _free_port()
    conf = nginx_conf(tmp_path / "nginx", f"127.0.0.1:{port}", srv.url.split("//")[1], cert,
                      key)
    proc = subprocess.Popen([NGINX, "-p", str(tmp_path / "nginx"), "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"https://127.0.0.1:{port}"
    ctx = ssl.create_default_context(cafile=str(cert))
    for _ in range(200):
        try:
            with urllib.request.urlopen(base + "/health", context=ctx, timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        srv.stop()
        raise AssertionError("nginx did not come up: " + proc.stderr.read().decode()[-800:])
    yield base, srv, db
    proc.terminate()
    proc.wait(timeout=10)
    srv.stop()


def test_hit_page_through_tls_proxy_and_a_submission_lands(proxied):
    base, srv, db_path = proxied
    sync_api = pytest.importorskip("playwright.sync_api")
    token = srv.links.read_text().split()[0].rsplit("p=", 1)[1]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            ctx = browser.new_context(ignore_https_errors=True)   # the self-signed certificate
            page = ctx.new_page()
            insecure = []
            page.on("request", lambda r: insecure.append(r.url)
                    if not r.url.startswith(("https://", "data:")) else None)
            resp = page.goto(f"{base}/local/start?p={token}")
            assert resp.status == 200
            assert page.url.startswith(base + "/task?")       # the redirect stayed https
            assert resp.headers["content-security-policy"]
            for _ in range(100):
                if page.evaluate("() => ['left-img', 'ref-img', 'right-img'].every(i => "
                                 "document.getElementById(i).complete && "
                                 "document.getElementById(i).naturalWidth)"):
                    break
                page.wait_for_timeout(50)
            else:
                raise AssertionError("images did not load through the proxy")
            n = len(page.evaluate("() => JSON.parse(document.getElementById('task-data')"
                                  ".textContent).trials"))
            for _ in range(n):
                page.keyboard.press("ArrowLeft")
            page.click("#submit")
            page.wait_for_selector("#done", state="visible")
            assert insecure == []
        finally:
            browser.close()
    db = StudyDB(db_path)
    a = db.list_assignments(status="submitted")
    assert len(a) == 1 and a[0]["worker_id"] == "P0001"
    assert len(db.judgments(a[0]["assignment_id"])) == n
