"""The command-line tools: init -> compress -> decompress, and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec import api, compress, decompress, untrained
from plic.image_io import read_image, write_png
from plic.quality import bpp

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def files(tmp_path_factory, sample_images):
    d = tmp_path_factory.mktemp("cli")
    img = np.ascontiguousarray(next(iter(sample_images.values()))[:70, :90])
    write_png(d / "in.png", img)
    assert untrained.main(["--preset", "tiny", "--out", str(d / "m.pt"), "--seed", "3"]) == 0
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
        untrained.main(["--preset", "huge", "--out", str(tmp_path / "m.pt")])
    with pytest.raises(SystemExit):
        compress.main(["a", "b", "--model", "m", "--target-bpp", "1", "--bin-width", "1"])


# ---- issue 16, finding 6: one line on stderr, exit status 2, nothing written ----------------

def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _listing(folder):
    return sorted(str(p) for p in folder.rglob("*"))


def test_unwritable_outputs_are_refused_in_one_line(files, capsys, tmp_path):
    d, _ = files
    assert compress.main([str(d / "in.png"), str(d / "s.plic"), "--model", str(d / "m.pt")]) == 0
    capsys.readouterr()
    (tmp_path / "f.txt").write_text("keep")
    ro = tmp_path / "ro.out"
    ro.write_bytes(b"keep")
    ro.chmod(0o444)
    before = _listing(tmp_path)
    outputs = {"is a folder": tmp_path, "is not a folder": tmp_path / "f.txt" / "o",
               "is read-only": ro, "cannot write": "/proc/plic-no-such-dir/o"}
    for why, out in outputs.items():
        assert compress.main([str(d / "in.png"), str(out), "--model", str(d / "m.pt")]) == 2
        assert why in _one_line(capsys)
        assert decompress.main([str(d / "s.plic"), str(out), "--model", str(d / "m.pt")]) == 2
        assert why in _one_line(capsys)
    assert _listing(tmp_path) == before and ro.read_bytes() == b"keep"
    assert compress.main([str(d / "in.png"), str(d / "in.png"), "--model", str(d / "m.pt")]) == 2
    assert "is the input file" in _one_line(capsys)


def test_a_missing_output_folder_is_created_only_on_success(files, capsys, tmp_path):
    d, img = files
    out = tmp_path / "new" / "deeper" / "x.plic"
    (tmp_path / "junk.plic").write_bytes(b"PLIC\x01garbage")
    assert decompress.main([str(tmp_path / "junk.plic"), str(tmp_path / "new" / "y.png"),
                            "--model", str(d / "m.pt")]) == 2
    _one_line(capsys)
    assert not (tmp_path / "new").exists()
    assert compress.main([str(d / "in.png"), str(out), "--model", str(d / "m.pt")]) == 0
    assert out.is_file()


def test_a_model_that_is_not_a_checkpoint_is_one_line(files, capsys, tmp_path):
    d, _ = files
    assert compress.main([str(d / "in.png"), str(tmp_path / "o"), "--model",
                          str(d / "in.png")]) == 2
    assert "not a loadable checkpoint" in _one_line(capsys)
    assert compress.main([str(d / "in.png"), str(d / "s2.plic"), "--model",
                          str(d / "m.pt")]) == 0
    capsys.readouterr()
    assert decompress.main([str(d / "s2.plic"), str(tmp_path / "o.png"), "--model",
                            str(d / "in.png")]) == 2
    assert "not a loadable checkpoint" in _one_line(capsys)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("argv", [["--threads", "-1"], ["--threads", "x"], ["--max-pixels", "0"],
                                  ["--bin-width", "nan"], ["--bin-width", "0"],
                                  ["--device", "nonsense"], ["--alpha", "keep"]])
def test_bad_numbers_and_choices_are_usage_errors(files, capsys, tmp_path, argv):
    d, _ = files
    with pytest.raises(SystemExit) as e:
        compress.main([str(d / "in.png"), str(tmp_path / "o"), "--model", str(d / "m.pt"), *argv])
    assert e.value.code == 2
    assert argv[0] in _one_line(capsys)
    assert not list(tmp_path.iterdir())


def test_bomb_input_and_pixel_limits_are_one_line(files, capsys, tmp_path):
    from .test_inputs import _png

    d, img = files
    (tmp_path / "bomb.png").write_bytes(_png(30000, 30000, 8, 0, (b"\0" + bytes(30000)) * 2))
    assert compress.main([str(tmp_path / "bomb.png"), str(tmp_path / "o"), "--model",
                          str(d / "m.pt")]) == 2
    assert "bomb.png" in _one_line(capsys)
    from codec.limits import computed_pixels

    n = computed_pixels(api.load(d / "m.pt"), *img.shape[:2])  # padded to the stride (issue 32)
    assert compress.main([str(d / "in.png"), str(tmp_path / "o"), "--model", str(d / "m.pt"),
                          "--max-pixels", str(n - 1)]) == 2
    assert "--max-pixels" in _one_line(capsys)
    assert compress.main([str(d / "in.png"), str(d / "lim.plic"), "--model", str(d / "m.pt"),
                          "--max-pixels", str(n)]) == 0
    capsys.readouterr()
    assert decompress.main([str(d / "lim.plic"), str(tmp_path / "o.png"), "--model",
                            str(d / "m.pt"), "--max-pixels", str(n - 1)]) == 2
    assert "--max-pixels" in _one_line(capsys)
    assert not list(tmp_path.iterdir()) or _listing(tmp_path) == [str(tmp_path / "bomb.png")]


def test_out_of_memory_is_one_line(files, capsys, tmp_path, monkeypatch):
    d, _ = files
    assert compress.main([str(d / "in.png"), str(d / "m.plic"), "--model", str(d / "m.pt")]) == 0
    capsys.readouterr()
    real_load = api.load

    def load_short_of_memory(*args, **kw):
        model = real_load(*args, **kw)
        model.g_s.register_forward_hook(lambda *a: torch.empty(2**62, dtype=torch.uint8))
        return model

    monkeypatch.setattr(api, "load", load_short_of_memory)
    assert decompress.main([str(d / "m.plic"), str(tmp_path / "o.png"), "--model",
                            str(d / "m.pt")]) == 2
    err = _one_line(capsys)
    assert "out of memory" in err and "corrupt" not in err
    assert not list(tmp_path.iterdir())


# ---- issue 32: the bin width's range, and untrusted streams ---------------------------------

@pytest.mark.parametrize("text", ["1048576", "1048575.99", "9.5367431640625e-07", "1e300",
                                  "0.5", "1048575", "1e-6"])
def test_the_bin_width_range_is_the_apis(files, capsys, tmp_path, text):
    """The command accepts a --bin-width exactly when the API does, and says the API's range."""
    d, _ = files
    try:
        api.check_bin_width(float(text))
        ok = True
    except ValueError:
        ok = False
    out = tmp_path / "o.plic"
    argv = [str(d / "in.png"), str(out), "--model", str(d / "m.pt"), "--bin-width", text]
    if ok:
        assert compress.main(argv) == 0
        assert out.is_file()
        return
    with pytest.raises(SystemExit) as e:
        compress.main(argv)
    assert e.value.code == 2
    err = _one_line(capsys)
    assert "--bin-width" in err and "(2^-20, 2^20)" in err and "1.04858e+06" not in err
    assert not out.exists()


