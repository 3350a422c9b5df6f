"""``python -m mturk.serve --workers N``: a real gunicorn on a loopback port, on both stores.
Every worker takes what any other issued (participant links, page ids, image URLs: the keys
come from the store); a worker killed with SIGKILL is replaced and loses nothing acknowledged;
static assets revalidate with 304."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest

from mturk.design.trials import TrialsConfig, build
from mturk.sim.toy_index import make_toy_index
from mturk.store.study_db import StudyDB

pytest.importorskip("gunicorn", reason="gunicorn not installed (pip install 'plic[serve]')")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trials_csv(tmp_path_factory):
    d = tmp_path_factory.mktemp("gunicorn")
    index = make_toy_index(d / "dist", n_refs=3, size=32, qualities=(5, 30, 60, 90))
    return build(index, d / "study", TrialsConfig(batch_size=10, crop=32))[0]


class Served:
    """``python -m mturk.serve --workers N`` in a subprocess; ``url`` once it listens."""

    def __init__(self, trials, db, tmp_path, *extra):
        self.log = tmp_path / "serve.log"
        self.links = tmp_path / "participants.txt"
        args = [sys.executable, "-m", "mturk.serve", "--local", "--port", "0", "--trials",
                str(trials), "--db", db, "--participants", "6", "--participants-file",
                str(self.links), *extra]
        self.proc = subprocess.Popen(args, cwd=REPO, stdout=open(self.log, "wb"),
                                     stderr=subprocess.STDOUT)
        t0 = time.time()
        while time.time() - t0 < 120:
            m = re.search(r"listening on (http://\S+)", self.log.read_text())
            if m:
                self.url = m.group(1)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError("server did not start: " + self.log.read_text()[-2000:])

    def get(self, path, headers=None):
        req = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def post(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def worker(self) -> int:
        st, _, body = self.get("/health")
        assert st == 200
        return json.loads(body)["worker"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


def _workers_seen(srv, want: int, tries: int = 300) -> set[int]:
    seen: set[int] = set()
    for _ in range(tries):           # a fresh connection per request: any worker may accept
        seen.add(srv.worker())
        if len(seen) >= want:
            break
    return seen


def _participant(srv, token):
    st, claim = srv.post("/api/local/claim", {"token": token})
    assert st == 200, claim
    q = urlencode(dict(assignmentId=claim["assignment_id"], hitId=claim["hit_id"],
                       workerId=claim["worker_id"]))
    return claim, q


def test_workers_share_keys_and_survive_kill9(trials_csv, tmp_path, store_url):
    srv = Served(trials_csv, store_url, tmp_path, "--workers", "2")
    try:
        assert len(_workers_seen(srv, 2)) == 2
        tokens = [ln.rsplit("p=", 1)[1] for ln in srv.links.read_text().split()]
        acked = {}
        for token in tokens[:3]:
            claim, q = _participant(srv, token)
            for _ in range(4):             # the same page from whichever worker answers
                st, _, body = srv.get(f"/api/task?{q}")
                assert st == 200
                task = json.loads(body)
                for t in task["trials"][:2]:           # images: keyed by the study's secret
                    st, h, png = srv.get(t["left"])
                    assert st == 200 and png[:4] == b"\x89PNG"
            answers = [dict(trial_id=t["trial_id"], side="left", rt_ms=900)
                       for t in task["trials"]]
            st, res = srv.post("/api/submit", dict(claim, answers=answers))
            assert st == 200 and res["status"] == "created", res
            acked[claim["assignment_id"]] = len(answers)
        # kill -9 one worker: gunicorn starts another, which takes the links issued before
        victim = srv.worker()
        os.kill(victim, signal.SIGKILL)
        t0 = time.time()
        seen: set[int] = set()
        while len(seen) < 2 and time.time() - t0 < 60:
            try:
                seen.add(srv.worker())
            except OSError:
                time.sleep(0.1)
        assert victim not in seen and len(seen) == 2
        claim, q = _participant(srv, tokens[3])
        st, _, body = srv.get(f"/api/task?{q}")
        task = json.loads(body)
        st, res = srv.post("/api/submit", dict(claim, answers=[
            dict(trial_id=t["trial_id"], side="right", rt_ms=900) for t in task["trials"]]))
        assert st == 200
        acked[claim["assignment_id"]] = len(task["trials"])
    finally:
        srv.stop()
    db = StudyDB(store_url)
    a = db.audit()
    assert a["per_assignment"] == acked and a["duplicates"] == 0 and a["integrity"] == "ok"
    db.dispose()


def test_static_assets_revalidate_and_dev_server_stays(trials_csv, tmp_path):
    db = str(tmp_path / "j.sqlite")
    for extra in (("--workers", "2"), ()):
        srv = Served(trials_csv, db, tmp_path, *extra)
        try:
            st, h, body = srv.get("/static/page.js")
            assert st == 200 and body and h["ETag"] and h["Last-Modified"]
            assert "max-age" in h["Cache-Control"]
            for _ in range(6):            # the same validators from every worker
                st, h2, body2 = srv.get("/static/page.js", {"If-None-Match": h["ETag"]})
                assert st == 304 and body2 == b"" and h2["ETag"] == h["ETag"]
                st, _, _ = srv.get("/static/page.js", {"If-Modified-Since": h["Last-Modified"]})
                assert st == 304
            st, h3, _ = srv.get("/static/page.js", {"If-None-Match": '"stale"'})
            assert st == 200 and "Content-Security-Policy" in h3
            assert srv.get("/health")[0] == 200
        finally:
            srv.stop()


def test_bad_options_are_one_line(trials_csv, tmp_path):
    r = subprocess.run([sys.executable, "-m", "mturk.serve", "--workers", "-1", "--trials",
                        str(trials_csv), "--db", str(tmp_path / "j.sqlite")], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--workers" in r.stderr
