"""The command-line tools: init -> compress -> decompress, and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec import api, compress, decompress, init
from codec.image_io import read_image, write_png
from codec.quality import bpp

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def files(tmp_path_factory, sample_images):
    d = tmp_path_factory.mktemp("cli")
    img = np.ascontiguousarray(next(iter(sample_images.values()))[:70, :90])
    write_png(d / "in.png", img)
    assert init.main(["--preset", "tiny", "--out", str(d / "m.pt"), "--seed", "3"]) == 0
    return d, img


def test_init_compress_decompress(files, capsys, monkeypatch, tmp_path):
    d, img = files
    assert compress.main([str(d / "in.png"), str(d / "x.plic"), "--model", str(d / "m.pt"),
                          "--bin-width", "0.5"]) == 0
    out = capsys.readouterr().out
    data = (d / "x.plic").read_bytes()
    assert f"{bpp(len(data), 70, 90):.4f} bpp" in out and "estimate" in out
    model = api.load(d / "m.pt")
    assert data == api.compress(img, model, bin_width=0.5)
    assert decompress.main([str(d / "x.plic"), str(d / "y.png"), "--model", str(d / "m.pt")]) == 0
    assert np.array_equal(read_image(d / "y.png"), api.decompress(data, model))
    # without --model: found next to the stream by its weights hash
    assert decompress.main([str(d / "x.plic"), str(d / "z.png")]) == 0
    assert np.array_equal(read_image(d / "z.png"), read_image(d / "y.png"))
    # ... and not found elsewhere
    monkeypatch.setenv("PLIC_RUNS", str(tmp_path / "runs"))
    (tmp_path / "x.plic").write_bytes(data)
    assert decompress.main([str(tmp_path / "x.plic"), str(tmp_path / "z.png")]) == 2
    assert "pass --model" in capsys.readouterr().err


def test_target_bpp(files, capsys):
    d, _ = files
    assert compress.main([str(d / "in.png"), str(d / "t.plic"), "--model", str(d / "m.pt"),
                          "--target-bpp", "1.0"]) == 0
    assert bpp(len((d / "t.plic").read_bytes()), 70, 90) <= 1.0


def test_errors_are_clear(files, capsys, tmp_path):
    d, _ = files
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert compress.main([str(tmp_path / "bad.png"), str(tmp_path / "o"), "--model",
                          str(d / "m.pt")]) == 2
    assert "bad.png" in capsys.readouterr().err
    assert compress.main([str(d / "in.png"), str(tmp_path / "o"), "--model",
                          str(tmp_path / "nope.pt")]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "junk.plic").write_bytes(b"PLIC\x01garbage")
    assert decompress.main([str(tmp_path / "junk.plic"), str(tmp_path / "o.png"), "--model",
                            str(d / "m.pt")]) == 2
    assert "junk.plic" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()
    with pytest.raises(SystemExit):
        init.main(["--preset", "huge", "--out", str(tmp_path / "m.pt")])
    with pytest.raises(SystemExit):
        compress.main(["a", "b", "--model", "m", "--target-bpp", "1", "--bin-width", "1"])
