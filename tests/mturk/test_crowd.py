"""The simulated crowd against the real server over HTTP, then aggregation of what it wrote."""

from __future__ import annotations

import json
import threading

import pandas as pd
import pytest

from mturk.analysis.aggregate import aggregate
from mturk.design.trials import TrialsConfig, build
from mturk.sim.crowd import SimConfig, main, run_crowd
from mturk.sim.toy_index import make_toy_index
from mturk.sim.twoafc_crowd import choose
from mturk.sim.workers import assign_types, parse_mix
from mturk.web.app import AppConfig, create_app


@pytest.fixture
def live(tmp_path):
    from werkzeug.serving import make_server

    index = make_toy_index(tmp_path / "dist", n_refs=2, size=32, qualities=(5, 20, 50, 95))
    trials = build(index, tmp_path / "study", TrialsConfig(batch_size=7, sentinel_share=0.3,
                                                           repeats=1))[0]
    app = create_app(AppConfig(trials=str(trials), db=str(tmp_path / "j.sqlite"), local=True,
                               simulated=True))
    db = app.extensions["plic_db"]
    links = tmp_path / "participants.txt"    # as mturk.serve --participants 40 writes them
    links.write_text("".join(f"http://x/local/start?p={db.keys().participant_token(i)}\n"
                             for i in range(1, 41)))
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}", trials, db, tmp_path, links
    srv.shutdown()


def test_crowd_over_http_then_labels(live):
    url, trials, db, tmp, links = live
    s = run_crowd(SimConfig(url=url, trials=str(trials), participants=str(links), workers=30,
                            oracle="psnr", mix="careful=0.8,random=0.2", concurrency=4, seed=1))
    assert s["simulated"] is True and s["failures"] == [] and s["submissions"] == 30
    assert s["type_counts"] == {"careful": 24, "random": 6}
    assert db.counts()["assignments"] == 30
    expected = sum(len(db.batch_trials(db.get_hit(a["hit_id"])["batch_id"]))
                   for a in db.list_assignments())
    assert db.counts()["judgments"] == s["judgments"] == expected
    # local claims spread the crowd evenly over the batches
    per_batch = pd.Series([a["hit_id"] for a in db.list_assignments()]).value_counts()
    assert per_batch.max() - per_batch.min() <= 1
    # the server's --simulated flag marks them, not the client
    assert all(a["simulated"] == 1 for a in db.list_assignments())
    out = aggregate(db.path, trials, tmp / "out", write_scores=False)
    assert out["simulated"] is True and out["unverified_left_out"] == 0
    w = pd.read_csv(tmp / "out" / "workers.csv").set_index("worker_id")
    careful = [k for k, v in s["worker_types"].items() if v == "careful"]
    assert w.loc[careful, "sentinel_accuracy"].mean() > 0.9
    # the oracle's order shows through: higher JPEG quality preferred at the same target
    rank = pd.read_csv(tmp / "out" / "ranking.csv")
    assert rank.codec.iloc[0] == "jpeg-q95" and rank.codec.iloc[-1] == "jpeg-q5"
    labels = pd.read_csv(tmp / "out" / "labels.csv")
    q = {c: int(c.split("q")[-1]) for c in rank.codec}
    b_better = [q[b] > q[a] for a, b in zip(labels.a_codec, labels.b_codec)]
    agree = ((labels.p_b > 0.5) == pd.Series(b_better)).mean()
    assert agree >= 0.75                 # most labels side with the oracle