def test_untrusted_streams_on_the_command_line(files, capsys, tmp_path):
    """--untrusted refuses a cheap stream of a large image (one line, exit 2, no file), which
    decodes without it; --max-pixels-per-byte sets the bound."""
    from codec import limits

    d, _ = files
    model = api.load(d / "m.pt")
    data = api.compress(np.full((64, 2048, 3), 128, np.uint8), model, bin_width=2.0**19)
    (d / "flat.plic").write_bytes(data)
    work = limits.decode_work(model, 64, 2048, model.config.get("coding_order", "parallel"))
    assert work > 100 * len(data)  # an untrained model's flat stream: 100 stands for the policy
    args = [str(d / "flat.plic"), str(tmp_path / "o.png"), "--model", str(d / "m.pt")]
    assert decompress.main([*args, "--untrusted", "--max-pixels-per-byte", "100"]) == 2
    err = _one_line(capsys)
    assert "--max-pixels-per-byte" in err and "flat.plic" in err and "corrupt" not in err
    assert decompress.main([*args, "--max-pixels-per-byte", str(work // len(data) - 1)]) == 2
    _one_line(capsys)
    assert not list(tmp_path.iterdir())
    assert decompress.main([*args, "--untrusted", "--max-pixels-per-byte",
                            str(-(-work // len(data)))]) == 0
    assert read_image(tmp_path / "o.png").shape == (64, 2048, 3)
    with pytest.raises(SystemExit):
        decompress.main([*args, "--max-pixels-per-byte", "0"])
    assert "--max-pixels-per-byte" in _one_line(capsys)
