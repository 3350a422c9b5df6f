"""The decoder refuses what no encoder writes (issue 16, findings 3, 4 and 8): latent symbols
beyond the format's bound (no 64-bit wraparound, no non-finite image returned as pixels),
non-finite reconstructions, and non-canonical varints (one stream, one byte string)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec import api, bitstream, coding
from codec.bitstream import BitstreamError

from ..forge import forge_symbol, image, shipped_models, tiny_models, varint_variants


@pytest.fixture(scope="module")
def shipped():
    return shipped_models(one_per_architecture=True)


@pytest.fixture(scope="module")
def img():
    return image(48, 64)


def test_the_bound_matches_the_fixed_point_range():
    from codec import varint
    from codec.context.intmath import ACT_BITS, ACT_LIMIT

    assert coding.LATENT_LIMIT == (ACT_LIMIT + 1) >> ACT_BITS
    assert coding.symbol_limit(1.0) == 2**14 and coding.symbol_limit(0.25) == 2**16
    assert coding.SYMBOL_LIMIT == 2**34
    assert len(varint.encode(coding.EscapeReader.MAX_VALUE)) == 5  # the largest escape


# finding 3 (symbols of 2^20 and more) and 4 (+-2^62 and 2^53 wrap to the all-zero image);
# 2^14 + 1 is the first symbol past the bound at bin width 1
EXTREME = [2**14 + 1, -(2**14 + 1), 2**20, 2**30, 2**47, 2**53, 2**62, -(2**62)]


@pytest.mark.parametrize("value", EXTREME)
@pytest.mark.parametrize("kernels", ["1", "0"])
def test_extreme_latent_symbols_are_refused(shipped, img, value, kernels, monkeypatch):
    monkeypatch.setenv("PLIC_KERNELS", kernels)
    for model in shipped.values():
        data = forge_symbol(model, img, value)
        with pytest.raises(BitstreamError, match="outside the format's range|beyond the format"):
            api.decompress(data, model)


def test_symbols_within_the_bound_still_decode(shipped, img):
    """A forged symbol at the bound is a valid stream: it decodes, or (if the synthesis
    transform overflows on it) is refused as non-finite; never garbage pixels."""
    for model in shipped.values():
        for value in (600, -(2**14)):
            data = forge_symbol(model, img, value)
            try:
                out = api.decompress(data, model)
            except BitstreamError as e:
                assert "not finite" in str(e)
                continue
            assert out.shape == img.shape and out.dtype == np.uint8


def test_the_encoder_refuses_latents_outside_the_bound(img):
    model = tiny_models()["hific-tiny"]
    model.g_a.register_forward_hook(lambda mod, inputs, y: y * 1e7)
    with pytest.raises(ValueError, match="outside the format's range"):
        api.compress(img, model)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_reconstruction_is_refused(shipped, img, bad):
    for model in shipped.values():
        data = api.compress(img, model)
        hook = model.g_s.register_forward_hook(
            lambda mod, inputs, x: x.index_fill(3, torch.tensor([5]), bad))
        try:
            with pytest.raises(BitstreamError, match="not finite"):
                api.decompress(data, model)
        finally:
            hook.remove()


def test_non_finite_entropy_parameters_are_refused():
    means = torch.zeros(1, 2, 2, 2)
    scales = torch.ones(1, 2, 2, 2)
    scales[0, 1, 1, 1] = float("nan")
    with pytest.raises(coding.CodingError, match="non-finite"):
        coding.decode_stage(b"", means, scales, 1.0, coding.EscapeReader(b""))


def test_escapes_beyond_the_format_or_overlong_are_refused():
    from codec import varint

    big = coding.EscapeReader.MAX_VALUE
    assert coding.EscapeReader(varint.encode(big)).read(1)[0] == big
    with pytest.raises(coding.CodingError, match="beyond the format"):
        coding.EscapeReader(varint.encode(big + 1)).read(1)
    with pytest.raises(coding.CodingError, match="beyond the format"):
        coding.EscapeReader(b"\xff" * 9 + b"\x01").read(1)  # 2^64 - 1
    with pytest.raises(coding.CodingError, match="not a valid varint"):
        coding.EscapeReader(b"\xff" * 10 + b"\x01").read(1)  # over 10 bytes
    with pytest.raises(coding.CodingError, match="not a valid varint"):
        coding.EscapeReader(b"\x85\x00").read(1)  # 5, non-canonically
    with pytest.raises(coding.CodingError, match="ends early"):
        coding.EscapeReader(b"\x85").read(1)


# ---- finding 8: non-canonical varints -------------------------------------------------------

def test_varints_are_canonical():
    from codec import varint

    for n in (0, 1, 127, 128, 300, 2**35 - 1):
        enc = varint.encode(n)
        assert varint.decode(enc, 0, len(enc), 5) == (n, len(enc))
    for bad in (b"\x80\x00", b"\x81\x00", b"\xff\x80\x00"):
        with pytest.raises(varint.VarintError, match="not canonical"):
            varint.decode(bad, 0, len(bad), 5)


def test_non_canonical_header_varints_are_refused(shipped, img):
    for model in {**shipped, **tiny_models()}.values():
        data = api.compress(img, model)
        variants = varint_variants(data)
        assert len(variants) == 2 * (2 + len(bitstream.unpack(data)[1]))
        for v in variants:
            with pytest.raises(BitstreamError, match="not canonical"):
                api.decompress(v, model)


def test_a_non_canonical_escape_is_refused(shipped, img):
    """A stream with one escape (a symbol of 600), its escape varint padded non-canonically."""
    from codec import varint

    model = shipped["mbt2018-small-bsds500"]
    data = forge_symbol(model, img, 600)
    header, sections = bitstream.unpack(data)
    esc = sections[-1]
    tail = varint.encode(600 - 512)
    assert esc.endswith(tail)
    padded = esc[:-len(tail)] + bytes([tail[0] | 0x80]) + b"\x00"
    forged = bitstream.pack(header, sections[:-1] + [padded])
    assert api.decompress(data, model).shape == img.shape
    with pytest.raises(BitstreamError, match="not a valid varint"):
        api.decompress(forged, model)
