"""Bad bitstreams: each corruption is a clear BitstreamError, never a crash, hang, wrong image."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch

from codec import api, bitstream, models
from codec.bitstream import BitstreamError, Header, pack, unpack

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def setup(sample_images):
    torch.manual_seed(0)
    m = models.build("hific", "tiny").eval()
    img = np.ascontiguousarray(next(iter(sample_images.values()))[:64, :80])
    data = api.compress(img, m, bin_width=0.5)
    return m, img, data, api.decompress(data, m)


def recrc(body: bytes) -> bytes:
    """A stream whose checksum matches its (edited) body: tests the checks behind the CRC."""
    return body + struct.pack("<I", zlib.crc32(body))


def test_header_roundtrip():
    h = Header("hific", b"12345678", 300, 70000 // 2, bitstream.float32(0.3), 0)
    secs = [b"abcd", b"", b"x" * 300]
    assert unpack(pack(h, secs)) == (h, secs)


def test_every_truncation_is_rejected(setup):
    m, _, data, _ = setup
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            api.decompress(data[:n], m)
    with pytest.raises(BitstreamError, match="checksum"):
        api.decompress(data + b"\0", m)


def test_random_corruptions_fuzz(setup):
    m, _, data, _ = setup
    rng = np.random.default_rng(1234)
    for trial in range(300):
        buf = bytearray(data)
        kind = trial % 3
        if kind == 0:      # flip 1-8 random bits
            for pos in rng.integers(0, len(buf) * 8, rng.integers(1, 9)):
                buf[pos // 8] ^= 1 << (pos % 8)
        elif kind == 1:    # overwrite a random run of bytes
            start = int(rng.integers(0, len(buf)))
            n = int(rng.integers(1, 16))
            buf[start:start + n] = rng.integers(0, 256, min(n, len(buf) - start)).astype(
                np.uint8).tobytes()
            if bytes(buf) == data:
                continue
        else:              # drop a random run of bytes
            start = int(rng.integers(0, len(buf)))
            del buf[start:start + int(rng.integers(1, 16))]
        with pytest.raises(BitstreamError):
            api.decompress(bytes(buf), m)


def test_corruption_behind_a_valid_checksum_is_still_caught(setup):
    """Payload garbage with a recomputed CRC: an error or (if it happens to decode) an image of
    the right shape, never a crash or a hang."""
    m, img, data, _ = setup
    header, sections = unpack(data)
    rng = np.random.default_rng(7)
    errors = 0
    for trial in range(24):
        secs = [bytearray(s) for s in sections]
        j = trial % len(secs)
        if not secs[j]:
            secs[j] = bytearray(b"\x05")
        else:
            pos = int(rng.integers(0, len(secs[j]) * 8))
            secs[j][pos // 8] ^= 1 << (pos % 8)
        forged = pack(header, [bytes(s) for s in secs])
        try:
            out = api.decompress(forged, m)
        except BitstreamError:
            errors += 1
            continue
        assert out.shape == img.shape and out.dtype == np.uint8
    assert errors > 0


def test_wrong_magic_and_version(setup):
    m, _, data, _ = setup
    with pytest.raises(BitstreamError, match="magic"):
        api.decompress(b"JUNK" + data[4:], m)
    with pytest.raises(BitstreamError, match="magic"):
        api.decompress(b"\x89PNG\r\n\x1a\n" + bytes(100), m)
    with pytest.raises(BitstreamError, match="version 2"):
        api.decompress(recrc(data[:4] + b"\x02" + data[5:-4]), m)
    with pytest.raises(BitstreamError):
        api.decompress(b"", m)
    with pytest.raises(BitstreamError, match="expected bytes"):
        api.decompress("PLIC", m)


def test_other_models_file(setup):
    m, img, data, _ = setup
    torch.manual_seed(1)
    other_weights = models.build("hific", "tiny").eval()
    with pytest.raises(BitstreamError, match="other weights"):
        api.decompress(data, other_weights)
    other_model = models.build("bmshj2018-hyperprior", "tiny").eval()
    with pytest.raises(BitstreamError, match="made by model 'hific'"):
        api.decompress(data, other_model)
    foreign = api.compress(img, other_model)
    with pytest.raises(BitstreamError, match="bmshj2018-hyperprior"):
        api.decompress(foreign, m)


def test_forged_header_fields(setup):
    m, _, data, _ = setup
    header, sections = unpack(data)
    big = Header(header.model_name, header.weights_hash, 1 << 16, 1 << 16, 1.0, 0)
    with pytest.raises(BitstreamError, match="out of range"):
        api.decompress(pack(big, sections), m)
    bad_order = Header(header.model_name, header.weights_hash, header.height, header.width,
                       header.delta, 99)
    with pytest.raises(BitstreamError, match="coding order"):
        api.decompress(pack(bad_order, sections), m)
    with pytest.raises(BitstreamError, match="sections"):
        api.decompress(pack(header, sections[:-1]), m)
    other_size = Header(header.model_name, header.weights_hash, 200, 200, header.delta, 0)
    with pytest.raises(BitstreamError):
        api.decompress(pack(other_size, sections), m)
    nan_delta = recrc(data[:-4].replace(struct.pack("<f", header.delta),
                                        struct.pack("<f", float("nan")), 1))
    with pytest.raises(BitstreamError, match="bin width"):
        api.decompress(nan_delta, m)


def test_weights_hash_follows_in_place_updates():
    torch.manual_seed(0)
    m = models.build("bmshj2018-factorized", "tiny")
    h0 = bitstream.model_hash(m)
    assert bitstream.model_hash(m) == h0 == bitstream.weights_hash(m.state_dict())
    with torch.no_grad():
        next(m.parameters()).add_(1e-3)  # what an optimiser step does
    assert bitstream.model_hash(m) != h0
    assert bitstream.model_hash(m) == bitstream.weights_hash(m.state_dict())


@pytest.mark.parametrize("name", models.names())
def test_forged_image_size_is_refused_before_decoding(name):
    """The cheapest stream a model makes (flat image, huge bin width) still decodes, and the
    same sections under a header claiming a far larger image are refused up front (no
    gigabytes of symbols decoded from a few bytes), by the stage-length floor when the pixel
    limit is raised out of the way."""
    torch.manual_seed(0)
    m = models.build(name, "tiny").eval()
    flat = np.full((128, 128, 3), 128, np.uint8)
    data = api.compress(flat, m, bin_width=2.0**12)
    assert api.decompress(data, m).shape == flat.shape
    header, sections = unpack(data)
    huge = Header(header.model_name, header.weights_hash, 8192, 8192, header.delta,
                  header.coding_order)
    with pytest.raises(BitstreamError, match="too few for the"):
        api.decompress(pack(huge, sections), m, max_pixels=bitstream.MAX_PIXELS)
