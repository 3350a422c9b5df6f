"""python -m distortions --cluster on a Dask LocalCluster of worker processes: the same files
and tables as a local run, with a worker killed (SIGKILL) mid-run, and after an interrupted
client is run again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from distortions.run import DistortionsConfig, run
from plic.cluster import Cluster
from plic.datasets import resolve_data
from plic.fsio import sha256_file

pytest.importorskip("distributed")
REPO = Path(__file__).resolve().parents[2]
CODECS, TARGETS, CROP = ("jpeg", "webp"), (0.3, 0.6, 1.0), 160


def _cfg(out, **kw):
    return DistortionsConfig(out=str(out), codecs=CODECS, targets=TARGETS, crop=CROP, jobs=1,
                             progress=False, **kw)


def _outputs(out: Path) -> dict:
    """What a run leaves: the tables' bytes, and every file under images/, streams/ and refs/
    by its content hash. A writer killed mid-write may leave its temporary ``.NAME.*.tmp``
    (never a named file: writes are atomic); those are not outputs."""
    files = {str(p.relative_to(out)): sha256_file(p) for sub in ("images", "streams", "refs")
             for p in sorted((out / sub).rglob("*"))
             if p.is_file() and not (p.name.startswith(".") and p.name.endswith(".tmp"))}
    return {"index.csv": (out / "index.csv").read_bytes(),
            "searches.csv": (out / "searches.csv").read_bytes(),
            "meta.json": (out / "meta.json").read_bytes(), "files": files}


@pytest.fixture(scope="module")
def records():
    return resolve_data("samples")


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, records):
    out = tmp_path_factory.mktemp("local")
    report = run(records, _cfg(out))
    assert not report.errors and report.new_rows > 0
    return _outputs(out)


@pytest.fixture(scope="module")
def cluster():
    with Cluster("local:2", dashboard=False) as cl:
        yield cl


def test_local2_equals_local(tmp_path, records, local_run, cluster):
    report = run(records, _cfg(tmp_path), cluster=cluster)
    assert not report.errors and report.items == len(records) * len(CODECS)
    assert _outputs(tmp_path) == local_run
    # a second run on the cluster does nothing
    again = run(records, _cfg(tmp_path), cluster=cluster)
    assert again.items == 0 and again.new_rows == 0 and not again.wrote_index


def _worker_pids(client) -> dict:
    return client.run(os.getpid)


def test_killed_worker_run_completes_identically(tmp_path, records, local_run, cluster):
    client = cluster.client
    before = _worker_pids(client)
    result = {}

    def go():
        result["report"] = run(records, _cfg(tmp_path), cluster=cluster)

    t = threading.Thread(target=go)
    t.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and t.is_alive() and time.monotonic() < deadline:
        busy = [w for w, keys in client.processing().items() if keys and w in before]
        done = sum(1 for _ in (tmp_path / "images").rglob("*.png")) if (
            tmp_path / "images").is_dir() else 0
        if busy and done:  # items in flight, and some already written: mid-run
            killed = before[busy[0]]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    t.join(timeout=300)
    assert killed is not None, "the run ended before a worker could be killed"
    report = result["report"]
    assert not report.errors, report.errors
    assert _outputs(tmp_path) == local_run
    # the killed process is gone, and the nanny brought up a new worker in its place
    with pytest.raises(ProcessLookupError):
        os.kill(killed, 0)
    client.wait_for_workers(2, timeout=60)
    assert killed not in _worker_pids(client).values()


def test_interrupted_client_rerun_finishes(tmp_path, records, local_run, cluster):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "distortions", "--data", "samples", "--crop", str(CROP),
           "--codecs", ",".join(CODECS), "--targets", ",".join(map(str, TARGETS)),
           "--out", str(out), "--cluster", cluster.scheduler_address, "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if (out / "images").is_dir() and any((out / "images").rglob("*.png")):
            proc.send_signal(signal.SIGINT)  # Ctrl-C: the client stops, the cluster stays
            break
        time.sleep(0.02)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "run the same command again" in err
    assert "Traceback" not in err
    saved = (out / "index.csv").read_text().count("\n") - 1  # rows merged before the stop
    rerun = run(records, _cfg(out), cluster=cluster)
    assert not rerun.errors
    assert rerun.reused_rows == saved  # kept what the interrupted run saved, did the rest
    assert rerun.new_rows + saved == local_run["index.csv"].count(b"\n") - 1
    assert _outputs(out) == local_run



def test_failed_items_named_others_complete(tmp_path, records, cluster):
    """An image no codec can read, among good ones, on the cluster: its items fail by name
    (once, not per codec), every other item completes."""
    from plic.datasets import ImageRecord

    bad = tmp_path / "zz-broken.png"
    bad.write_bytes(b"not a png at all")
    recs = [*records[:2], ImageRecord("broken", bad, sha256_file(bad), 512, 768)]
    cfg = DistortionsConfig(out=str(tmp_path / "out"), codecs=CODECS, targets=(2.0,), crop=96,
                            progress=False)
    report = run(recs, cfg, cluster=cluster)
    assert report.items == 6 and report.items_done == 6
    assert [w for w, _ in report.errors] == [str(bad)]
    assert "cannot read" in report.errors[0][1] or "cannot identify" in report.errors[0][1]
    assert report.new_rows + report.unreachable == 4  # 2 good images x 2 codecs x 1 target
    assert report.new_rows >= 2
