"""Fitting the metric on 2AFC labels: oracle recovery, the lin fast path, labels errors, 2AFC.

The labels here are SIMULATED (perceptual_metric.simulate): a hidden LPIPS "oracle" with sparse
random weights plus binomial judge noise, on 64 px patches of the sample images. Not human data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mturk.schema import LABELS_COLUMNS, LABELS_ID
from perceptual_metric import InputError, load
from perceptual_metric.fit import FitConfig, fit
from perceptual_metric.fit import main as fit_main
from perceptual_metric.fit_common import make_views, view_distances, view_terms
from perceptual_metric.labels import LabelsError, TripletDataset, group_split, read_labels
from perceptual_metric.lpips_model import LPIPS
from perceptual_metric.scoring import bootstrap_ci, ceiling, metric_distances, two_afc
from perceptual_metric.simulate import simulate
from perceptual_metric.trunks import WeightsError
from plic.checkpoint import CheckpointError, load_checkpoint
from plic.quality import psnr
from plic.schedule import lr_at
from plic.tables import read_table, write_table

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def sim(tmp_path_factory, sample_images):
    out = tmp_path_factory.mktemp("sim")
    meta = simulate(out, list(sample_images.values()), trials=320, patch_size=64, seed=1)
    return out, meta


@pytest.fixture(scope="module")
def fitted(sim):
    out, _ = sim
    cfg = FitConfig(labels=str(out / "labels.csv"), out=str(out / "metric.pt"), steps=1000,
                    views=4, val_fraction=0.3, seed=0)
    try:
        prov = fit(cfg, log=lambda *_: None)
    except WeightsError as e:
        pytest.skip(f"no ImageNet AlexNet weights here: {e}")
    return cfg, prov


def _val_distances(metric, labels, cfg):
    trials = read_labels(labels)
    _, va = group_split(trials, cfg.val_fraction, cfg.seed)
    ds = TripletDataset(trials, None)
    d_a, d_b = metric_distances(metric, ds, va)
    return d_a, d_b, np.array([trials[i].p_b for i in va])


def test_simulated_labels_say_so(sim):
    out, meta = sim
    assert meta["simulated"] and "not human" in json.loads((out / "SIMULATED.json").read_text())[
        "note"]
    trials = read_labels(out / "labels.csv")
    assert all(t.trial_id.startswith("sim-") for t in trials)
    assert all(0 <= t.p_b <= 1 and t.n >= 3 for t in trials)


def test_fit_recovers_the_oracle(sim, fitted):
    out, _ = sim
    cfg, prov = fitted
    o_a, o_b, p_b = _val_distances(load(out / "oracle.pt"), cfg.labels, cfg)
    f_a, f_b, _ = _val_distances(load(cfg.out), cfg.labels, cfg)
    oracle, ours = two_afc(o_a, o_b, p_b).mean(), two_afc(f_a, f_b, p_b).mean()
    # the checkpoint's own validation score is the same number, computed on cached terms
    assert prov["val_2afc"] == pytest.approx(ours, abs=1e-6)
    assert prov["simulated_labels"] and prov["n_val"] >= 60
    assert ours > prov["val_2afc_psnr"] + 0.05, (ours, prov["val_2afc_psnr"])
    assert ours >= oracle - 0.05, (ours, oracle)
    assert ours <= prov["val_ceiling"] + 1e-9
    # on held-out references the fitted metric orders pairs like the hidden oracle does
    trials = read_labels(cfg.labels)
    ds = TripletDataset(trials, None)
    _, va = group_split(trials, cfg.val_fraction, cfg.seed)
    psnr_d = -np.array([[psnr(r, a), psnr(r, b)] for r, a, b in map(ds.images, va)])
    truth = np.sign(o_a - o_b)
    agree_fit = np.mean(np.sign(f_a - f_b) == truth)
    agree_psnr = np.mean(np.sign(psnr_d[:, 0] - psnr_d[:, 1]) == truth)
    assert agree_fit >= 0.9 and agree_fit > agree_psnr + 0.1, (agree_fit, agree_psnr)


def test_checkpoint_contract_and_frozen_metric(fitted):
    cfg, prov = fitted
    ckpt = load_checkpoint(cfg.out, "metric")
    assert ckpt["model"] == "lpips-alex-fitted"
    assert ckpt["config"]["trunk_id"] == prov["trunk_id"] != "random"
    assert ckpt["config"]["fit"]["labels"] == cfg.labels
    from plic.fsio import sha256_file
    assert ckpt["provenance"]["labels_sha256"] == sha256_file(cfg.labels)
    summary = json.loads(Path(cfg.out).with_suffix(".json").read_text())
    assert summary["provenance"]["val_2afc"] == prov["val_2afc"]
    assert summary["model"] == ckpt["model"]
    d = load(cfg.out)
    assert all(bool((w >= 0).all()) for w in d.lins)
    assert any(bool((w == 0).any()) for w in d.lins)  # projection was active, not vacuous
    assert not any(p.requires_grad for p in d.parameters())
    x = torch.rand(2, 3, 64, 64)
    y = (x + 0.05 * torch.randn_like(x)).clamp(0, 1).requires_grad_(True)
    dist = d(x, y)
    assert dist.shape == (2,) and dist.device == x.device
    dist.sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    with pytest.raises(InputError, match=r"\[0,1\]"):
        d(x * 255, x)


def test_rerun_is_a_no_op(fitted):
    cfg, _ = fitted
    before = load_checkpoint(cfg.out, "metric")["provenance"]
    msgs = []
    fit(cfg, log=msgs.append)
    assert "nothing to do" in msgs[0]
    assert load_checkpoint(cfg.out, "metric")["provenance"] == before


def test_lin_cache_matches_the_direct_metric(sim):
    """The fast path (cached channel terms, combined with the weights) equals d(x, y)."""
    out, _ = sim
    trials = read_labels(out / "labels.csv")[:6]
    torch.manual_seed(0)
    model = LPIPS("alex", "scratch")
    model.set_linear([torch.rand(c) for c in model.trunk.channels])
    ds = TripletDataset(trials, 48, train=True)
    idx = list(range(len(trials)))
    views = make_views(ds, idx, 3, seed=1, flip=True)
    terms = view_terms(model, ds, idx, views, batch_size=4)
    with torch.no_grad():
        for j, i in enumerate(idx):
            for v, view in enumerate(views[j]):
                ref, a, b = (t[None] for t in ds.crop(i, *view))
                d_a, d_b = view_distances(model, terms[j, v][None])
                assert d_a.item() == pytest.approx(model(ref, a).item(), rel=1e-5, abs=1e-7)
                assert d_b.item() == pytest.approx(model(ref, b).item(), rel=1e-5, abs=1e-7)
                pa, pb = model.pair_distances(ref, a, b)
                assert torch.allclose(torch.stack([pa, pb]), torch.stack([d_a, d_b]), atol=1e-6)


def test_lr_schedule():
    lrs = [lr_at(s, 100, 1e-4, decay_fraction=0.5) for s in range(101)]
    assert lrs[:50] == [1e-4] * 50
    assert all(a >= b for a, b in zip(lrs, lrs[1:])) and lrs[100] == 0.0
    assert lrs[75] == pytest.approx(0.5e-4)


def test_two_afc_invariants():
    rng = np.random.default_rng(0)
    d_a, d_b, p = rng.random(200), rng.random(200), rng.random(200)
    s = two_afc(d_a, d_b, p)
    assert np.all(s <= ceiling(p) + 1e-12)
    assert np.allclose(two_afc(d_b, d_a, 1 - p), s)  # naming A and B the other way round
    assert np.all(two_afc(d_a, d_a, p) == 0.5)  # ties count one half
    oracle = two_afc(np.where(p > 0.5, 1.0, 0.0), np.where(p > 0.5, 0.0, 1.0), p)
    assert np.allclose(oracle, ceiling(p))
    lo, hi = bootstrap_ci(s)
    assert lo < s.mean() < hi and hi - lo < 0.2


def _write_labels(path, rows):
    write_table(path, rows, LABELS_COLUMNS, LABELS_ID)
    return path


def test_labels_errors_are_clear(sim, tmp_path):
    out, _ = sim
    rows = read_table(out / "labels.csv", LABELS_COLUMNS, LABELS_ID).to_dict("records")[:4]
    for r in rows:
        for k in ("ref_path", "a_path", "b_path"):
            r[k] = str(out / r[k])
    with pytest.raises(LabelsError, match="not found"):
        read_labels(tmp_path / "missing.csv")
    bad = [dict(r) for r in rows]
    bad[1]["a_path"] = str(out / "images" / "nope.png")
    with pytest.raises(LabelsError, match="missing"):
        read_labels(_write_labels(tmp_path / "l1.csv", bad))
    bad = [dict(r) for r in rows]
    bad[2]["ref_id"] = bad[1]["ref_id"]  # one id, two different files
    with pytest.raises(LabelsError, match="points at"):
        read_labels(_write_labels(tmp_path / "l2.csv", bad))
    bad = [dict(r) for r in rows]
    bad[0]["p_b"] = 1.5
    with pytest.raises(LabelsError, match="p_b"):
        read_labels(_write_labels(tmp_path / "l3.csv", bad))
    bad = [dict(r) for r in rows]
    bad[3]["b_id"] = ""
    with pytest.raises(LabelsError, match="empty b_id"):
        read_labels(_write_labels(tmp_path / "l4.csv", bad))
    assert fit_main(["--labels", str(tmp_path / "l4.csv"), "--out",
                     str(tmp_path / "m.pt")]) == 2
    with pytest.raises(CheckpointError):
        load(tmp_path / "m.pt")


def test_scratch_mode_trains_the_trunk_and_resumes(sim, tmp_path, capsys, monkeypatch):
    """scratch: trunk gradients, random crops of bigger images, --resume after a crash."""
    import perceptual_metric.fit as fit_mod

    out, _ = sim
    rows = read_table(out / "labels.csv", LABELS_COLUMNS, LABELS_ID).to_dict("records")[:12]
    for r in rows:
        for k in ("ref_path", "a_path", "b_path"):
            r[k] = str((out / r[k]).resolve())
    labels = _write_labels(tmp_path / "labels.csv", rows)
    args = ["--labels", str(labels), "--out", str(tmp_path / "m.pt"), "--mode", "scratch",
            "--patch", "48", "--batch-size", "4", "--val-fraction", "0.3", "--steps", "6",
            "--resume"]
    real_save = fit_mod.save_training_state

    def crash_after_three(path, state):
        real_save(path, state)
        if state["step"] == 3:
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(fit_mod, "save_training_state", crash_after_three)
    assert fit_main(args) == 2
    assert (tmp_path / "m.pt.state").is_file() and not (tmp_path / "m.pt").exists()
    monkeypatch.setattr(fit_mod, "save_training_state", real_save)
    assert fit_main(args) == 0
    assert "resuming at step 3" in capsys.readouterr().out
    ckpt = load_checkpoint(tmp_path / "m.pt", "metric")
    assert ckpt["provenance"]["steps"] == 6 and len(ckpt["provenance"]["history"]) == 6
    assert ckpt["config"]["mode"] == "scratch" and ckpt["config"]["trunk_id"] == "random"
    assert not (tmp_path / "m.pt.state").exists()  # removed once the checkpoint is written
    torch.manual_seed(0)  # the fit's seed: the same random trunk before training
    trunk0 = LPIPS("alex", "scratch").trunk.state_dict()
    moved = load(tmp_path / "m.pt").trunk.state_dict()
    assert any(not torch.equal(trunk0[k], moved[k]) for k in trunk0)  # the trunk was trained
    with pytest.raises(SystemExit):
        fit_main(["--help"])
    assert "--patch" in capsys.readouterr().out


@pytest.mark.slow
def test_fit_on_more_labels_moves_towards_the_oracle(tmp_path, sample_images):
    """With 1,200 simulated trials the fitted weights order held-out pairs like the oracle more
    often than the uniform weights it starts from, and its 2AFC is within 0.05 of the oracle's."""
    simulate(tmp_path, list(sample_images.values()), trials=1200, patch_size=64, seed=7)
    cfg = FitConfig(labels=str(tmp_path / "labels.csv"), out=str(tmp_path / "metric.pt"),
                    views=4, val_fraction=0.3)
    try:
        fit(cfg, log=lambda *_: None)
    except WeightsError as e:
        pytest.skip(f"no ImageNet AlexNet weights here: {e}")
    o_a, o_b, p_b = _val_distances(load(tmp_path / "oracle.pt"), cfg.labels, cfg)
    f_a, f_b, _ = _val_distances(load(cfg.out), cfg.labels, cfg)
    u_a, u_b, _ = _val_distances(LPIPS.build("alex", "lin").freeze(), cfg.labels, cfg)
    truth = np.sign(o_a - o_b)
    agree_fit = np.mean(np.sign(f_a - f_b) == truth)
    agree_uniform = np.mean(np.sign(u_a - u_b) == truth)
    assert agree_fit > agree_uniform, (agree_fit, agree_uniform)
    assert two_afc(f_a, f_b, p_b).mean() >= two_afc(o_a, o_b, p_b).mean() - 0.05


