"""python -m mturk.sim.crowd --cluster: the simulated workers as items of a Dask LocalCluster
(worker processes) answering the real study server over HTTP give the labels of the local run.

The crowd is ``mse_bot`` workers (each picks the side with the lower pixel MSE, which it
computes from the images it fetched): their answers do not depend on which worker claims which
batch, so two runs must give the same labels whatever the order."""

from __future__ import annotations

import json
import threading

import pytest

from mturk.analysis.aggregate import aggregate
from mturk.design.trials import TrialsConfig, build
from mturk.sim.crowd import main
from mturk.sim.toy_index import make_toy_index
from mturk.web.app import AppConfig, create_app

pytest.importorskip("distributed")
WORKERS = 12


@pytest.fixture(scope="module")
def trials(tmp_path_factory):
    d = tmp_path_factory.mktemp("crowdc")
    index = make_toy_index(d / "dist", n_refs=2, size=32, qualities=(5, 20, 50, 95))
    return build(index, d / "study", TrialsConfig(batch_size=7, sentinel_share=0.3,
                                                  repeats=1))[0]


def _crowd(trials, folder, extra=()):
    """A fresh lab study of ``trials`` on a loopback server, answered by the crowd; the labels
    that ``mturk.aggregate`` makes of it."""
    from werkzeug.serving import make_server

    app = create_app(AppConfig(trials=str(trials), db=str(folder / "j.sqlite"), local=True,
                               simulated=True))
    db = app.extensions["plic_db"]
    links = folder / "participants.txt"
    links.write_text("".join(db.keys().participant_token(i) + "\n"
                             for i in range(1, WORKERS + 1)))
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        rc = main(["--url", f"http://127.0.0.1:{srv.server_port}", "--trials", str(trials),
                   "--participants", str(links), "--workers", str(WORKERS), "--mix",
                   "mse_bot=1.0", "--oracle", "psnr", "--out", str(folder / "sim.json"), *extra])
    finally:
        srv.shutdown()
    assert rc == 0
    summary = json.loads((folder / "sim.json").read_text())
    aggregate(db.path, trials, folder / "agg", write_scores=False)
    return summary, (folder / "agg" / "labels.csv").read_bytes()


def test_cluster_crowd_gives_the_local_labels(trials, tmp_path, capsys):
    (tmp_path / "local").mkdir()
    (tmp_path / "cluster").mkdir()
    s_local, labels_local = _crowd(trials, tmp_path / "local")
    s_cluster, labels_cluster = _crowd(trials, tmp_path / "cluster", ["--cluster", "local:2"])
    assert "dask: local:2 (2 workers), dashboard: http://" in capsys.readouterr().err
    for s in (s_local, s_cluster):
        assert s["simulated"] is True and s["failures"] == [] and s["submissions"] == WORKERS
    assert s_cluster["judgments"] == s_local["judgments"] > 0
    assert s_cluster["config"]["cluster"] == "local:2"
    assert labels_cluster == labels_local and labels_local.count(b"\n") > 1


def test_bad_cluster_is_one_line(trials, tmp_path, capsys):
    rc = main(["--url", "http://127.0.0.1:9", "--trials", str(trials), "--participants",
               str(tmp_path / "none.txt"), "--cluster", "local:zero"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "local:N needs a worker count" in err[0]


def test_workers_that_cannot_reach_the_server_are_refused(trials, tmp_path, capsys):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    links = tmp_path / "participants.txt"
    links.write_text("t1\n")
    rc = main(["--url", f"http://127.0.0.1:{port}", "--trials", str(trials), "--participants",
               str(links), "--workers", "1", "--cluster", "local:1"])
    err = [x for x in capsys.readouterr().err.splitlines() if not x.startswith("dask:")]
    assert rc == 2 and len(err) == 1, err
    assert f"cannot reach http://127.0.0.1:{port}" in err[0] and err[0].startswith(
        "mturk.sim.crowd: error: worker ")
