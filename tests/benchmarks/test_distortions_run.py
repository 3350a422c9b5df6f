"""benchmarks.distortions_run: per-codec curves from searches + index, the report files, learned
codecs."""

import json

import pandas as pd
import pytest

from benchmarks.distortions_run import codec_curve, main


def test_codec_curve_drops_targets_some_image_misses():
    rows = []
    for ref, bpps in {"a": (None, 0.14, 0.29), "b": (0.07, 0.15, 0.3)}.items():
        for t, b in zip((0.075, 0.15, 0.3), bpps):
            rows.append({"ref_id": ref, "codec": "x", "target_bpp": t,
                         "status": "unreachable" if b is None else "ok", "bpp": b,
                         "psnr": None if b is None else 20 + 10 * b, "ms_ssim": 0.9})
    c = codec_curve(pd.DataFrame(rows), "x")
    assert c["targets"] == [0.15, 0.3] and c["unreached"] == [0.075] and c["images"] == 2
    assert c["bpp"] == pytest.approx([0.145, 0.295])
    assert c["psnr"] == pytest.approx([21.45, 22.95])
    assert codec_curve(pd.DataFrame(rows), "y") is None


def test_bench_report(tmp_path, monkeypatch):
    monkeypatch.setenv("PLIC_RUNS", str(tmp_path))
    empty = tmp_path / "ck"
    empty.mkdir()
    argv = ["--data", "samples", "--limit", "2", "--crop", "64", "--codecs", "jpeg,webp",
            "--targets", "1.5,3", "--jobs", "1", "--checkpoint-dir", str(empty)]
    assert main(argv) == 0
    res = json.loads((tmp_path / "bench" / "distortions.json").read_text())
    md = (tmp_path / "bench" / "distortions.md").read_text()
    assert res["timing"]["images"] == 2 and res["timing"]["wall_s"] > 0
    assert len(res["machine"]["load_before"]) == 3 and "load average" in md
    assert set(res["curves"]) == {"jpeg", "webp"} and "hevc_curve" not in res
    for c in res["curves"].values():
        assert all(b <= t for b, t in zip(c["bpp"], c["targets"]))
        assert c["psnr"] == sorted(c["psnr"])  # more bits, better quality
    assert "| webp | 3.0 |" in md


def test_hevc_qp_sweep_is_monotone(sample_images):
    from benchmarks.distortions_run import hevc_qp_sweep
    from plic.datasets import resolve_data

    recs = resolve_data("samples")[:2]
    sw = hevc_qp_sweep(recs, qps=(30, 40), preset="ultrafast", crop=64, jobs=1, progress=False)
    assert sw["images"] == 2 and sw["qps"] == [30, 40]
    assert sw["bpp"][0] > sw["bpp"][1] > 0 and sw["psnr"][0] > sw["psnr"][1] > 15
