"""Active rounds on the metric side: fit --init, predict, the budget simulation (SIMULATED)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mturk.active.acquire import RoundConfig
from mturk.design.trials import TrialsConfig, build
from mturk.schema import PREDICTIONS_COLUMNS, PREDICTIONS_ID, TRIALS_COLUMNS, TRIALS_ID
from mturk.sim.toy_index import make_toy_index
from perceptual_metric import load
from perceptual_metric.active_savings import main as budget_main
from perceptual_metric.active_savings import mean_curve, mean_curve_ratio, ratio_ci, reach
from perceptual_metric.fit import FitConfig, fit
from perceptual_metric.fit import main as fit_main
from perceptual_metric.offline_rounds import Crowd
from perceptual_metric.predict import main as predict_main
from perceptual_metric.simulate import simulate
from perceptual_metric.trunks import WeightsError
from plic.checkpoint import load_checkpoint, save_checkpoint
from plic.image_io import read_image
from plic.tables import read_table, resolve_path

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def first(tmp_path_factory, sample_images):
    """A metric fitted on SIMULATED labels: the 'previous round'."""
    out = tmp_path_factory.mktemp("warm")
    simulate(out, list(sample_images.values()), trials=40, patch_size=32, seed=2)
    cfg = FitConfig(labels=str(out / "labels.csv"), out=str(out / "r1.pt"), patch=32, steps=60,
                    views=2, val_fraction=0.0, lr=1e-2)
    try:
        fit(cfg, log=lambda *_: None)
    except WeightsError as e:
        pytest.skip(f"no ImageNet AlexNet weights here: {e}")
    return out


def _state(path):
    return load_checkpoint(path, "metric")["state_dict"]


def test_warm_start_begins_where_the_last_round_ended(first):
    labels, r1 = str(first / "labels.csv"), str(first / "r1.pt")
    common = dict(labels=labels, patch=32, steps=1, views=1, val_fraction=0.0, lr=0.0)
    fit(FitConfig(out=str(first / "warm.pt"), init=r1, **common), log=lambda *_: None)
    fit(FitConfig(out=str(first / "cold.pt"), **common), log=lambda *_: None)
    want, warm, cold = _state(r1), _state(first / "warm.pt"), _state(first / "cold.pt")
    assert set(warm) == set(want)
    for k in want:                      # lr 0: the warm start is exactly the previous metric
        assert torch.equal(warm[k], want[k]), k
    lin = [k for k in want if k.startswith("lins.")]
    assert lin and not all(torch.equal(cold[k], want[k]) for k in lin)
    # a warm-started fit that trains moves from there, and stays a valid metric
    fit(FitConfig(out=str(first / "more.pt"), init=r1, **dict(common, steps=20, lr=1e-2)),
        log=lambda *_: None)
    more = _state(first / "more.pt")
    assert any(not torch.equal(more[k], want[k]) for k in lin)
    assert all((more[k] >= 0).all() for k in lin)


def test_warm_start_from_another_net_is_a_one_line_error(first, tmp_path, capsys):
    ck = load_checkpoint(first / "r1.pt", "metric")
    save_checkpoint(tmp_path / "vgg.pt", "metric", "lpips-vgg-fitted",
                    dict(ck["config"], net="vgg"), ck["state_dict"], ck["provenance"])
    argv = ["--labels", str(first / "labels.csv"), "--out", str(tmp_path / "x.pt"),
            "--patch", "32", "--steps", "1", "--init", str(tmp_path / "vgg.pt")]
    assert fit_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--init" in err and "vgg" in err and "\n" not in err
    with pytest.raises(SystemExit):
        fit_main(["--help"])
    assert "--init" in capsys.readouterr().out


def test_predictions_are_the_metric_on_the_shown_views(first, tmp_path, sample_images, capsys):
    idx = make_toy_index(tmp_path / "idx", images=sample_images, n_refs=2, size=48,
                         qualities=(5, 40, 90), target_bpps=(1.0,))
    pool, _ = build(idx, tmp_path / "pool", TrialsConfig(batch_size=4, repeats=0, crop=32))
    out = tmp_path / "pred.csv"
    assert predict_main(["--metric", str(first / "r1.pt"), "--trials", str(pool),
                         "--out", str(out)]) == 0
    pred = read_table(out, PREDICTIONS_COLUMNS, PREDICTIONS_ID)
    metric = load(first / "r1.pt")
    tr = read_table(pool, TRIALS_COLUMNS, TRIALS_ID).set_index("trial_id")
    assert len(pred) == ((tr.kind == "test") & (tr.repeat_of == "")).sum() == 6

    def img(p):
        return torch.from_numpy(read_image(resolve_path(p, pool))).permute(2, 0, 1)[None] / 255

    for r in pred.itertuples():
        row = tr.loc[r.trial_id]
        assert (row.a_id, row.b_id) == (r.a_id, r.b_id)
        with torch.no_grad():
            d_a = float(metric(img(row.ref_path), img(row.a_path)))
            d_b = float(metric(img(row.ref_path), img(row.b_path)))
        assert math.isclose(float(r.d_a), d_a, rel_tol=1e-4, abs_tol=1e-6)
        assert math.isclose(float(r.d_b), d_b, rel_tol=1e-4, abs_tol=1e-6)
        assert 0 < float(r.p_b) < 1
    # the file is what an active round reads: with no labels yet, it asks the pairs whose
    # predicted p_b is nearest 1/2
    rc = RoundConfig(strategy="active", predictions=str(out), round_trials=2, max_per_ref=9)
    got, _ = build(idx, tmp_path / "r001", TrialsConfig(batch_size=4, repeats=0, crop=32),
                   rounds=rc)
    t = read_table(got, TRIALS_COLUMNS, TRIALS_ID)
    doubt = (pred.p_b.astype(float) - 0.5).abs()
    want = set(pred.trial_id[doubt <= sorted(doubt)[1]])
    assert set(t.trial_id[t.kind == "test"]) == want
    assert predict_main(["--metric", str(tmp_path / "none.pt"), "--trials", str(pool),
                         "--out", str(out)]) == 2
    assert "error" in capsys.readouterr().err


def test_predictions_reuse_a_lin_metrics_trunk_terms(first, tmp_path, sample_images,
                                                     monkeypatch):
    from perceptual_metric import predict as predict_mod
    from perceptual_metric import term_cache
    idx = make_toy_index(tmp_path / "idx", images=sample_images, n_refs=2, size=48,
                         qualities=(5, 40, 90), target_bpps=(1.0,))
    pool, _ = build(idx, tmp_path / "pool", TrialsConfig(batch_size=4, repeats=0, crop=32))
    plain = predict_mod.predict(first / "r1.pt", pool)
    cached = predict_mod.predict(first / "r1.pt", pool, tmp_path / "cache")
    assert cached == plain and (tmp_path / "cache" / "terms-alex.npz").is_file()
    calls = []
    real = term_cache.pair_terms
    monkeypatch.setattr(term_cache, "pair_terms", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert predict_mod.predict(first / "r1.pt", pool, tmp_path / "cache") == plain
    assert calls == []                                  # no trunk pass the second time
    other, _ = build(idx, tmp_path / "pool2", TrialsConfig(batch_size=4, repeats=0, crop=32,
                                                            seed=5))
    predict_mod.predict(first / "r1.pt", other, tmp_path / "cache")
    assert calls == [1]                                 # another pool: computed again


def test_reach_and_ratio():
    curve = [dict(judgments=j, accuracy=a) for j, a in
             [(0, 0.5), (100, 0.7), (200, 0.65), (300, 0.8), (400, 0.85)]]
    assert reach(curve, 0.7) == pytest.approx(200 + (0.7 - 0.65) / 0.15 * 100)  # stays above
    assert reach(curve, 0.5) == 0.0
    assert math.isnan(reach(curve, 0.9))
    r = ratio_ci([0.4, 0.5, 0.6])
    assert r["reached"] == 3 and r["mean"] == pytest.approx(0.5)
    assert r["ci95"][0] < 0.5 < r["ci95"][1]
    r = ratio_ci([0.4, 0.5, float("nan")])          # no mean that forgets the seed that failed
    assert r["reached"] == 2 and "mean" not in r and "ci95" not in r
    # mean curves: active at 0.8 from a quarter of the budget on, random gets there at the end
    runs = [dict(budget=100, random=[dict(judgments=0, accuracy=0.5),
                                     dict(judgments=100, accuracy=0.8)],
                 active=[dict(judgments=0, accuracy=0.5), dict(judgments=25, accuracy=0.8),
                         dict(judgments=100, accuracy=0.8)])] * 3
    m = mean_curve_ratio(runs, n_boot=20)
    assert m["ratio"] == pytest.approx(0.25) and m["boot_reached"] == 1.0


def test_mean_curve_holds_a_stopped_curve_at_its_last_accuracy():
    full = [dict(round=r, judgments=10 * r, accuracy=0.5 + 0.1 * r) for r in range(4)]
    stopped = [dict(round=r, judgments=10 * r, accuracy=0.6) for r in range(2)]
    m = mean_curve([full, stopped])
    assert [c["judgments"] for c in m] == [0, 10, 20, 30]
    assert [c["accuracy"] for c in m] == pytest.approx([0.55, 0.6, 0.65, 0.7])
    assert mean_curve([full]) == full


def test_crowd_expectation_matches_its_answers():
    rng = np.random.default_rng(0)
    crowd = Crowd.draw(50, 0.2, 0.1, 0.5, 0.05, rng)
    assert np.isnan(crowd.temperature).sum() == 10
    d_a, d_b = np.array([0.3, 0.2, 0.25]), np.array([0.2, 0.3, 0.25])
    p = crowd.p_true(d_a, d_b)
    assert p[0] > 0.5 > p[1] and p[2] == pytest.approx(0.5)
    hits = np.mean([[crowd.answer(a, b, rng) for a, b in zip(d_a, d_b)] for _ in range(4000)], 0)
    assert np.allclose(hits, p, atol=0.03)


def test_budget_end_to_end_on_a_toy_pool(tmp_path, sample_images, capsys):
    idx = make_toy_index(tmp_path / "idx", images=sample_images, n_refs=4, size=48,
                         qualities=(5, 20, 50, 90), target_bpps=(1.0,))
    pool, _ = build(idx, tmp_path / "pool", TrialsConfig(batch_size=8, repeats=0, crop=32))
    argv = ["--trials", str(pool), "--out", str(tmp_path / "b"), "--seeds", "2",
            "--passes", "2", "--round-judgments", "6", "--steps", "30", "--workers", "20"]
    try:
        assert budget_main(argv) == 0
    except WeightsError as e:
        pytest.skip(f"no ImageNet weights here: {e}")
    md = (tmp_path / "b" / "budget.md").read_text()
    assert "SIMULATED" in md and "| random 2AFC | active 2AFC |" in md
    assert (tmp_path / "b" / "budget.png").stat().st_size > 1000
    import json
    res = json.loads((tmp_path / "b" / "budget.json").read_text())
    for s in res["seeds"]:
        assert s["budget"] == 2 * s["train_pairs"]                 # random: two passes
        for strategy in ("random", "active"):
            j = [c["judgments"] for c in s[strategy]]
            assert j[0] == 0 and j == sorted(j) and j[-1] <= s["budget"]
            assert all(0 <= c["accuracy"] <= s["ceiling"] + 1e-9 for c in s[strategy])
    # resumable: the runs are saved; a second call reads them back and says the same
    mtimes = {p: p.stat().st_mtime for p in (tmp_path / "b" / "runs").iterdir()}
    assert len(mtimes) == 4
    assert budget_main(argv) == 0
    assert {p: p.stat().st_mtime for p in (tmp_path / "b" / "runs").iterdir()} == mtimes
    assert json.loads((tmp_path / "b" / "budget.json").read_text())["seeds"] == res["seeds"]
    # replicates and the noise floor: the runs made above are replicate 0 and are reused
    assert budget_main(argv + ["--replicates", "2", "--noise-floor"]) == 0
    runs = sorted(p.name for p in (tmp_path / "b" / "runs").iterdir())
    assert len(runs) == 4 + 2 * (1 + 1 + 2)   # per seed: random r1, active r1, twin r2 and r3
    assert all(p.stat().st_mtime == t for p, t in mtimes.items())
    rep = json.loads((tmp_path / "b" / "budget.json").read_text())
    for s in rep["seeds"]:
        own = [json.loads((tmp_path / "b" / "runs" / name).read_text())["curve"] for name in
               (f"random-s{s['seed']}.json", f"random-s{s['seed']}-r1.json")]
        assert s["random_replicates"] == own
        assert [c["accuracy"] for c in s["random"]] == pytest.approx(
            [(a["accuracy"] + b["accuracy"]) / 2 for a, b in zip(*own)])
        assert "twin" in s and "twin_ratio" in s
    assert rep["twin_ratio"]["seeds"] == 2
    assert "noise floor" in (tmp_path / "b" / "budget.md").read_text()
    capsys.readouterr()
    assert budget_main(argv[:4] + ["--seeds", "0"]) == 2
    assert capsys.readouterr().err.startswith("perceptual_metric.active_savings: error:")


@pytest.mark.parametrize("main, flag", [(budget_main, "--round-judgments"),
                                        (predict_main, "--metric")])
def test_help(main, flag, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and flag in capsys.readouterr().out
