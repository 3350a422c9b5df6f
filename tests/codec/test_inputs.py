"""Inputs are read exactly or refused (issue 16, finding 5): every Pillow mode has one
documented conversion (plic.image_io), transparency is refused unless dropped on request,
Pillow's bomb limit is a clear error, and rate targets are finite and in range."""

from __future__ import annotations

import io
import math
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from codec import api, compress
from plic.image_io import ImageReadError, read_image

from ..forge import image, tiny_models


def _png(width: int, height: int, depth: int, color: int, rows: bytes) -> bytes:
    """A PNG written chunk by chunk (Pillow cannot write 16-bit RGB or a bomb header)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


@pytest.fixture()
def gray16(tmp_path):
    """A 16-bit grayscale ramp over the whole range (PNG), and what it must read as."""
    v = np.linspace(0, 65535, 40 * 24).round().astype(np.uint16).reshape(24, 40)
    path = tmp_path / "g16.png"
    Image.fromarray(v).save(path)
    return path, v


def test_16_bit_grayscale_keeps_its_high_byte(gray16, tmp_path):
    path, v = gray16
    with Image.open(path) as im:
        assert im.mode == "I;16"
    got = read_image(path)
    assert got.shape == (24, 40, 3) and got.dtype == np.uint8
    want = (v >> 8).astype(np.uint8)
    for c in range(3):
        np.testing.assert_array_equal(got[:, :, c], want)
    assert got.min() == 0 and got.max() == 255  # the old reading was solid white
    # 16-bit RGB (Pillow keeps the high byte) and a 16-bit PGM (mode I) agree with it
    rows = b"".join(b"\0" + np.repeat(r, 3).astype(">u2").tobytes() for r in v)
    (tmp_path / "rgb16.png").write_bytes(_png(40, 24, 16, 2, rows))
    np.testing.assert_array_equal(read_image(tmp_path / "rgb16.png"), got)
    (tmp_path / "g16.pgm").write_bytes(b"P5\n40 24\n65535\n" + v.astype(">u2").tobytes())
    with Image.open(tmp_path / "g16.pgm") as im:
        assert im.mode == "I"
    np.testing.assert_array_equal(read_image(tmp_path / "g16.pgm"), got)


def test_float_and_32_bit_images_are_refused(tmp_path):
    f = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(f, "F").save(tmp_path / "f.tif")
    with pytest.raises(ImageReadError, match="f.tif: unsupported image mode F: float"):
        read_image(tmp_path / "f.tif")
    Image.fromarray((f * 1000).astype(np.int32), "I").save(tmp_path / "i.tif")
    with pytest.raises(ImageReadError, match="mode I: 32-bit integer"):
        read_image(tmp_path / "i.tif")


@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA", "RGBa"])
def test_transparency_is_refused_unless_dropped(tmp_path, mode):
    """Files for the modes PNG stores (RGBA, LA); PA and RGBa through the same conversion."""
    from plic.image_io import to_rgb_uint8

    def read(img, **kw):
        if mode in ("PA", "RGBa"):
            return to_rgb_uint8(img, **kw)
        img.save(tmp_path / "x.png")
        return read_image(tmp_path / "x.png", **kw)

    rgb = image(16, 24)
    a = np.full((16, 24), 255, np.uint8)
    opaque = Image.fromarray(np.dstack([rgb, a]), "RGBA").convert(mode)
    np.testing.assert_array_equal(read(opaque), np.asarray(opaque.convert("RGB")))
    a[3, 5] = 0
    seethrough = Image.fromarray(np.dstack([rgb, a]), "RGBA").convert(mode)
    with pytest.raises(ImageReadError, match="transparent pixels.*alpha='drop'"):
        read(seethrough)
    np.testing.assert_array_equal(read(seethrough, alpha="drop"),
                                  np.asarray(seethrough.convert("RGBA"))[:, :, :3])


def test_a_transparency_key_counts_as_alpha(tmp_path):
    p = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) % 4, "L").convert("P")
    p.save(tmp_path / "key.png", transparency=2)
    with pytest.raises(ImageReadError, match="transparent"):
        read_image(tmp_path / "key.png")
    assert read_image(tmp_path / "key.png", alpha="drop").shape == (8, 8, 3)


@pytest.mark.parametrize("mode", ["1", "L", "P", "CMYK", "YCbCr"])
def test_other_modes_convert_as_pillow_does(tmp_path, mode):
    src = Image.fromarray(image(16, 24)).convert(mode)
    fmt = "JPEG" if mode in ("CMYK", "YCbCr") else "PNG"
    path = tmp_path / f"x.{fmt.lower()}"
    src.save(path, format=fmt)
    with Image.open(path) as im:
        want = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(read_image(path), want)


def test_a_bomb_header_is_one_clear_error(tmp_path):
    """A 60 KB PNG claiming 30000 x 30000 (over Pillow's bomb limit), and one under Pillow's
    limit but over ``max_pixels``: refused from the header, before any pixel is decoded."""
    rows = b"\0" + bytes(30000)
    path = tmp_path / "bomb.png"
    path.write_bytes(_png(30000, 30000, 8, 0, rows * 2))
    with pytest.raises(ImageReadError, match="bomb.png: too large.*exceeds limit"):
        read_image(path)
    with pytest.raises(ImageReadError, match="bomb.png: a 30000x30000 image .*max_pixels"):
        read_image(path, max_pixels=10**6)
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's own check is back in place


@pytest.mark.parametrize("target", [math.nan, math.inf, -math.inf, 1e9, 0.0, -1.0, 64.5])
def test_target_bpp_must_be_finite_and_in_range(target):
    model = tiny_models()["hific-tiny"]
    with pytest.raises(ValueError, match="target_bpp .* out of range"):
        api.encode(image(32, 32), model, target_bpp=target)


@pytest.mark.parametrize("target", ["nan", "inf", "1e9", "0", "-1"])
def test_the_cli_refuses_bad_targets(tmp_path, capsys, target):
    out = tmp_path / "o.plic"
    with pytest.raises(SystemExit) as e:
        compress.main(["in.png", str(out), "--model", "m.pt", "--target-bpp", target])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--target-bpp" in err and target in err
    assert not out.exists()


def test_decode_image_bytes_follows_the_same_table():
    from plic.image_io import decode_image_bytes

    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), np.float32), "F").save(buf, format="TIFF")
    with pytest.raises(ImageReadError, match="image bytes: unsupported image mode F"):
        decode_image_bytes(buf.getvalue())


def test_a_read_only_array_is_coded_without_a_warning(tmp_path):
    """Issue 32: ``np.asarray(Image.open(...))`` is read-only; torch warned about it (the
    warning is an error here) and the array must come out unchanged."""
    import warnings

    model = tiny_models()["hific-tiny"]
    Image.fromarray(image(40, 56)).save(tmp_path / "x.png")
    with Image.open(tmp_path / "x.png") as im:
        ro = np.asarray(im)
    assert not ro.flags.writeable
    before = ro.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = api.compress(ro, model)
        enc = api.Encoder(ro, model)
    assert data == api.compress(before, model) == enc.code(1.0).data
    assert np.array_equal(ro, before)


@pytest.mark.parametrize("value", [2.0**20, float(np.nextafter(2.0**20, 0)), 1048575.99,
                                   2.0**-20, 2.0**-20 * (1 + 1e-12)])
def test_a_bin_width_at_the_ends_is_refused_not_written(value):
    """Issue 32: the range of the bin width is (2^-20, 2^20) as the stream stores it (f32):
    1048575.99 passed the float64 check, was stored as 2^20 and the stream would not decode."""
    model = tiny_models()["hific-tiny"]
    with pytest.raises(ValueError, match=r"bin_width .* out of range \(2\^-20, 2\^20\)"):
        api.compress(image(16, 16), model, bin_width=value)
    data = api.compress(image(16, 16), model, bin_width=1048575.0)
    assert api.decompress(data, model).shape == (16, 16, 3)
