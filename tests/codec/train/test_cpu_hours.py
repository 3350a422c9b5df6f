"""codec.train.cpu_hours: a checkpoint's curve against HEVC's on the same images, per CPU hour."""

import json

import pytest

from codec.train import cpu_hours
from plic.checkpoint import save_checkpoint


def test_mean_curve_keeps_only_points_every_image_has():
    rows = [{"image": "a", "t": 1, "bpp": 0.1, "psnr": 20}, {"image": "b", "t": 1, "bpp": 0.3,
                                                             "psnr": 22},
            {"image": "a", "t": 2, "bpp": 0.2, "psnr": 24}]  # b misses t=2
    assert cpu_hours.mean_curve(rows, "t", {"a", "b"}) == ([pytest.approx(0.2)],
                                                          [pytest.approx(21.0)])
    assert cpu_hours.mean_curve(rows, "t", {"a"}) == ([0.1, 0.2], [20.0, 24.0])


def test_a_curve_one_db_below_hevc_at_equal_rates(tmp_path):
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, "codec", "hific", {}, {}, {"step": 300, "init_from": {"steps": 200}})
    hevc, rows = [], []
    for image, shift in (("k1", 0.0), ("k2", 0.02)):
        for i, t in enumerate((0.1, 0.2, 0.4)):
            hevc.append({"image": image, "target": t, "bpp": t + shift, "psnr": 28 + 2 * i})
            rows.append({"image": image, "bin_width": 4 / 2 ** i, "bpp": t + shift,
                         "psnr": 27 + 2 * i})
    rows.append({"image": "k3", "bin_width": 1, "bpp": 0.5, "psnr": 40})  # HEVC lacks k3
    rd = tmp_path / "rd.json"
    rd.write_text(json.dumps({"results": [{"checkpoint": str(ckpt), "rows": rows}]}))
    (r,) = cpu_hours.measure([rd], hevc, {"hific": 0.72})
    assert r["steps"] == 500 and r["cpu_hours"] == pytest.approx(500 * 0.72 / 3600)
    assert r["images"] == 2
    assert r["bd_psnr"] == pytest.approx(-1.0)
    assert r["bd_rate_psnr"] > 0  # behind: more bits for the same PSNR
    assert "| 500 |" in cpu_hours.table([r])


def test_a_bad_cpu_per_step_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        cpu_hours.main(["x.json", "--hevc", "i.csv", "--cpu-per-step", "hific"])
    assert e.value.code == 2 and "MODEL=SECONDS" in capsys.readouterr().err
