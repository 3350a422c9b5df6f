"""Faults under load (issue 28): a restarted PostgreSQL, dropped database connections, a full
disk under SQLite. Nothing acknowledged is lost or stored twice, and clients see 503 with
Retry-After, never a 500 or a hang. (kill -9 of a gunicorn worker: test_serve_gunicorn.)"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from benchmarks.study_server import run
from mturk.design.trials import TrialsConfig, build
from mturk.sim.toy_index import make_toy_index
from mturk.store.pg_cluster import find_bin_dir
from mturk.store.study_db import StoreUnavailableError, StudyDB
from mturk.web.app import AppConfig, create_app


@pytest.fixture(scope="module")
def trials_csv(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults")
    index = make_toy_index(d / "dist", n_refs=3, size=32, qualities=(5, 30, 60, 90))
    return build(index, d / "study", TrialsConfig(batch_size=10, crop=32))[0]


def _claim_and_task(c, keys, n):
    claim = c.post("/api/local/claim", json={"token": keys.participant_token(n)}).get_json()
    q = (f"assignmentId={claim['assignment_id']}&hitId={claim['hit_id']}"
         f"&workerId={claim['worker_id']}")
    task = c.get(f"/api/task?{q}").get_json()
    body = dict(claim, answers=[dict(trial_id=t["trial_id"], side="left", rt_ms=900)
                                for t in task["trials"]])
    return claim, body


def _unavailable(r):
    assert r.status_code == 503, r.get_data()
    assert r.headers["Retry-After"] == "1" and "unavailable" in r.get_json()["error"]


def test_postgres_down_is_503_then_the_same_submission_lands(trials_csv, pg_cluster):
    url = pg_cluster.create_database()
    app = create_app(AppConfig(trials=str(trials_csv), db=url, local=True, db_timeout_s=2))
    c, db = app.test_client(), app.extensions["plic_db"]
    keys = db.keys()
    claim, body = _claim_and_task(c, keys, 1)
    pg_cluster.stop_server()
    try:
        _unavailable(c.post("/api/submit", json=body))
        _unavailable(c.get("/health"))
        _unavailable(c.post("/api/local/claim", json={"token": keys.participant_token(2)}))
    finally:
        pg_cluster.start_server()
    r = c.post("/api/submit", json=body)                 # the pool reconnects by itself
    assert r.status_code == 200 and r.get_json()["status"] == "created"
    # a dropped connection: the pool replaces it, the next request is answered
    assert pg_cluster.terminate_connections(url.split("/")[3].split("?")[0]) >= 1
    r = c.post("/api/submit", json=body)
    assert r.status_code == 200 and r.get_json()["status"] == "duplicate"
    assert db.audit()["per_assignment"] == {claim["assignment_id"]: len(body["answers"])}
    db.dispose()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_sqlite_disk_full_is_503_and_nothing_half_written(trials_csv, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)
    try:
        app = create_app(AppConfig(trials=str(trials_csv), db=str(mnt / "j.sqlite"), local=True,
                                   db_timeout_s=2))
        c, db = app.test_client(), app.extensions["plic_db"]
        keys = db.keys()
        bodies = [_claim_and_task(c, keys, n)[1] for n in range(1, 4)]
        filler = mnt / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        answers = [c.post("/api/submit", json=b) for b in bodies]
        assert any(r.status_code == 503 for r in answers)
        for r in answers:
            assert r.status_code in (200, 503)
            if r.status_code == 503:
                _unavailable(r)
        acked = {b["assignment_id"] for b, r in zip(bodies, answers) if r.status_code == 200}
        filler.unlink()
        for b in bodies:                                  # sent again: each lands once
            assert c.post("/api/submit", json=b).status_code == 200
        a = db.audit()
        assert set(a["per_assignment"]) == {b["assignment_id"] for b in bodies} >= acked
        assert a["per_assignment"] == {b["assignment_id"]: len(b["answers"]) for b in bodies}
        assert a["duplicates"] == 0 and a["integrity"] == "ok"
        db.dispose()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_store_unavailable_is_typed(tmp_path):
    with pytest.raises(StoreUnavailableError):
        StudyDB("postgresql://nobody@/nope?host=/nonexistent-plic-socket-dir", timeout=1)


@pytest.mark.parametrize("store,fault", [
    pytest.param("postgres", "restart-postgres", marks=pytest.mark.slow),
    pytest.param("postgres", "drop-connections", marks=pytest.mark.slow),
    ("sqlite", "disk-full")])
def test_faults_under_load_on_gunicorn(tmp_path, store, fault):
    if fault == "disk-full" and os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    if store == "postgres" and find_bin_dir() is None:
        pytest.skip("PostgreSQL not installed (scripts/setup.sh installs Debian's postgresql)")
    r = run(levels=(3,), seconds=5.0, kill_level=3, out_dir=tmp_path / "out",
            workdir=tmp_path / "work", configs=[("gunicorn", store)], fault=fault)
    c = r["count_check"]
    assert c["ok"], c
    assert c["lost"] == 0 and c["duplicate_judgments"] == 0 and c["integrity"] == "ok"
    assert c["answered_500"] == 0 and c["no_answer"] == 0 and c["http_errors"] == 0
    assert c["db_judgments"] == c["acknowledged_judgments"] > 0
    assert r["kill"]["fault"] == fault
    if fault == "drop-connections":
        assert r["kill"]["dropped"] >= 1
    else:                                   # the outage was seen, and answered as retryable
        assert c["answered_503"] >= 1
    assert json.loads((tmp_path / "out" / "mturk.json").read_text())["ok"] is True
