"""The trainer-parity harness (benchmarks.train_parity_runs): the loss mapping onto CompressAI's,
the speed bookkeeping, and the whole harness on the tiny preset (skipped without compressai)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from benchmarks import train_parity
from benchmarks import train_parity_runs as P  # noqa: N812
from codec.train.losses import bpp_per_image, mse255


def _compressai():
    try:
        return P.compressai_train_module()
    except ImportError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("lmbda", [0.0018, 0.0067, 0.0483])
def test_loss_weights_give_compressai_loss_exactly(lmbda):
    _compressai()
    from compressai.losses import RateDistortionLoss

    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 64, 64, generator=g)
    x_hat = (x + 0.05 * torch.randn(x.shape, generator=g)).requires_grad_(True)
    lik = {"y": torch.rand(3, 8, 4, 4, generator=g).clamp(1e-3, 1),
           "z": torch.rand(3, 4, 1, 1, generator=g).clamp(1e-3, 1)}
    theirs = RateDistortionLoss(lmbda=lmbda)({"x_hat": x_hat, "likelihoods": lik}, x)["loss"]
    w = P.loss_weights(lmbda)
    bits = {k: -torch.log2(v).flatten(1).sum(1) for k, v in lik.items()}
    ours = (w["lambda_rate"] * bpp_per_image(bits, 64, 64).mean()
            + w["k_mse"] * mse255(x_hat, x))
    assert float(ours) == pytest.approx(float(theirs), rel=1e-6)
    # equal gradients too (the clipping at norm 1 sees the same vectors), not only a multiple
    g_ours, = torch.autograd.grad(ours, x_hat)
    g_theirs, = torch.autograd.grad(theirs, x_hat)
    assert torch.allclose(g_ours, g_theirs, rtol=1e-5, atol=1e-12)


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_speed_skips_warmup_checkpoints_and_other_windows(tmp_path):
    ours = tmp_path / "ours"
    ours.mkdir()
    _write(ours / P.TIMING, [
        {"step": None, "event": "start", "pid": 1, "t": 0.0, "cpu": 0.0},
        {"step": 20, "ckpt_after": False, "pid": 1, "t": 50.0, "cpu": 40.0},   # warm-up: skip
        {"step": 40, "ckpt_after": True, "pid": 1, "t": 60.0, "cpu": 50.0},    # timed 20 in 10
        {"step": 60, "ckpt_after": False, "pid": 1, "t": 90.0, "cpu": 80.0},   # holds a ckpt
        {"step": 80, "ckpt_after": False, "pid": 1, "t": 100.0, "cpu": 90.0},  # timed 20 in 10
        {"step": None, "event": "start", "pid": 2, "t": 200.0, "cpu": 0.0},    # resumed
        {"step": 100, "ckpt_after": False, "pid": 2, "t": 260.0, "cpu": 50.0},  # warm-up
        {"step": 120, "ckpt_after": False, "pid": 2, "t": 265.0, "cpu": 55.0},  # timed 20 in 5
    ])
    s = P.speed(ours)
    assert s["steps_timed"] == 60 and s["seconds"] == pytest.approx(25.0)
    assert s["steps_per_s"] == pytest.approx(60 / 25) and s["cpu_s_per_step"] == pytest.approx(
        25 / 60)
    assert P.speed(ours, (45.0, 101.0))["steps_timed"] == 40  # only inside the window
    assert P.speed(ours, (55.0, 101.0))["steps_timed"] == 20

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    _write(theirs / P.TIMING, [
        {"epoch": 0, "event": "start", "lr": 1e-4, "pid": 7, "t": 0.0, "cpu": 0.0},
        {"epoch": 0, "event": "end", "steps": 25, "pid": 7, "t": 30.0, "cpu": 30.0},  # warm-up
        {"epoch": 1, "event": "start", "lr": 1e-4, "pid": 7, "t": 32.0, "cpu": 31.0},
        {"epoch": 1, "event": "end", "steps": 25, "pid": 7, "t": 42.0, "cpu": 41.0},
        {"epoch": 2, "event": "start", "lr": 1e-5, "pid": 7, "t": 50.0, "cpu": 45.0},
        {"epoch": 2, "event": "end", "steps": 25, "pid": 7, "t": 55.0, "cpu": 50.0},
    ])
    s = P.speed(theirs)
    assert s["steps_timed"] == 50 and s["seconds"] == pytest.approx(15.0)
    assert train_parity._their_lrs(theirs) == [1e-4, 1e-5]


def test_their_epochs_cover_the_steps():
    a = SimpleNamespace(steps=2000, batch_size=8)
    assert P.their_epochs(a, 200) == (80, 25)
    assert P.their_epochs(SimpleNamespace(steps=30, batch_size=8), 200) == (2, 25)
    assert P.their_epochs(SimpleNamespace(steps=5, batch_size=2), 3) == (3, 2)


def test_crop_must_suit_compressai(capsys):
    assert train_parity.main(["--crop", "96", "--no-train"]) == 2
    assert "multiple of 64" in capsys.readouterr().err
    assert train_parity.main(["--snapshot-every", "300", "--ckpt-every", "200", "--no-train"]) == 2
    assert "not a multiple of --ckpt-every" in capsys.readouterr().err


def test_harness_on_tiny_preset(tmp_path):
    _compressai()
    out = tmp_path / "parity"
    argv = ["--preset", "tiny", "--steps", "6", "--batch-size", "2", "--crop", "64",
            "--ckpt-every", "2", "--snapshot-every", "6",
            "--lambdas", "0.013", "--variants", "default", "--data", "samples",
            "--data-split", "", "--test-split", "", "--test-images", "1", "--kodak", "samples",
            "--eval-images", "1", "--nice", "0", "--out", str(out),
            "--result", str(tmp_path / "r.json")]
    assert train_parity.main(argv) == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    assert {"bd_psnr_db", "bd_rate_pct", "steps_per_s_ratio", "command"} <= set(rep)
    assert rep["command"].startswith("python -m benchmarks.train_parity --preset tiny")
    assert set(rep["points"]) == {"theirs", "ours-default"}
    for pts in rep["points"].values():
        assert [p["lambda"] for p in pts] == [0.013]
        for p in pts:
            assert p["images"] == 1 and p["bpp"] > 0 and math.isfinite(p["psnr"])
            assert p["encode_cpu_s"] > 0 and p["decode_cpu_s"] > 0 and p["est_bpp"] > 0
    assert rep["bd_psnr_db"] == {}  # one point per curve: no BD figure is made up
    # theirs ran whole epochs: the fewest that hold the steps (5 sample images, batch 2: two of 3)
    n_train = len(list((out / "data" / "train").iterdir()))
    assert n_train == 5
    assert [p["steps"] for p in rep["points"]["theirs"]] == [6]
    assert [p["steps"] for p in rep["points"]["ours-default"]] == [6]
    g, = rep["groups"]
    assert set(g["speed_whole_run"]) == {"theirs", "ours-default"}
    cfg = json.loads((out / "lambda-0.013" / "ours-default" / "config.json").read_text())
    assert cfg["k_mse"] == 0.013 and cfg["lambda_rate"] == 1.0 and cfg["lr_gamma"] == 1.0
    assert (out / "data" / "train").is_dir() and len(list((out / "data" / "test").iterdir())) == 1
    # a second call trains and codes nothing again
    timing = (out / "lambda-0.013" / "theirs" / P.TIMING).read_text()
    coded = (out / "lambda-0.013" / "theirs" / "kodak.json").stat().st_mtime_ns
    assert train_parity.main(argv) == 0
    assert (out / "lambda-0.013" / "theirs" / P.TIMING).read_text() == timing
    assert (out / "lambda-0.013" / "theirs" / "kodak.json").stat().st_mtime_ns == coded

    # the copies at step 6 (the last) code exactly as the finished runs
    assert train_parity.main([*argv, "--no-train", "--eval-at", "6"]) == 0
    at6 = json.loads((tmp_path / "r.json").read_text())
    assert {n: [(p["bpp"], p["psnr"]) for p in pts] for n, pts in at6["points"].items()} == {
        n: [(p["bpp"], p["psnr"]) for p in pts] for n, pts in rep["points"].items()}
    assert sorted(p.name for p in (out / "snap" / "6" / "lambda-0.013").iterdir()) == [
        "ours-default", "theirs"]
