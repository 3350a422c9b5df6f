"""``python -m codec.evaluate`` end to end on two small images: a random-weight tiny codec and
JPEG at one matched target; every output exists, bpp is the files' size, reruns encode nothing."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

from plic.image_io import read_image, write_png
from plic.quality import psnr
from plic.tables import read_table, resolve_path

TARGET = 0.6
HAVE_DISTS = importlib.util.find_spec("DISTS_pytorch") is not None


@pytest.fixture(scope="module")
def setup(tmp_path_factory, sample_images):
    d = tmp_path_factory.mktemp("eval")
    imgs = d / "imgs"
    for i, img in enumerate(list(sample_images.values())[:2]):
        write_png(imgs / f"im{i}.png", img[128:384, :512].copy())  # 256x512: 2 FID patches
    from codec import untrained

    assert untrained.main(["--preset", "tiny", "--out", str(d / "tiny.pt")]) == 0
    return d


def _argv(d):
    return ["--model", str(d / "tiny.pt"), "--label", "ours-tiny", "--data", str(d / "imgs"),
            "--target-bpp", str(TARGET), "--classic", "jpeg", "--classic-targets", str(TARGET),
            "--lpips", "alex", "--fid-plain-grid", "--out", str(d / "out"),
            "--dist-cache", str(d / "dist"), "--no-progress"]


@pytest.fixture(scope="module")
def evaluated(setup):
    from codec.evaluate.cli import main

    assert main(_argv(setup)) == 0
    return setup / "out"


def test_outputs_exist(evaluated):
    for name in ("results.csv", "summary.csv", "results.json", "table.md", "bd_rate.md",
                 "rd_psnr.png", "rd_ms_ssim.png", "rd_lpips.png", "report.html"):
        assert (evaluated / name).is_file(), name
    html = (evaluated / "report.html").read_text()
    assert "ours-tiny" in html and "jpeg" in html and "crops/" in html


def test_bpp_from_files_at_or_under_target_and_psnr_recomputed(evaluated):
    from codec.evaluate.report import RESULT_COLUMNS

    table = evaluated / "results.csv"
    df = read_table(table, RESULT_COLUMNS, "row_id")
    assert set(df.method) == {"ours-tiny", "jpeg"} and len(df) == 4
    assert set(df.status) == {"ok"}
    for _, r in df.iterrows():
        stream = resolve_path(r.bitstream_path, table)
        dec = read_image(resolve_path(r.decoded_path, table))
        ref = read_image(resolve_path(r.ref_path, table))
        assert ref.shape == dec.shape == (256, 512, 3)
        assert float(r.bpp) == pytest.approx(8 * os.path.getsize(stream) / (256 * 512))
        assert float(r.bpp) <= TARGET
        assert float(r.psnr) == pytest.approx(psnr(ref, dec), abs=1e-9)
        assert 0 <= float(r.lpips_alex) < 2
        if HAVE_DISTS:
            assert 0 < float(r.dists) < 1


def test_summary_means_and_fid_patch_count(evaluated):
    doc = json.loads((evaluated / "results.json").read_text())
    per = doc["per_image"]
    for s in doc["summary"]:
        rows = [r for r in per if r["method"] == s["method"]]
        assert s["bpp"] == pytest.approx(np.mean([r["bpp"] for r in rows]))
        assert s["psnr"] == pytest.approx(np.mean([r["psnr"] for r in rows]))
        assert s["fid_patches"] == 4 and s["fid"] is not None and s["kid"] is not None
    jpeg = next(s for s in doc["summary"] if s["method"] == "jpeg")
    ours = next(s for s in doc["summary"] if s["method"] == "ours-tiny")
    assert jpeg["psnr"] > ours["psnr"]  # random weights lose to JPEG; the numbers must say so
    table = (evaluated / "table.md").read_text()
    assert "FID (4 patches)" in table and "**ours-tiny**" in table
    assert "untrained (random init)" in table and "DISTS" in table


def test_rerun_reuses_every_encode(evaluated, setup, monkeypatch):
    from codec import api
    from codec.evaluate.cli import main

    def boom(*a, **k):
        raise AssertionError("a rerun must not encode again")

    monkeypatch.setattr(api, "encode", boom)
    before = (evaluated / "results.csv").read_text()
    assert main(_argv(setup)) == 0
    assert (evaluated / "results.csv").read_text() == before


def test_bad_arguments_are_clear(setup, capsys):
    from codec.evaluate.cli import main

    assert main(["--classic", "none", "--data", str(setup / "imgs")]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err
    assert main(["--model", str(setup / "missing.pt"), "--target-bpp", "0.3"]) == 2
