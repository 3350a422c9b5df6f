"""perceptual_metric.evaluate end to end on a small SIMULATED label set (not human data).
"""

from __future__ import annotations

import json

import pytest
import torch

from perceptual_metric.evaluate import CEILING, SCORES_COLUMNS
from perceptual_metric.evaluate import main as eval_main
from perceptual_metric.labels import read_labels
from perceptual_metric.simulate import simulate
from perceptual_metric.trunks import WeightsError, resolve_weights
from plic.tables import read_table

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def sim(tmp_path_factory, sample_images):
    out = tmp_path_factory.mktemp("sim")
    simulate(out, list(sample_images.values()), trials=60, patch_size=64, seed=5)
    return out


def test_evaluate_table_plot_and_invariants(sim, tmp_path, capsys):
    try:
        resolve_weights("alex", download=False)
    except WeightsError as e:
        pytest.skip(f"no AlexNet weights: {e}")
    out = tmp_path / "eval"
    assert eval_main(["--labels", str(sim / "labels.csv"), "--metric", str(sim / "oracle.pt"),
                      "--baselines", "psnr,ms-ssim,lpips-alex", "--bootstrap", "200",
                      "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "SIMULATED" in printed and "MS-SSIM on 64x64 images uses 3 scales" in printed
    rows = json.loads((out / "scores.json").read_text())["rows"]
    assert len(read_table(out / "scores.csv", SCORES_COLUMNS)) == len(rows)
    trials = read_labels(sim / "labels.csv")
    pairs = {t.pair for t in trials}
    metrics = {r["metric"] for r in rows}
    assert metrics == {"lpips-alex-simulation-oracle", "psnr", "ms-ssim", "lpips-alex", CEILING}
    by = {(r["metric"], r["group"]): r for r in rows}
    for m in metrics:  # overall plus one row per codec pair, trial counts adding up
        assert {g for (mm, g) in by if mm == m} == pairs | {"all"}
        assert by[(m, "all")]["n_trials"] == len(trials)
        assert sum(by[(m, g)]["n_trials"] for g in pairs) == len(trials)
    for r in rows:
        assert r["ci_low"] <= r["score"] <= r["ci_high"]
        assert r["score"] <= by[(CEILING, r["group"])]["score"] + 1e-9
    # the oracle generated these labels: it beats PSNR on them
    assert by[("lpips-alex-simulation-oracle", "all")]["score"] > by[("psnr", "all")]["score"]
    assert (out / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "scores.json").read_text())["split"] == "all"


def test_evaluate_val_split_and_errors(sim, tmp_path):
    out = tmp_path / "eval"
    assert eval_main(["--labels", str(sim / "labels.csv"), "--metric", str(sim / "oracle.pt"),
                      "--baselines", "psnr", "--split", "val", "--bootstrap", "50",
                      "--out", str(out)]) == 0
    rows = json.loads((out / "scores.json").read_text())["rows"]
    n_all = [r["n_trials"] for r in rows if r["group"] == "all"]
    assert len(set(n_all)) == 1 and 0 < n_all[0] < len(read_labels(sim / "labels.csv"))
    with pytest.raises(SystemExit):  # --split val needs a checkpoint
        eval_main(["--labels", str(sim / "labels.csv"), "--split", "val", "--out", str(out)])
    with pytest.raises(SystemExit):
        eval_main(["--labels", str(sim / "labels.csv"), "--baselines", "ssim",
                   "--out", str(out)])



def test_package_command_lists_its_subcommands(capsys):
    from perceptual_metric.__main__ import main as pm_main

    assert pm_main([]) == 2
    assert pm_main(["nope"]) == 2
    out = capsys.readouterr().out
    assert all(c in out for c in ("fit", "evaluate", "simulate", "predict", "server_rounds",
                                  "active_savings"))
    with pytest.raises(SystemExit):
        pm_main(["evaluate", "--help"])
    assert "--split" in capsys.readouterr().out


@pytest.mark.gpu
def test_metric_follows_the_inputs_device():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from perceptual_metric import InputError
    from perceptual_metric.lpips_model import LPIPS

    torch.manual_seed(0)
    d = LPIPS("alex", "scratch").freeze()
    x, y = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        cpu = d(x, y)
        gpu = d(x.cuda(), y.cuda())
    assert gpu.device.type == "cuda" and gpu.shape == (2,)
    assert torch.allclose(gpu.cpu(), cpu, rtol=1e-3, atol=1e-5)
    with pytest.raises(InputError, match="one device"):
        d(x, y.cuda())


def test_simulated_labels_are_recognised(tmp_path, sim):
    from perceptual_metric.labels import simulated_source

    assert simulated_source(sim / "labels.csv") == "SIMULATED.json"
    labels = tmp_path / "labels.csv"
    assert simulated_source(labels) is None
    (tmp_path / "aggregate.json").write_text(json.dumps({"simulated": False}))
    assert simulated_source(labels) is None
    (tmp_path / "aggregate.json").write_text(json.dumps({"simulated": True, "trials": 3}))
    assert simulated_source(labels) == "aggregate.json"
