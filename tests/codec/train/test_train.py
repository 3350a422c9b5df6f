"""codec.train: schedules, data, losses, stages, rate control, resume, NaN guard, CLI.

Every training run here is the `tiny` preset on 64 px crops of the built-in samples, on one thread.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from codec.train.config import (
    TRACKS,
    TrainConfig,
    draw_delta,
    parse_model_config,
    rate_weight,
    stage_at,
)
from codec.train.data import GlobalBatchSampler, RandomCrops, train_loader, training_records
from codec.train.discriminator import Discriminator
from codec.train.loop import TrainingDiverged, train
from codec.train.losses import clamp_st, discriminator_loss, generator_loss
from codec.train.rundir import read_metrics
from plic.checkpoint import load_checkpoint, load_training_state
from plic.schedule import lr_at

from ...forge import ToyMetric

torch.set_num_threads(1)


def tiny(tmp_path, name="run", **kw) -> TrainConfig:
    base = dict(model="hific", preset="tiny", steps=8, batch_size=2, crop=64, workers=0,
                threads=1, val_images=1, val_crop=64, out=str(tmp_path / name), lr=1e-3)
    base.update(kw)
    return TrainConfig(**base)


def final_weights(out) -> dict:
    return load_checkpoint(f"{out}/last.pt", kind="codec")["state_dict"]


# -- pure pieces ------------------------------------------------------------------------------

def test_lr_schedule_steps_down_at_the_seed_milestones():
    total, SEED = 10_000_000, TrainConfig().lr_milestones  # noqa: N806
    assert SEED == (0.2, 0.4, 0.5, 0.6)
    assert lr_at(0, total, 1e-4, SEED) == 1e-4
    assert lr_at(1_999_999, total, 1e-4, SEED) == 1e-4
    assert lr_at(2_000_000, total, 1e-4, SEED) == pytest.approx(5e-5)
    assert lr_at(4_000_000, total, 1e-4, SEED) == pytest.approx(2.5e-5)
    assert lr_at(5_000_000, total, 1e-4, SEED) == pytest.approx(1.25e-5)
    assert lr_at(9_999_999, total, 1e-4, SEED) == pytest.approx(6.25e-6)
    # presets scale it: same fractions of a shorter run
    assert lr_at(19, 100, 1.0, SEED) == 1.0 and lr_at(20, 100, 1.0, SEED) == 0.5
    values = [lr_at(s, 100, 1.0, SEED) for s in range(100)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_tracks_presets_and_stages():
    assert sorted(float(t) for t in TRACKS) == [0.075, 0.15, 0.3]
    lams = [TRACKS[t]["lambda_rate"] for t in ("0.075", "0.15", "0.3")]
    assert lams == sorted(lams, reverse=True)  # lower target, heavier rate weight
    c = TrainConfig(preset="tiny", track="0.075").resolved()
    assert (c.steps, c.target_bpp, c.loss) == (60, 0.075, "full")
    assert [stage_at(s, c) for s in (0, 5, 6, 29, 30, 59)] == [
        "mse", "mse", "perceptual", "perceptual", "adversarial", "adversarial"]
    b = TrainConfig(model="bmshj2018-hyperprior", preset="tiny").resolved()
    assert b.loss == "mse" and {stage_at(s, b) for s in range(60)} == {"mse"}
    sw = TrainConfig(preset="tiny", lambda_switching=True).resolved()
    assert rate_weight(0.5, sw) == sw.lambda_rate and rate_weight(0.01, sw) == 2 ** -4
    assert TrainConfig.from_dict(c.to_dict()) == c


def test_bin_widths_are_log_uniform_and_a_function_of_seed_and_step():
    lo, hi = 0.25, 4.0
    d = [draw_delta(7, s, lo, hi) for s in range(4000)]
    assert d == [draw_delta(7, s, lo, hi) for s in range(4000)]  # resume/ranks draw the same
    assert d[:50] != [draw_delta(8, s, lo, hi) for s in range(50)]
    assert lo <= min(d) and max(d) <= hi
    logs = np.log2(d)  # uniform on [-2, 2]: mean 0, a quarter in each unit interval
    assert abs(logs.mean()) < 0.1
    assert np.histogram(logs, bins=4, range=(-2, 2))[0].min() > 900
    assert draw_delta(0, 3, 1.0, 1.0) == 1.0
    with pytest.raises(ValueError):
        draw_delta(0, 0, 0.0, 1.0)


def test_model_config_overrides_parse():
    assert parse_model_config("") == {}
    assert parse_model_config('N=64, M=48,quantizer="ste",coding_order=parallel') == {
        "N": 64, "M": 48, "quantizer": "ste", "coding_order": "parallel"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_model_config("N64")
    with pytest.raises(ValueError):
        TrainConfig(model_config="=3").resolved()
    with pytest.raises(ValueError, match="two numbers"):
        TrainConfig(delta_range=(0.5,)).resolved()


def test_crops_are_a_function_of_the_sample_number():
    recs = training_records("samples")
    a, b = RandomCrops(recs, 64, seed=3), RandomCrops(recs, 64, seed=3)
    ks = [7, 0, 123, 7]
    xa = [a[k] for k in ks]
    xb = [b[k] for k in reversed(ks)][::-1]
    for u, v in zip(xa, xb):
        assert torch.equal(u, v)
    assert xa[0].shape == (3, 64, 64) and 0 <= xa[0].min() and xa[0].max() <= 1
    assert not torch.equal(a[1], a[2])
    # every image is visited once per epoch
    n = len(recs)
    assert sorted(a.image_index(k) for k in range(n, 2 * n)) == list(range(n))


def test_two_ranks_share_one_global_batch():
    one = GlobalBatchSampler(4, start_step=5)
    r0, r1 = GlobalBatchSampler(4, 5, rank=0, world=2), GlobalBatchSampler(4, 5, rank=1, world=2)
    take = lambda s, n: [next(it) for it in [iter(s)] for _ in range(n)]  # noqa: E731
    assert take(one, 4) == take(r0, 2) + take(r1, 2) == [20, 21, 22, 23]
    with pytest.raises(ValueError):
        GlobalBatchSampler(3, world=2)


def test_loader_batches_do_not_depend_on_workers_or_global_rng():
    recs = training_records("samples")
    torch.manual_seed(0)
    before = torch.get_rng_state()
    b0 = next(iter(train_loader(recs, 64, 3, seed=1, start_step=2, workers=0)))
    assert torch.equal(torch.get_rng_state(), before)
    b1 = next(iter(train_loader(recs, 64, 3, seed=1, start_step=2, workers=1)))
    assert b0.shape == (3, 3, 64, 64) and torch.equal(b0, b1)


def test_gan_losses_and_straight_through_clamp():
    real, fake = torch.tensor([3.0]), torch.tensor([-3.0])
    assert discriminator_loss(real, fake) < discriminator_loss(fake, real)
    # non-saturating: a confident discriminator still gives the generator a strong gradient
    t = torch.tensor([-8.0], requires_grad=True)
    generator_loss(t).backward()
    assert t.grad.item() < -0.99
    assert generator_loss(torch.tensor([0.0])).item() == pytest.approx(math.log(2))
    x = torch.tensor([-0.5, 0.5, 1.5], requires_grad=True)
    y = clamp_st(x)
    assert y.tolist() == [0.0, 0.5, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]


def test_discriminator_is_conditioned_on_the_latent():
    d = Discriminator(width=4, latent_channels=5)
    x, y = torch.rand(2, 3, 64, 64), torch.randn(2, 5, 4, 4)
    out = d(x, y)
    assert out.shape == (2, 1, 4, 4)
    assert not torch.allclose(out, d(x, torch.randn(2, 5, 4, 4)))
    with pytest.raises(ValueError):
        d(x)


# -- training runs ----------------------------------------------------------------------------

def test_a_few_dozen_steps_lower_the_loss(tmp_path):
    cfg = tiny(tmp_path, model="bmshj2018-hyperprior", steps=40, batch_size=4, lr=3e-3,
               val_every=40)
    train(cfg, progress=False)
    rows = [r for r in read_metrics(cfg.out) if "loss" in r]
    assert len(rows) == 40
    first = np.mean([r["loss"] for r in rows[:8]])
    last = np.mean([r["loss"] for r in rows[-8:]])
    assert last < 0.7 * first, (first, last)


def test_each_stage_updates_what_it_should(tmp_path):
    # 6 steps: 0-1 rate+MSE, 2-3 +perceptual, 4-5 +adversarial; stop after each stage.
    kw = dict(steps=6, perceptual_start=1 / 3, adversarial_start=2 / 3, val_every=2)
    states = []
    for stop in (2, 4, 6):
        cfg = tiny(tmp_path, stop_at=stop, resume=stop > 2, **kw)
        train(cfg, metric=ToyMetric(), progress=False)
        states.append(load_training_state(tmp_path / "run" / "train_state.pt"))
    d2, d4, d6 = (s["disc"] for s in states)
    assert all(torch.equal(d2[k], d4[k]) for k in d2), "discriminator moved before its stage"
    assert any(not torch.equal(d4[k], d6[k]) for k in d4), "discriminator did not train"
    for a, b in zip(states, states[1:]):
        ma, mb = a["model"], b["model"]
        assert any(not torch.equal(ma[k], mb[k]) for k in ma if k.startswith("g_s"))
        assert any(not torch.equal(ma[k], mb[k]) for k in ma if k.startswith("top_prior"))
    rows = {r["step"]: r for r in read_metrics(tmp_path / "run") if "loss" in r}
    assert [r["stage"] for _, r in sorted(rows.items())] == ["mse"] * 2 + ["perceptual"] * 2 + [
        "adversarial"] * 2
    assert [("perceptual" in rows[s], "g_loss" in rows[s], "d_loss" in rows[s])
            for s in (1, 3, 5)] == [(False, False, False), (True, False, False),
                                    (True, True, True)]


def test_bpp_falls_as_lambda_rises(tmp_path):
    bpps = []
    for lam in (1e-4, 100.0):
        cfg = tiny(tmp_path, name=f"lam{lam}", loss="mse", steps=40, batch_size=4, lr=1e-2,
                   lr_prior=1e-2, lambda_rate=lam, val_every=40, val_crop=128)
        res = train(cfg, progress=False)
        rows = [r for r in read_metrics(cfg.out) if "loss" in r]
        bpps.append((np.mean([r["bpp"] for r in rows[-10:]]), res["val"]["bpp"]))
    (train_lo, val_lo), (train_hi, val_hi) = bpps
    assert train_hi < 0.5 * train_lo, bpps
    assert val_hi < val_lo, bpps  # real bitstream bpp agrees


def test_resume_equals_uninterrupted(tmp_path):
    kw = dict(steps=6, perceptual_start=1 / 3, adversarial_start=1 / 2, val_every=3)
    train(tiny(tmp_path, name="straight", **kw), metric=ToyMetric(), progress=False)
    train(tiny(tmp_path, name="cut", stop_at=3, **kw), metric=ToyMetric(), progress=False)
    # resumed with a loader worker: batches do not depend on the worker count
    train(tiny(tmp_path, name="cut", resume=True, workers=1, **kw), metric=ToyMetric(),
          progress=False)
    a, b = final_weights(tmp_path / "straight"), final_weights(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa = load_training_state(tmp_path / "straight" / "train_state.pt")
    sb = load_training_state(tmp_path / "cut" / "train_state.pt")
    assert sa["step"] == sb["step"] == 6
    assert all(torch.equal(sa["disc"][k], sb["disc"][k]) for k in sa["disc"])
    # the log has one line per step, none duplicated by the replay
    steps = [r["step"] for r in read_metrics(tmp_path / "cut") if "loss" in r]
    assert steps == list(range(1, 7))


def test_resume_refuses_a_changed_config_and_a_fresh_start_refuses_a_used_dir(tmp_path):
    cfg = tiny(tmp_path, model="bmshj2018-factorized", loss="mse", steps=2, stop_at=1)
    train(cfg, progress=False)
    with pytest.raises(FileExistsError):
        train(cfg, progress=False)
    with pytest.raises(ValueError, match="lr"):
        train(tiny(tmp_path, model="bmshj2018-factorized", loss="mse", steps=2, resume=True,
                   lr=0.5), progress=False)
    # a run saved before an option existed resumes: the missing option had its default
    st = load_training_state(tmp_path / "run" / "train_state.pt")
    del st["config"]["delta_range"]
    torch.save(st, tmp_path / "run" / "train_state.pt")
    # --resume is idempotent: it finishes the run, then a finished run does nothing
    done = tiny(tmp_path, model="bmshj2018-factorized", loss="mse", steps=2, resume=True)
    assert train(done, progress=False)["step"] == 2
    before = (tmp_path / "run" / "last.pt").read_bytes()
    assert train(done, progress=False)["step"] == 2
    assert (tmp_path / "run" / "last.pt").read_bytes() == before
    # and starts a run where there is none
    assert train(tiny(tmp_path, name="fresh", model="bmshj2018-factorized", loss="mse", steps=1,
                      resume=True), progress=False)["step"] == 1


def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    from codec.models import build

    torch.manual_seed(0)
    model = build("bmshj2018-factorized", "tiny")
    forward, calls = model.forward, []

    def poisoned(x, delta=None):
        out = forward(x, delta)
        calls.append(1)
        if len(calls) >= 6:  # from the 6th training step on (one probe-free MSE run)
            out["x_hat"] = out["x_hat"] * float("nan")
        return out

    model.forward = poisoned
    cfg = tiny(tmp_path, model="bmshj2018-factorized", loss="mse", steps=10, ckpt_every=2,
               val_every=100)
    with pytest.raises(TrainingDiverged, match=r"step \d+.*last\.pt \(step 4\)"):
        train(cfg, model=model, progress=False)
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt", kind="codec")
    assert ckpt["provenance"]["step"] == 4
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


def test_cli_writes_contract_checkpoints_with_the_track(tmp_path, capsys):
    from codec import api
    from codec.train import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "--resume" in capsys.readouterr().out
    out = tmp_path / "cli"
    rc = main(["--model", "bmshj2018-factorized", "--preset", "tiny", "--track", "0.3",
               "--steps", "2", "--crop", "64", "--batch-size", "2", "--workers", "0",
               "--val-images", "1", "--val-crop", "64", "--out", str(out)])
    assert rc == 0
    for name in ("last.pt", "best.pt"):
        ck = load_checkpoint(out / name, kind="codec")
        assert ck["model"] == "bmshj2018-factorized"
        assert ck["config"]["target_bpp"] == 0.3 and ck["provenance"]["target_bpp"] == 0.3
        assert ck["provenance"]["train_config"]["track"] == "0.3"
        assert "opt_main" not in ck  # optimiser state lives in the training state only
    model = api.load(out / "last.pt")
    img = np.zeros((64, 64, 3), np.uint8)
    assert api.decompress(api.encode(img, model, bin_width=1.0).data, model).shape == img.shape
    assert main(["--model", "bmshj2018-factorized", "--preset", "tiny", "--out", str(out),
                 "--steps", "2"]) == 2  # refuses to overwrite a run without --resume


def test_cli_model_config_and_bin_width_range_reach_model_and_checkpoint(tmp_path):
    from codec.train import main

    out = tmp_path / "narrow"
    rc = main(["--model", "bmshj2018-hyperprior", "--preset", "tiny", "--model-config",
               "N=6,M=10", "--delta-range", "0.3", "3.0", "--steps", "12", "--crop", "64",
               "--batch-size", "1", "--workers", "0", "--threads", "1", "--val-images", "1",
               "--val-crop", "64", "--out", str(out)])
    assert rc == 0
    ck = load_checkpoint(out / "last.pt", kind="codec")
    assert (ck["config"]["N"], ck["config"]["M"]) == (6, 10)
    assert ck["config"]["delta_range"] == [0.3, 3.0]
    assert ck["state_dict"]["g_a.6.weight"].shape[0] == 10  # the latent has M channels
    assert ck["provenance"]["train_config"]["model_config"] == "N=6,M=10"
    deltas = [r["delta"] for r in read_metrics(out) if "loss" in r]
    assert len(deltas) == 12 and all(0.3 <= d <= 3.0 for d in deltas)
    assert deltas == [draw_delta(0, s, 0.3, 3.0) for s in range(12)]


def _fitted_metric_file(path):
    """A metric checkpoint as perceptual_metric.fit writes one (kind "metric"), random trunk."""
    from perceptual_metric.lpips_model import LPIPS
    from plic.checkpoint import save_checkpoint

    torch.manual_seed(0)
    m = LPIPS("alex", "lin")
    save_checkpoint(path, "metric", "lpips-alex-fitted", m.config(), m.state_dict(),
                    {"labels_sha256": "test"})
    return path


def test_cli_short_run_with_a_fitted_metric_and_a_missing_one(tmp_path, capsys):
    """The demo's call: hific tiny, a few steps on the samples, a metric from --lpips."""
    import perceptual_metric
    from codec.train import main
    from plic.fsio import sha256_file

    metric = _fitted_metric_file(tmp_path / "metric.pt")
    assert perceptual_metric.load(metric).name == "lpips-alex-fitted"
    out = tmp_path / "demo"
    args = ["--preset", "tiny", "--steps", "4", "--data", "samples", "--batch-size", "2",
            "--workers", "0", "--threads", "1", "--val-images", "1", "--val-crop", "64"]
    assert main(args + ["--lpips", str(metric), "--out", str(out)]) == 0
    rows = [r for r in read_metrics(out) if "loss" in r]
    assert [r["stage"] for r in rows] == ["mse", "perceptual", "adversarial", "adversarial"]
    assert all(math.isfinite(r["perceptual"]) and r["perceptual"] > 0 for r in rows[1:])
    ck = load_checkpoint(out / "best.pt", kind="codec")
    assert ck["provenance"]["metric_sha256"] == sha256_file(metric)
    assert ck["provenance"]["val"]["perceptual"] >= 0
    assert ck["provenance"]["train_seconds"] > 0 and ck["provenance"]["processes"] == 1
    capsys.readouterr()
    missing = tmp_path / "nope" / "metric.pt"
    assert main(args + ["--lpips", str(missing), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "perceptual_metric" in err
    assert not (tmp_path / "x").exists()  # nothing written
    # a file that is not a metric checkpoint: a clear error too, not a traceback
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(args + ["--lpips", str(bad), "--out", str(tmp_path / "y")]) == 2
    assert str(bad) in capsys.readouterr().err


def test_init_starts_from_a_checkpoint_and_ship_totals_the_chain(tmp_path):
    from codec.train.ship import ship
    from plic.fsio import sha256_file

    kw = dict(model="bmshj2018-hyperprior", loss="mse", steps=2, val_every=2)
    train(tiny(tmp_path, name="a", **kw), progress=False)
    first = ship(tmp_path / "a", tmp_path / "a.pt")
    # lr 0: Adam moves nothing, so the new run's weights are exactly the ones it started from
    train(tiny(tmp_path, name="b", init=str(tmp_path / "a.pt"), lr=0.0, lr_prior=0.0, **kw),
          progress=False)
    a, b = final_weights(tmp_path / "a"), final_weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    prov = load_checkpoint(tmp_path / "b" / "last.pt", kind="codec")["provenance"]
    assert prov["init_from"]["sha256"] == sha256_file(tmp_path / "a.pt")
    second = ship(tmp_path / "b", tmp_path / "b.pt")
    assert second["total_steps"] == 4 and first["steps"] == second["steps"] == 2
    total = load_checkpoint(tmp_path / "b.pt")["provenance"]["total_train_seconds"]
    assert total == pytest.approx(first["train_seconds"] + second["train_seconds"], abs=0.2)
    with pytest.raises(ValueError, match="model-config"):
        train(tiny(tmp_path, name="c", init=str(tmp_path / "a.pt"), model_config="M=12", **kw),
              progress=False)
    with pytest.raises(ValueError, match="bmshj2018-hyperprior"):
        train(tiny(tmp_path, name="d", init=str(tmp_path / "a.pt"), loss="mse",
                   model="bmshj2018-factorized", steps=1), progress=False)
    with pytest.raises(FileNotFoundError):
        train(tiny(tmp_path, name="e", init=str(tmp_path / "none.pt"), **kw), progress=False)


def test_max_minutes_stops_resumably_and_ships_each_checkpoint(tmp_path):
    """A session-sized slice: --max-minutes stops after the step it runs out in, with the state
    written (the resumed run equals the uninterrupted one) and the shipped file kept current."""
    from codec.train.ship import ship

    kw = dict(steps=4, perceptual_start=0.25, adversarial_start=0.5, val_every=4)
    train(tiny(tmp_path, name="straight", **kw), metric=ToyMetric(), progress=False)
    shipped = tmp_path / "shipped.pt"
    res = train(tiny(tmp_path, name="slices", max_minutes=1e-9, ship=str(shipped), **kw),
                metric=ToyMetric(), progress=False)
    assert res["time_up"] and res["step"] == 1
    prov = load_checkpoint(shipped, kind="codec")["provenance"]
    assert prov["steps"] == 1 and prov["run_dir"] == "slices"  # relative to its parent
    assert "--ship" not in prov["command"] and "--max-minutes" not in prov["command"]
    assert load_training_state(tmp_path / "slices" / "train_state.pt")["step"] == 1
    # the next slices may change --max-minutes and --ship; the last one runs to the end
    res = train(tiny(tmp_path, name="slices", max_minutes=1e-9, ship=str(shipped), resume=True,
                     **kw), metric=ToyMetric(), progress=False)
    assert res["step"] == 2 and load_checkpoint(shipped)["provenance"]["steps"] == 2
    res = train(tiny(tmp_path, name="slices", ship=str(shipped), resume=True, **kw),
                metric=ToyMetric(), progress=False)
    assert res["step"] == 4 and not res["time_up"]
    a, b = final_weights(tmp_path / "straight"), final_weights(tmp_path / "slices")
    assert all(torch.equal(a[k], b[k]) for k in a)
    final = load_checkpoint(shipped, kind="codec")
    assert final["provenance"]["steps"] == 4
    assert all(torch.equal(final["state_dict"][k], b[k]) for k in b)
    again = ship(tmp_path / "slices", tmp_path / "again.pt")
    assert again["steps"] == 4


def test_cli_bad_metric_name_and_unknown_track_are_one_line_errors(tmp_path, capsys):
    from codec.train import main

    args = ["--preset", "tiny", "--steps", "1", "--batch-size", "2", "--workers", "0",
            "--threads", "1", "--val-images", "1", "--val-crop", "64"]
    assert main(args + ["--lpips", "alexnet", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'alexnet'" in err and "alex, vgg, squeeze" in err
    assert not (tmp_path / "a").exists()
    with pytest.raises(SystemExit) as e:
        main(args + ["--track", "0.6", "--out", str(tmp_path / "b")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--track" in err and "0.075" in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()


def test_init_from_a_run_directory_brings_its_discriminator(tmp_path):
    kw = dict(steps=2, perceptual_start=0.0, adversarial_start=0.0, val_every=2)
    train(tiny(tmp_path, name="gan", **kw), metric=ToyMetric(), progress=False)
    src = load_training_state(tmp_path / "gan" / "train_state.pt")["disc"]
    # lr 0 everywhere: whatever the fine-tune holds at the end is what it started from
    train(tiny(tmp_path, name="ft", init=str(tmp_path / "gan"), lr=0.0, lr_prior=0.0,
               lr_disc=0.0, **kw), metric=ToyMetric(), progress=False)
    got = load_training_state(tmp_path / "ft" / "train_state.pt")["disc"]
    # weights equal; the spectral norm's power-iteration vectors (_u, _v) move at every call
    assert all(torch.equal(src[k], got[k]) for k in src if not k.endswith(("_u", "_v")))
    prov = load_checkpoint(tmp_path / "ft" / "last.pt", kind="codec")["provenance"]
    assert prov["init_from"]["discriminator_from"].endswith("train_state.pt")
    assert prov["init_from"]["path"].endswith("last.pt")
    a, b = final_weights(tmp_path / "gan"), final_weights(tmp_path / "ft")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="disc-width"):
        train(tiny(tmp_path, name="wide", init=str(tmp_path / "gan"), disc_width=16, **kw),
              metric=ToyMetric(), progress=False)
    with pytest.raises(FileNotFoundError, match="last.pt"):
        train(tiny(tmp_path, name="x", init=str(tmp_path / "ft" / "tb"), **kw),
              metric=ToyMetric(), progress=False)


def test_resume_refuses_a_changed_option_and_fills_in_later_ones():
    from codec.train.rundir import check_resume

    default = {"a": 0, "b": 2}
    check_resume({"a": 1}, {"a": 1, "b": 2}, default, set())   # b came later: it had its default
    with pytest.raises(ValueError, match=r"different configuration: a: 1 -> 3, b: 2 -> 5"):
        check_resume({"a": 1}, {"a": 3, "b": 5}, default, set())
    check_resume({"a": 1}, {"a": 3, "b": 2}, default, {"a"})   # a may change on resume
