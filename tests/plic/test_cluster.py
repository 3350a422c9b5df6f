"""plic.cluster: --cluster parsing, the item loop here and on a Dask LocalCluster (threads),
per-item errors by name, an unreachable scheduler, workers that cannot see the paths."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plic import cluster as pc
from plic.cluster import (
    Cluster,
    ClusterError,
    ClusterSpec,
    error_summary,
    parse_cluster,
    run_items,
)

distributed = pytest.importorskip("distributed")


def square_or_fail(x: int) -> int:
    if x == 3:
        raise ValueError("three is not allowed")
    return x * x


def test_parse_cluster():
    assert parse_cluster("local:3") == ClusterSpec(workers=3)
    assert parse_cluster("local") == ClusterSpec(workers=os.cpu_count() or 1)
    assert parse_cluster("tcp://10.0.0.5:8786") == ClusterSpec(address="tcp://10.0.0.5:8786")
    assert str(parse_cluster("local:2")) == "local:2"
    for bad in ("local:0", "local:x", "10.0.0.5:8786", "tcp://host", "http://h:1", ""):
        with pytest.raises(ValueError, match="--cluster"):
            parse_cluster(bad)


@pytest.fixture(scope="module")
def threads_cluster():
    with Cluster("local:2", processes=False, dashboard=False) as cl:
        yield cl


@pytest.mark.parametrize("where", ["serial", "pool", "dask"])
def test_run_items_results_and_errors_by_name(where, threads_cluster):
    items = list(range(6))
    got = {}
    kw = {"serial": dict(jobs=1), "pool": dict(jobs=2),
          "dask": dict(cluster=threads_cluster)}[where]
    errors = run_items(square_or_fail, items, lambda i, v: got.__setitem__(i, v),
                       names=[f"item-{x}" for x in items], progress=False, **kw)
    # every other item completed; the failure names its item and says why
    assert got == {i: i * i for i in items if i != 3}
    assert [(e.index, e.name) for e in errors] == [(3, "item-3")]
    assert "ValueError: three is not allowed" in errors[0].message
    lines = error_summary(errors, len(items))
    assert lines[0].startswith("1 of 6 items failed") and "item-3" in lines[1]


def test_a_failing_merge_is_an_item_error(threads_cluster):
    def merge(i, v):
        if i == 1:
            raise KeyError("bad row")

    errors = run_items(abs, [-1, -2, -3], merge, names=["a", "b", "c"], cluster=threads_cluster,
                       progress=False)
    assert [e.name for e in errors] == ["b"] and "KeyError" in errors[0].message


def test_dashboard_link_printed(capsys):
    with Cluster("local:1", processes=False) as cl:
        assert cl.client is not None
    err = capsys.readouterr().err
    assert "dask: local:1 (1 worker), dashboard: http://" in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(pc, "CONNECT_TIMEOUT_S", 1.0)
    address = f"tcp://127.0.0.1:{_free_port()}"
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler at " + address):
        with Cluster(address):
            pass
    from distortions.__main__ import main

    t0 = time.monotonic()
    rc = main(["--crop", "64", "--codecs", "jpeg", "--targets", "1", "--out",
               str(tmp_path / "out"), "--cluster", address, "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and time.monotonic() - t0 < 30
    assert len(err) == 1
    assert err[0].startswith("distortions: error: cannot reach the Dask scheduler at")
    assert not (tmp_path / "out" / "index.csv").exists()


def test_check_paths_passes_on_one_machine(threads_cluster, tmp_path):
    f = tmp_path / "in.bin"
    f.write_bytes(b"x" * 10)
    threads_cluster.check_paths(inputs=[f], outputs=[tmp_path / "out"])
    assert list((tmp_path / "out").iterdir()) == []  # the probe files are cleaned up


def test_same_on_workers(threads_cluster, monkeypatch):
    threads_cluster.same_on_workers(os.getcwd, "working folders")
    calls = []

    def differs():  # here first, then once per worker: the workers answer differently
        calls.append(1)
        return len(calls) == 1

    with pytest.raises(ClusterError, match="codec versions differ"):
        threads_cluster.same_on_workers(differs, "codec versions")


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    import tempfile

    with tempfile.TemporaryDirectory() as d:  # the mount the test makes, tried once
        r = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs none {d}"],
                           capture_output=True)
    return r.returncode == 0


@pytest.mark.skipif(not _can_unshare(),
                    reason="needs root, unshare -m and a tmpfs mount (mount namespaces)")
def test_worker_that_cannot_see_the_paths_is_refused(tmp_path, capsys):
    """A real worker in its own mount namespace, where an empty tmpfs hides the image folder
    and the output folder: what a node without the shared filesystem sees."""
    imgs, out = tmp_path / "imgs", tmp_path / "out"
    imgs.mkdir()
    out.mkdir()
    from plic.datasets import resolve_data

    for r in resolve_data("samples")[:2]:
        shutil.copy(r.path, imgs / Path(r.path).name)
    dask = Path(sys.executable).with_name("dask")
    with distributed.LocalCluster(n_workers=0, dashboard_address=":0") as lc:
        addr = lc.scheduler_address
        with pytest.raises(ClusterError, match="has no workers"):
            with Cluster(addr, timeout=0.5):
                pass
        hide = f"mount -t tmpfs none {imgs} && mount -t tmpfs none {out} && exec {dask} " \
               f"worker {addr} --nthreads 1 --no-nanny --no-dashboard"
        worker = subprocess.Popen(["unshare", "-m", "sh", "-c", hide],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with Cluster(addr, timeout=120, dashboard=False) as sched:
                with pytest.raises(ClusterError, match="cannot see the output folder"):
                    sched.check_paths(outputs=[out])
            from distortions.__main__ import main

            rc = main(["--data", str(imgs), "--crop", "64", "--codecs", "jpeg", "--targets",
                       "1", "--out", str(out), "--cluster", addr, "--no-progress"])
            err = [x for x in capsys.readouterr().err.splitlines() if not x.startswith("dask:")]
            assert rc == 2
            assert len(err) == 1 and "cannot see the input" in err[0], err
            assert err[0].startswith("distortions: error: worker tcp://")
            assert "paths every node sees" in err[0]
            assert not (out / "index.csv").exists()
        finally:
            worker.terminate()
            worker.wait(timeout=30)