def test_cli_marks_output_and_custom_oracle(live, capsys):
    url, trials, db, tmp, links = live
    out = tmp / "sim.json"
    rc = main(["--url", url, "--trials", str(trials), "--participants", str(links), "--workers",
               "3", "--oracle", "plic.quality:mse", "--lower-is-closer", "--out", str(out)])
    assert rc == 0
    s = json.loads(out.read_text())
    assert s["simulated"] is True and s["submissions"] == 3
    capsys.readouterr()
    assert main(["--url", url, "--trials", str(trials), "--oracle", "nope"]) == 2
    assert main(["--url", url, "--trials", str(trials), "--participants", str(links),
                 "--workers", "41"]) == 2                  # more workers than links
    assert main(["--url", url, "--trials", str(trials), "--mix", "careful=1,robot=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("mturk.sim.crowd: error:") for line in err)


def test_worker_types_behave_as_documented():
    import numpy as np

    rng = np.random.default_rng(0)
    better_left, better_right = ((0.9, 10.0), (0.5, 90.0)), ((0.5, 90.0), (0.9, 10.0))
    assert all(choose("always_left", *better_right, 0.1, 0.0, rng) == "left" for _ in range(20))
    assert all(choose("mse_bot", *better_left, 0.1, 0.0, rng) == "left" for _ in range(20))
    assert all(choose("mse_bot", *better_right, 0.1, 0.0, rng) == "right" for _ in range(20))
    careful = [choose("careful", *better_right, 0.05, 0.0, rng) for _ in range(200)]
    assert careful.count("right") > 190
    coin = [choose("random", *better_right, 0.05, 0.0, rng) for _ in range(2000)]
    assert 900 < coin.count("right") < 1100
    assert parse_mix("careful=3,fast=1") == {"careful": 0.75, "fast": 0.25}
    kinds = assign_types(10, parse_mix("careful=0.6,always_left=0.2,mse_bot=0.2"), rng)
    assert sorted(kinds) == ["always_left"] * 2 + ["careful"] * 6 + ["mse_bot"] * 2


def test_label_accuracy_scores_majorities_and_ties_half():
    from mturk.sim.twoafc_report import label_accuracy

    labels = pd.DataFrame({"trial_id": ["t1", "t2", "t3", "t4", "t5"],
                           "p_b": [0.9, 0.2, 0.5, 0.6, 0.7]})
    truth = {"t1": "b", "t2": "a", "t3": "b", "t4": "a"}        # t5 has no truth: not scored
    acc, n = label_accuracy(labels, truth)
    assert n == 4 and acc == pytest.approx((1 + 1 + 0.5 + 0) / 4)


@pytest.mark.slow
def test_crowd_report_end_to_end(tmp_path):
    from mturk.sim.twoafc_report import main as report

    index = make_toy_index(tmp_path / "dist", n_refs=2, size=48, qualities=(5, 30, 60, 90))
    assert report(["--index", str(index), "--out", str(tmp_path / "r"), "--workers", "10",
                   "--oracle", "psnr", "--mix", "careful=0.6,always_left=0.2,fast=0.2"]) == 0
    r = json.loads((tmp_path / "r" / "crowd_report.json").read_text())
    assert r["simulated"] is True and r["types"]["always_left"]["excluded"] == 2
    assert r["types"]["fast"]["excluded"] == 2 and "fast" in r["types"]["fast"]["flags"]
    assert "SIMULATED" in (tmp_path / "r" / "crowd_report.md").read_text()


def test_a_simulated_study_is_the_same_on_every_run(tmp_path):
    """Answers come from (worker seed, HIT, image bytes), not from which thread claims a batch
    first or the page's order: two runs with 4 threads give the same labels (make demo relies
    on it: the same result with or without ../shared)."""
    from werkzeug.serving import make_server

    index = make_toy_index(tmp_path / "dist", n_refs=2, size=32, qualities=(5, 20, 50, 95))
    trials = build(index, tmp_path / "study", TrialsConfig(batch_size=7, sentinel_share=0.3,
                                                           repeats=1))[0]
    n_batches = pd.read_csv(trials).batch_id.nunique()
    labels = []
    for run in ("a", "b"):
        app = create_app(AppConfig(trials=str(trials), db=str(tmp_path / f"{run}.sqlite"),
                                   local=True, simulated=True))
        db = app.extensions["plic_db"]
        links = tmp_path / f"participants-{run}.txt"
        links.write_text("".join(f"{db.keys().participant_token(i)}\n" for i in range(1, 7)))
        srv = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            s = run_crowd(SimConfig(url=f"http://127.0.0.1:{srv.server_port}",
                                    trials=str(trials), participants=str(links), workers=6,
                                    batches_per_worker=n_batches, oracle="psnr",
                                    mix="careful=0.6,random=0.4", concurrency=4, seed=3))
        finally:
            srv.shutdown()
        assert s["failures"] == [] and s["submissions"] == 6 * n_batches
        aggregate(db.path, trials, tmp_path / f"out-{run}", write_scores=False)
        labels.append(pd.read_csv(tmp_path / f"out-{run}" / "labels.csv")
                      .sort_values("trial_id").reset_index(drop=True))
    assert 0 < labels[0].p_b.mean() < 1           # the answers are not all one side
    pd.testing.assert_frame_equal(labels[0], labels[1])
