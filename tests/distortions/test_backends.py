"""Each codec backend round-trips a sample crop, spends more bits for more quality, and reports
a missing binary with the fix."""

import numpy as np
import pytest

from distortions.backends import (
    BackendOptions,
    BackendUnavailable,
    HevcBpgcfgBackend,
    make_backend,
)
from plic.image_io import center_crop
from plic.quality import bpp, psnr

FAST = BackendOptions(x265_preset="veryfast")
# first bytes of each format's file
MAGIC = {"jpeg": b"\xff\xd8\xff", "jpeg444": b"\xff\xd8\xff", "webp": b"RIFF",
         "jxl": b"\xff\x0a", "hevc-bpgcfg": b"\x00\x00\x00\x01"}


@pytest.fixture(scope="module")
def crop(sample_images):
    return center_crop(sample_images["kodim23"], 128).copy()


@pytest.mark.parametrize("name", ["jpeg", "jpeg444", "webp", "avif", "jxl", "hevc-bpgcfg"])
def test_round_trip_and_rate_direction(name, crop):
    b = make_backend(name, FAST)
    b.check_available()
    spec = b.param
    # a low-rate and a high-rate parameter, a quarter in from each end of the range
    lo_bits = spec.lo + 0.25 * (spec.hi - spec.lo)
    hi_bits = spec.lo + 0.75 * (spec.hi - spec.lo)
    if spec.more_bits_when == "lower":
        lo_bits, hi_bits = hi_bits, lo_bits
    small, big = b.encode(crop, lo_bits), b.encode(crop, hi_bits)
    dec_small, dec_big = b.decode(small), b.decode(big)
    for dec in (dec_small, dec_big):
        assert dec.dtype == np.uint8 and dec.shape == crop.shape
    assert len(big) > len(small)
    assert psnr(crop, dec_big) > psnr(crop, dec_small) > 20.0
    if name in MAGIC:
        assert big.startswith(MAGIC[name])
    if name == "avif":
        assert big[4:12] == b"ftypavif"
    # decoding is deterministic
    assert np.array_equal(b.decode(big), dec_big)
    assert b.version and name.split("-")[0] in b.name


def test_jpeg444_keeps_more_chroma(crop):
    b420, b444 = make_backend("jpeg"), make_backend("jpeg444")
    d420, d444 = b420.encode(crop, 90), b444.encode(crop, 90)
    assert len(d444) > len(d420)
    assert psnr(crop, b444.decode(d444)) > psnr(crop, b420.decode(d420))
    assert b420.version != b444.version


def test_hevc_version_names_ffmpeg_and_x265():
    v = HevcBpgcfgBackend(preset="veryfast").version
    assert v.startswith("ffmpeg-") and "/x265-" in v and "preset-veryfast" in v
    assert "unknown" not in v
    assert HevcBpgcfgBackend(preset="slow").version != v  # the preset changes the bitstream


def test_hevc_bpgcfg_is_lossless_near_qp0(crop):
    # 4:4:4 full-range BT.601 at QP 0: only colour-conversion rounding remains
    b = HevcBpgcfgBackend(preset="ultrafast")
    dec = b.decode(b.encode(crop, 0))
    assert psnr(crop, dec) > 40.0
    assert bpp(len(b.encode(crop, 51)), 128, 128) < 0.2


def test_missing_ffmpeg_is_reported_with_the_fix(tmp_path, crop):
    b = HevcBpgcfgBackend(ffmpeg=str(tmp_path / "no" / "ffmpeg"))
    with pytest.raises(BackendUnavailable, match="ffmpeg not found.*apt-get install ffmpeg"):
        b.check_available()
    with pytest.raises(BackendUnavailable):
        b.encode(crop, 30)


def test_bpg_backend_skips_cleanly_without_bpgenc(tmp_path, crop):
    b = make_backend("bpg", BackendOptions(bpgenc=str(tmp_path / "bpgenc")))
    with pytest.raises(BackendUnavailable, match="bpgenc.*hevc-bpgcfg"):
        b.check_available()


def test_bpg_round_trip_when_installed(crop):
    import shutil

    if not (shutil.which("bpgenc") and shutil.which("bpgdec")):
        pytest.skip("bpgenc/bpgdec not installed")
    b = make_backend("bpg")
    data = b.encode(crop, 30)
    assert data.startswith(b"BPG\xfb")
    assert psnr(crop, b.decode(data)) > 25.0


def test_unknown_codec_and_learned_without_checkpoint():
    with pytest.raises(ValueError, match="unknown codec"):
        make_backend("jpeg2000")
    with pytest.raises(BackendUnavailable, match="--checkpoint"):
        make_backend("learned")


def test_bad_input_is_rejected(crop):
    with pytest.raises(TypeError):
        make_backend("jpeg").encode(crop.astype(np.float32), 50)