def test_head_warm_up_turns_an_upside_down_head_the_right_way():
    """A fresh BAPPS head is a random MLP of (d_A, d_B); for some seeds it maps a larger d_A to a
    lower P(B). ``warm_up_head`` fits it alone on labels that follow the distances: afterwards
    it is increasing in d_A - d_B and calls the labels' side on (nearly) every pair."""
    from perceptual_metric.fit_common import warm_up_head
    from perceptual_metric.lpips_model import RankHead
    g = torch.Generator().manual_seed(0)
    d_a, d_b = torch.rand(300, generator=g), torch.rand(300, generator=g)
    p_b = torch.sigmoid(8 * (d_a - d_b))           # B closer (d_B smaller): B more often

    def corr(head):
        with torch.no_grad():
            return np.corrcoef(torch.sigmoid(head(d_a, d_b)).numpy(), (d_a - d_b).numpy())[0, 1]

    upside_down = []
    for seed in range(20):
        torch.manual_seed(seed)
        head = RankHead()
        if corr(head) < -0.5:
            upside_down.append(seed)
            warm_up_head(head, d_a, d_b, p_b, torch.ones(300), steps=300)
            assert corr(head) > 0.9, seed
            with torch.no_grad():
                q = torch.sigmoid(head(d_a, d_b))
            assert ((q > 0.5) == (p_b > 0.5)).float().mean() > 0.95, seed
    assert upside_down, "no upside-down head among 20 seeds: the test tests nothing"


def test_fit_warms_up_a_fresh_head(sim, tmp_path):
    """``fit`` (no --init) hands back a head that agrees with its own distances' direction on the
    training labels, whatever the seed's random head did."""
    out, _ = sim
    from perceptual_metric.predict import load_head
    for seed in (0, 3):
        cfg = FitConfig(labels=str(out / "labels.csv"), out=str(tmp_path / f"m{seed}.pt"),
                        steps=50, views=1, val_fraction=0.3, seed=seed)
        try:
            fit(cfg, log=lambda *_: None)
        except WeightsError as e:
            pytest.skip(f"no ImageNet AlexNet weights here: {e}")
        head = load_head(cfg.out)
        d = torch.linspace(0.05, 0.5, 10)
        with torch.no_grad():
            q = torch.sigmoid(head(d, torch.full_like(d, 0.25)))   # P(B) as d_A grows
        from scipy.stats import spearmanr
        assert q[-1] > 0.5 > q[0] and spearmanr(q.numpy(), d.numpy())[0] > 0.9
