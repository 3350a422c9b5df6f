"""codec.train.rd: RD points through the real bitstream, rate-control check, anchor BD-rates."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from codec import api
from codec.models import build
from codec.train import rd
from plic.image_io import write_png

torch.set_num_threads(1)


def _images(n=2, size=64):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):  # smooth gradients plus noise: compressible, not trivial
        yy, xx = np.mgrid[0:size, 0:size]
        base = np.stack([xx * 3 + i * 20, yy * 2, (xx + yy) * 1.5], -1)
        img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        out.append((f"im{i}", img))
    return out


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build("bmshj2018-hyperprior", "tiny").eval()


def test_measure_curve_and_rate_control(model):
    images = _images()
    m = rd.measure(model, images, [0.5, 4.0], [50.0, 1e-4], progress=False)
    assert len(m["rows"]) == len(images) * 4
    by = {(r["image"], r.get("delta"), r.get("target")): r for r in m["rows"]}
    for img_id, img in images:
        lo, hi = by[(img_id, 0.5, None)], by[(img_id, 4.0, None)]
        assert hi["bpp"] < lo["bpp"]  # a wider bin costs fewer bits
        # the row's numbers are those of the real file
        res = api.encode(img, model, bin_width=0.5)
        assert lo["bpp"] == pytest.approx(res.bpp)
        assert lo["psnr"] == pytest.approx(
            10 * np.log10(255 ** 2 / np.mean((img.astype(float)
                                              - api.decompress(res.data, model)) ** 2)))
        ok, never = by[(img_id, None, 50.0)], by[(img_id, None, 1e-4)]
        assert ok["reached"] and ok["bpp"] <= 50.0 and not never["reached"]
    c0, c1 = m["curve"]
    assert c0["bpp"] == pytest.approx(np.mean([by[(i, 0.5, None)]["bpp"] for i, _ in images]))
    assert c0["bpp_min"] <= c0["bpp"] <= c0["bpp_max"] and c1["bpp"] < c0["bpp"]
    rc = {p["target"]: p for p in m["rate_control"]}
    assert rc[50.0]["reached"] == 2 and rc[1e-4]["reached"] == 0 and np.isnan(rc[1e-4]["bpp"])


def test_bd_rate_against_an_anchor_that_spends_twice_the_bits(tmp_path, monkeypatch):
    curve = [{"bpp": b, "psnr": q, "ms_ssim": s} for b, q, s in
             [(0.1, 26.0, 0.90), (0.2, 28.0, 0.93), (0.4, 30.0, 0.95), (0.8, 32.0, 0.97)]]
    anchor = {"name": "double", "results": {"bpp": [2 * p["bpp"] for p in curve],
                                            "psnr-rgb": [p["psnr"] for p in curve],
                                            "ms-ssim-rgb": [p["ms_ssim"] for p in curve]}}
    (tmp_path / "double.json").write_text(json.dumps(anchor))
    monkeypatch.setenv("PLIC_ANCHORS", str(tmp_path))
    c = rd.compare(curve, "double")
    assert c["bd_rate_psnr"] == pytest.approx(-50.0, abs=1e-6)
    assert c["bd_rate_ms_ssim"] == pytest.approx(-50.0, abs=1e-6)
    assert c["bd_psnr_db"] > 0


def test_cli_writes_tables_and_refuses_bad_input(tmp_path, model, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for img_id, img in _images():
        write_png(folder / f"{img_id}.png", img)
    ckpt = api.save(model, tmp_path / "m.pt", provenance={"note": "test"})
    out = tmp_path / "rd"
    assert rd.main([str(ckpt), "--data", str(folder), "--bin-widths", "1,2", "--out", str(out),
                    "--no-progress"]) == 0
    data = json.loads((out / "rd.json").read_text())
    assert data["meta"]["n_images"] == 2 and [p["delta"] for p in
                                              data["results"][0]["curve"]] == [1.0, 2.0]
    assert "| 1 |" in (out / "rd.md").read_text()
    assert rd.main([str(tmp_path / "missing.pt"), "--data", str(folder), "--out",
                    str(out)]) == 2
    assert "missing.pt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        rd.main([str(ckpt), "--bin-widths", "1,-2"])


def test_ship_adds_the_reproducing_command_and_keeps_the_weights(tmp_path):
    from codec.train import ship
    from codec.train.config import TrainConfig
    from codec.train.loop import train
    from plic.checkpoint import load_checkpoint, machine_paths

    run = tmp_path / "run"
    cfg = TrainConfig(model="bmshj2018-hyperprior", preset="tiny", steps=3, batch_size=1,
                      crop=64, workers=0, threads=1, val_images=1, val_crop=64, out=str(run),
                      delta_range=(0.5, 2.0), model_config="N=6,M=10", lr=2e-3)
    train(cfg, progress=False)
    res = ship.ship(run, tmp_path / "out" / "m.pt", max_mb=5)
    a = load_checkpoint(run / "last.pt", kind="codec")
    b = load_checkpoint(tmp_path / "out" / "m.pt", kind="codec")
    assert a["config"] == b["config"] and all(torch.equal(a["state_dict"][k], b["state_dict"][k])
                                              for k in a["state_dict"])
    cmd = b["provenance"]["command"]
    for part in ("--model bmshj2018-hyperprior", "--preset tiny", "--steps 3",
                 "--delta-range 0.5 2", "--model-config N=6,M=10", "--lr 0.002"):
        assert part in cmd, cmd
    assert "--out" not in cmd and "--resume" not in cmd
    assert b["provenance"]["steps"] == 3 and b["provenance"]["train_seconds"] > 0
    assert b["provenance"]["git_commit"] == a["provenance"]["git_commit"]
    # tmp_path is a machine's folder: the shipped provenance names the run relative to its parent
    assert machine_paths(b["provenance"]) == [] and machine_paths(a["provenance"])
    assert b["provenance"]["run_dir"] == "run" and b["provenance"]["train_config"]["out"] == "run"
    assert res["size_mb"] < 5
    # the command reproduces the configuration it came from
    from codec.train.cli import build_parser

    args = build_parser().parse_args(cmd.split()[3:] + ["--out", str(run)])
    again = TrainConfig(**vars(args)).resolved()
    assert again.to_dict() == TrainConfig.from_dict(a["provenance"]["train_config"]).to_dict()
    with pytest.raises(ValueError, match="max-mb"):
        ship.ship(run, tmp_path / "big.pt", max_mb=1e-4)
    assert not (tmp_path / "big.pt").exists()
    (tmp_path / "big.pt").write_bytes(b"kept")
    with pytest.raises(ValueError, match="max-mb"):
        ship.ship(run, tmp_path / "big.pt", max_mb=1e-4)
    assert (tmp_path / "big.pt").read_bytes() == b"kept"   # a refused ship leaves dest as it was
    assert not list(tmp_path.glob("*.shipping"))
    assert ship.main([str(tmp_path / "nowhere"), str(tmp_path / "x.pt")]) == 2
