"""hevc-bpgcfg-pd as a distortions codec: rows whose bpp counts the container, PNGs equal to
codec.decompress of the stored stream, the same targets as hevc-bpgcfg; codec.evaluate knows it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from codec import postdecode as pd
from plic.image_io import read_image, write_png
from plic.tables import read_table

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def _images(folder, n=2):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        yy, xx = np.mgrid[0:48, 0:64]
        img = np.stack([xx * 4 + 30 * i, yy * 5, (xx + yy) * 2], -1) % 256
        write_png(folder / f"im{i}.png",
                  np.clip(img + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8))


def test_distortions_rows_and_decodes(tmp_path, capsys):
    from distortions.__main__ import main
    from distortions.schema import INDEX_COLUMNS

    _images(tmp_path / "imgs")
    torch.manual_seed(0)
    m = pd.build({"channels": 8, "blocks": 1})
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    ckpt = pd.save(m, tmp_path / "pd.pt")
    out = tmp_path / "dist"
    assert main(["--data", str(tmp_path / "imgs"), "--out", str(out), "--codecs",
                 "hevc-bpgcfg,hevc-bpgcfg-pd", "--targets", "1.5,3", "--x265-preset",
                 "ultrafast", "--postdecode-checkpoint", str(ckpt), "--jobs", "1",
                 "--checkpoint-dir", str(tmp_path / "none"), "--no-progress",
                 "--hevc-cache", str(tmp_path / "hevc")]) == 0
    cached = {f.read_bytes() for f in (tmp_path / "hevc").rglob("*.hevc")}
    rows = read_table(out / "index.csv", INDEX_COLUMNS).to_dict("records")
    pd_rows = [r for r in rows if r["codec"] == "hevc-bpgcfg-pd"]
    plain = {(r["ref_id"], r["target_bpp"]): r for r in rows if r["codec"] == "hevc-bpgcfg"}
    assert len(pd_rows) >= 2 and plain
    same_qp = 0
    for r in pd_rows:
        data = (out / r["bitstream_path"]).read_bytes()
        assert data[:4] == pd.MAGIC
        assert float(r["bpp"]) == pytest.approx(8 * len(data) / (48 * 64), abs=1e-4)
        assert float(r["bpp"]) <= float(r["target_bpp"])
        assert np.array_equal(read_image(out / r["path"]), pd.decompress(data, m))
        assert "pd-ckpt-" in r["codec_version"]
        assert pd.container.unpack(data)[1] in cached  # coded once, for both codecs
        twin = plain.get((r["ref_id"], r["target_bpp"]))
        if twin is not None and twin["param"] == r["param"]:  # same QP: the very HEVC bytes
            hevc_bytes = (out / twin["bitstream_path"]).read_bytes()
            assert hevc_bytes in cached
            assert pd.container.unpack(data)[1] == hevc_bytes
            same_qp += 1
    assert same_qp >= 1
    # the stored stream through the command line decoder: the very PNG distortions wrote
    from codec.decompress import main as decompress_main

    r = pd_rows[0]
    assert decompress_main([str(out / r["bitstream_path"]), str(tmp_path / "cli.png"),
                            "--model", str(ckpt)]) == 0
    assert np.array_equal(read_image(tmp_path / "cli.png"), read_image(out / r["path"]))


def test_missing_checkpoint_is_reported(tmp_path):
    from distortions.backends import BackendOptions, BackendUnavailable, make_backend

    b = make_backend("hevc-bpgcfg-pd", BackendOptions(postdecode=str(tmp_path / "no.pt")))
    with pytest.raises(BackendUnavailable, match="python -m codec.train.postdecode"):
        b.check_available()


def test_codec_evaluate_accepts_it_beside_hevc():
    from codec.evaluate.cli import _classic_codecs

    codecs, _ = _classic_codecs(("hevc-bpgcfg", "hevc-bpgcfg-pd"), None, "slow")
    assert codecs == ("hevc-bpgcfg", "hevc-bpgcfg-pd")


def test_a_postdecoder_in_checkpoints_is_not_a_learned_codec(tmp_path):
    from distortions.checkpoints import choose_learned

    pd.save(pd.build({"channels": 8, "blocks": 1}), tmp_path / "hevc-bpgcfg-pd.pt")
    choice = choose_learned(None, tmp_path)
    assert choice.codecs == {}
    assert any("learned stage of hevc-bpgcfg-pd" in line for line in choice.skipped)


def test_it_joins_the_default_codecs_when_its_checkpoint_is_in_the_folder(tmp_path, capsys):
    from distortions.__main__ import main
    from distortions.schema import INDEX_COLUMNS

    _images(tmp_path / "imgs", n=1)
    (tmp_path / "ck").mkdir()
    pd.save(pd.build({"channels": 8, "blocks": 1}), tmp_path / "ck" / "hevc-bpgcfg-pd.pt")
    out = tmp_path / "dist"
    assert main(["--data", str(tmp_path / "imgs"), "--out", str(out), "--targets", "3",
                 "--x265-preset", "ultrafast", "--jobs", "1", "--checkpoint-dir",
                 str(tmp_path / "ck"), "--no-progress"]) == 0
    codecs = set(read_table(out / "index.csv", INDEX_COLUMNS)["codec"])
    assert {"hevc-bpgcfg", "hevc-bpgcfg-pd"} <= codecs
    assert not any(c.startswith("learned") for c in codecs)
