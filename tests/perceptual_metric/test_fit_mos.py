"""Fitting the metric on opinion scores (perceptual_metric.fit --labels mos.csv)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from distortions.schema import INDEX_COLUMNS
from mturk.schema import MOS_COLUMNS, MOS_ID
from mturk.sim.toy_index import make_toy_index
from perceptual_metric.fit import FitConfig, fit
from perceptual_metric.fit import main as fit_main
from perceptual_metric.fit_mos import correlations, is_mos_table, pair_labels
from perceptual_metric.lpips_model import LPIPS
from perceptual_metric.trunks import WeightsError
from plic.image_io import read_image
from plic.tables import read_table, rel_path, write_table

torch.set_num_threads(1)
QUALITIES = (5, 10, 20, 30, 45, 60, 80, 95)


def test_pair_labels_are_calibrated_probabilities():
    s = np.array([1.0, 2.0, 2.0, 4.0])
    se = np.array([0.5, 0.5, 0.5, 0.5])
    i, j, p = pair_labels(s, se, [0, 1, 2, 3])
    assert len(p) == 6 and (i < j).all()
    by = {(a, b): q for a, b, q in zip(i, j, p)}
    assert by[1, 2] == 0.5                                   # equal scores: a coin flip
    assert by[0, 3] > by[0, 1] > 0.5 and by[0, 1] < 0.95     # larger gaps, surer labels
    # swapping the two scores gives the complement
    _, _, q = pair_labels(np.array([4.0, 1.0]), np.array([0.5, 0.5]), [0, 1])
    assert q[0] == pytest.approx(1 - by[0, 3])


def test_correlations_and_their_intervals():
    rng = np.random.default_rng(0)
    s = rng.uniform(1, 5, 40)
    d = np.exp(-s)                           # a distance that falls as the score rises
    c = correlations(d, s, n_boot=60)
    assert c["srocc"] == pytest.approx(1.0) and c["plcc"] > 0.99
    noisy = correlations(d + rng.normal(0, 0.05, 40), s, n_boot=60)
    assert noisy["srocc"] < 1
    for k in ("srocc", "plcc"):
        lo, hi = noisy[k + "_ci"]
        assert lo <= noisy[k] <= hi and hi - lo > 0


@pytest.fixture(scope="module")
def mos_csv(tmp_path_factory, sample_images):
    """Constructed opinion scores (DSIS-like): a logistic of a *target* distance, LPIPS-Alex with
    all its weight on the second layer, so the uniform initial weights rank them imperfectly
    and a fit must move the weights to do better."""
    out = tmp_path_factory.mktemp("mos")
    index = make_toy_index(out / "dist", images=sample_images, n_refs=5, size=64,
                           qualities=QUALITIES)
    idx = read_table(index, INDEX_COLUMNS)
    try:
        target = LPIPS.build("alex", "lin")
    except WeightsError as e:
        pytest.skip(f"no ImageNet AlexNet weights here: {e}")
    target.set_linear([torch.full_like(w, float(i == 1)) for i, w in enumerate(target.lins)])

    def img(p):
        return torch.from_numpy(read_image(out / "dist" / p)).permute(2, 0, 1).float()[None] / 255

    with torch.no_grad():
        d = np.array([float(target(img(r["ref_path"]), img(r["path"])))
                      for r in idx.to_dict("records")])
    score = 1 + 4 / (1 + np.exp((d - np.median(d)) / (np.std(d) / 2)))
    mos = out / "study" / "mos.csv"
    mos.parent.mkdir()
    rows = [dict(stimulus_id=r["dist_id"], ref_id=r["ref_id"],
                 ref_path=rel_path(out / "dist" / r["ref_path"], mos),
                 path=rel_path(out / "dist" / r["path"], mos), codec=r["codec"], bpp=r["bpp"],
                 target_bpp=r["target_bpp"], design="dsis", hidden_ref=0, n=10, mos=float(sc),
                 mos_ci=0.2, dmos="", dmos_ci="", sureal=float(sc), sureal_ci=0.2)
            for r, sc in zip(idx.to_dict("records"), score)]
    write_table(mos, rows, MOS_COLUMNS, MOS_ID)
    (mos.parent / "mos.json").write_text(json.dumps({"simulated": True}))
    return mos


def test_fit_on_constructed_scores_ranks_held_out_references(mos_csv, tmp_path, capsys):
    assert is_mos_table(mos_csv)

    def run(steps):
        return fit(FitConfig(labels=str(mos_csv), out=str(tmp_path / f"m{steps}.pt"),
                             steps=steps, views=1, val_fraction=0.4, patch=0, seed=0))

    start, prov = run(1), run(600)
    assert prov["labels_kind"] == "mos" and prov["score"] == "mos" and prov["simulated_labels"]
    val = prov["val"]
    assert val["n"] == 2 * len(QUALITIES) and len(prov["val_refs"]) == 2
    # fitting moves the held-out references' ranking towards the constructed scores
    assert val["srocc"] > start["val"]["srocc"] + 0.02 and val["srocc"] > 0.95
    assert val["srocc_ci"][0] <= val["srocc"] <= val["srocc_ci"][1]
    assert prov["val_2afc"] > start["val_2afc"]
    assert "SROCC" in capsys.readouterr().out
    # nothing to do the second time
    assert run(600)["labels_sha256"] == prov["labels_sha256"]
    assert "nothing to do" in capsys.readouterr().out
    # the checkpoint loads as a metric and is a distance: d(x, x) = 0
    from perceptual_metric import load

    metric = load(str(tmp_path / "m600.pt"))
    x = torch.rand(1, 3, 64, 64)
    assert float(metric(x, x)) == pytest.approx(0, abs=1e-6)


def test_fit_cli_on_mos_refuses_other_modes_in_one_line(mos_csv, tmp_path, capsys):
    rc = fit_main(["--labels", str(mos_csv), "--out", str(tmp_path / "m.pt"), "--mode", "tune"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "lin only" in err and "\n" not in err
    assert not (tmp_path / "m.pt").exists()


def test_evaluate_scores_metrics_against_opinion_scores(mos_csv, tmp_path, capsys):
    from perceptual_metric.evaluate import main as evaluate_main

    out = tmp_path / "eval"
    assert evaluate_main(["--labels", str(mos_csv), "--baselines", "psnr,lpips-alex",
                          "--bootstrap", "60", "--out", str(out)]) == 0
    assert "SIMULATED" in capsys.readouterr().out
    rows = {r["metric"]: r for r in json.loads((out / "mos_scores.json").read_text())["rows"]}
    assert set(rows) == {"psnr", "lpips-alex"} and (out / "mos_scores.csv").is_file()
    n = 5 * len(QUALITIES)
    for r in rows.values():
        assert r["n_stimuli"] == n and r["n_pairs"] == n * (n - 1) // 2
        for k in ("srocc", "plcc", "two_afc"):
            assert r[f"{k}_low"] <= r[k] <= r[f"{k}_high"]
    # the scores were made from an LPIPS-Alex distance: it ranks them better than PSNR
    assert rows["lpips-alex"]["srocc"] > rows["psnr"]["srocc"]
    assert rows["lpips-alex"]["two_afc"] > rows["psnr"]["two_afc"]
