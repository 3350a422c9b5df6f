"""python -m codec.evaluate --cluster local:2: the same metric tables as the local run (a tiny
random-weight checkpoint and JPEG on two small images, LPIPS-Alex; no FID/DISTS to stay fast)."""

from __future__ import annotations

import json

import pytest

from codec.evaluate.report import RESULT_COLUMNS, SUMMARY_COLUMNS
from plic.image_io import write_png
from plic.tables import read_table

pytest.importorskip("distributed")
TIMING = ["encode_s", "decode_s"]  # wall times of the encode: they differ between any two runs


@pytest.fixture(scope="module")
def setup(tmp_path_factory, sample_images):
    d = tmp_path_factory.mktemp("evalc")
    for i, img in enumerate(list(sample_images.values())[:2]):
        write_png(d / "imgs" / f"im{i}.png", img[192:320, 256:448].copy())  # 128 x 192
    from codec import untrained

    assert untrained.main(["--preset", "tiny", "--out", str(d / "tiny.pt")]) == 0
    return d


def _run(d, name, extra=()):
    from codec.evaluate.cli import main

    out = d / name
    argv = ["--model", str(d / "tiny.pt"), "--label", "ours-tiny", "--data", str(d / "imgs"),
            "--target-bpp", "0.5,1.0", "--classic", "jpeg", "--classic-targets", "0.5,1.0",
            "--lpips", "alex", "--no-dists", "--no-fid", "--out", str(out / "eval"),
            "--dist-cache", str(out / "dist"), "--no-progress", *extra]
    assert main(argv) == 0
    return out / "eval"


def test_cluster_tables_equal_local(setup, capsys):
    local = _run(setup, "local")
    capsys.readouterr()
    remote = _run(setup, "cluster", ["--cluster", "local:2"])
    assert "dask: local:2 (2 workers), dashboard: http://" in capsys.readouterr().err
    a = read_table(local / "results.csv", RESULT_COLUMNS, "row_id").drop(columns=TIMING)
    b = read_table(remote / "results.csv", RESULT_COLUMNS, "row_id").drop(columns=TIMING)
    assert len(a) == 8 and set(a.status) == {"ok"} and (a.lpips_alex != "").all()
    assert a.equals(b)
    assert read_table(local / "summary.csv", SUMMARY_COLUMNS).equals(
        read_table(remote / "summary.csv", SUMMARY_COLUMNS))
    for name in ("table.md", "bd_rate.md"):
        assert (local / name).read_bytes() == (remote / name).read_bytes(), name
    ja, jb = (json.loads((p / "results.json").read_text()) for p in (local, remote))
    assert ja["summary"] == jb["summary"]
