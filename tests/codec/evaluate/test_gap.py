"""codec.evaluate.gap: signed gaps to the reference codec against the chain's training hours."""

from __future__ import annotations

import json

import pytest

from codec.evaluate.gap import gap_rows, main, signed_gap
from plic.checkpoint import save_checkpoint


def _ckpt(path, seconds, steps, init=None):
    prov = {"train_seconds": seconds, "steps": steps}
    if init:
        prov["init_from"] = init
    save_checkpoint(path, "codec", "bmshj2018-hyperprior", {}, {}, prov)
    return str(path)


def _result(methods: dict, ref: dict) -> dict:
    summary = [{"method": "hevc-bpgcfg", "kind": "classic", "target_bpp": t, **m}
               for t, m in ref.items()]
    per_image = []
    for name, (path, rows) in methods.items():
        per_image.append({"method": name, "checkpoint": path})
        summary += [{"method": name, "kind": "ours", "trained_with": "LPIPS-Alex + GAN",
                     "target_bpp": t, **m} for t, m in rows.items()]
    return {"meta": {"command": "test"}, "summary": summary, "per_image": per_image}


def test_signed_gap_is_positive_when_behind():
    assert signed_gap("psnr", 25.0, 28.0) == pytest.approx(3.0)
    assert signed_gap("lpips_vgg", 0.5, 0.4) == pytest.approx(0.1)
    assert signed_gap("fid", 90.0, 100.0) == pytest.approx(-10.0)  # ahead on FID
    with pytest.raises(ValueError):
        signed_gap("bpp", 0.1, 0.2)


def test_rows_take_hours_from_the_whole_chain_and_compare_at_each_target(tmp_path, capsys):
    base = {"train_seconds": 3600.0, "steps": 1000}  # an MSE pre-training the runs continued
    early = _ckpt(tmp_path / "a.pt", 1800.0, 500, init=base)
    late = _ckpt(tmp_path / "b.pt", 5400.0, 1500, init=base)
    ref = {0.15: {"bpp": 0.14, "psnr": 28.0, "lpips_alex": 0.34, "fid": None}}
    res = _result({"early": (early, {0.15: {"bpp": 0.15, "psnr": 24.0, "lpips_alex": 0.40,
                                            "fid": 120.0}}),
                   "late": (late, {0.15: {"bpp": 0.15, "psnr": 24.5, "lpips_alex": 0.30},
                                   0.3: {"bpp": 0.3, "psnr": 26.0}})}, ref)
    rows = gap_rows([res], "hevc-bpgcfg")
    assert [(r["method"], r["hours"], r["steps"]) for r in rows] == [("early", 1.5, 1500),
                                                                     ("late", 2.5, 2500)]
    early_row, late_row = rows
    assert early_row["psnr"] == pytest.approx(4.0) and late_row["psnr"] == pytest.approx(3.5)
    assert late_row["lpips_alex"] == pytest.approx(-0.04)  # ahead
    assert "fid" not in early_row  # the reference has no FID: no gap, not a made-up one
    (tmp_path / "ev").mkdir()
    (tmp_path / "ev" / "results.json").write_text(json.dumps(res))
    assert main([str(tmp_path / "ev"), "--out", str(tmp_path / "gap")]) == 0
    md = (tmp_path / "gap" / "gap.md").read_text()
    assert "| late | LPIPS-Alex + GAN | 2.50 | 2500 | 0.15 | 0.150 (0.140) | +3.5000" in md
    assert (tmp_path / "gap" / "gap.png").stat().st_size > 10_000
    capsys.readouterr()
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "results.json" in capsys.readouterr().err
    assert main([str(tmp_path / "ev"), "--reference", "jpeg"]) == 2
    assert "jpeg" in capsys.readouterr().err
