"""Fuzzing the decoder (issue 16): mutated streams over every shipped checkpoint and a tiny
``hific``. Each mutated stream either decodes to a uint8 image of the size its header claims
or is refused with a ``BitstreamError``; no other exception, no hang, nothing large allocated
(every stream is small, so the stage-length floor and the pixel limit bound the work).

Mutation classes: bit flips, byte substitutions, truncations, extensions, header edits with
and without a recomputed checksum, section splices between streams, random payloads in a
valid frame, forged extreme latent symbols. The default run is bounded (about 100 streams a
model); ``-m slow`` runs 20 times as many.

Broken models too (issue 32): a NaN, an infinity or a value beyond int64 in any weight of the
integer parameter path (hyper decoders, hyper heads, context model) of ``mbt2018`` and a
context ``hific`` is refused with a ``CodingError`` when encoding and a ``BitstreamError``
when decoding, unless the coder never reads that weight."""

from __future__ import annotations

import copy
import dataclasses
import math
import struct

import numpy as np
import pytest
import torch

from codec import api, bitstream, decompress, models
from codec.bitstream import BitstreamError, Header, pack, unpack
from codec.coding import CodingError
from codec.context.intmath import FixedPointError

from ..forge import forge_symbol, image, recrc, shipped_models, tiny_models

EXTREMES = [2**14, 2**14 + 1, 2**20, 2**31, 2**34, 2**47, 2**53, 2**62, 2**63 - 1]


@pytest.fixture(scope="module")
def corpus():
    """model name -> (model, [valid streams])."""
    out = {}
    for name, model in {**shipped_models(), **tiny_models()}.items():
        streams = [api.compress(image(48, 64, 0), model, bin_width=1.0),
                   api.compress(image(33, 70, 1), model, bin_width=0.4),
                   api.compress(image(64, 40, 2), model, bin_width=3.0)]
        out[name] = (model, streams)
    return out


def _header_edit(rng, data: bytes) -> bytes:
    header, sections = unpack(data)
    field = rng.integers(0, 6)
    h, w, delta, order = header.height, header.width, header.delta, header.coding_order
    name = header.model_name
    if field == 0:
        h = int(rng.choice([1, 2, h + 1, h * 8, 4096, 16384, 65536]))
    elif field == 1:
        w = int(rng.choice([1, w - 1, w * 64, 16384, 65536]))
    elif field == 2:
        delta = float(np.float32(rng.choice([1e-30, 2.0**-19, 0.001, 7.0, 2.0**19, 1e30])))
    elif field == 3:
        order = int(rng.integers(0, 256))
    elif field == 4:
        name = rng.choice(["hific", "mbt2018", "bmshj2018-hyperprior", "x" * 255])
    else:
        if rng.random() < 0.5 and len(sections) > 1:
            sections = sections[:-1]
        else:
            sections = sections + [b""]
    try:
        return pack(Header(str(name), header.weights_hash, h, w, delta, order), sections)
    except (ValueError, struct.error):
        return data[:-1]


def mutate(rng, data: bytes, streams: list[bytes], model) -> bytes:
    buf = bytearray(data)
    kind = int(rng.integers(0, 9))
    if kind == 0:        # bit flips
        for pos in rng.integers(0, len(buf) * 8, rng.integers(1, 9)):
            buf[pos // 8] ^= 1 << (pos % 8)
    elif kind == 1:      # byte substitutions
        for pos in rng.integers(0, len(buf), rng.integers(1, 5)):
            buf[pos] = int(rng.integers(0, 256))
    elif kind == 2:      # truncation
        del buf[int(rng.integers(0, len(buf))):]
    elif kind == 3:      # extension
        buf += rng.bytes(int(rng.integers(1, 64)))
    elif kind == 4:      # header edit, checksum left as it was
        edited = _header_edit(rng, data)
        buf = bytearray(edited[:-4] + data[-4:])
    elif kind == 5:      # header edit with a recomputed checksum
        buf = bytearray(_header_edit(rng, data))
    elif kind == 6:      # section splice: one section from another stream of any model
        header, sections = unpack(data)
        other = unpack(streams[int(rng.integers(0, len(streams)))])[1]
        j = int(rng.integers(0, len(sections)))
        sections[j] = other[min(j, len(other) - 1)]
        buf = bytearray(pack(header, sections))
    elif kind == 7:      # random payloads in a valid frame (and a recomputed checksum)
        header, sections = unpack(data)
        sections = [rng.bytes(len(s)) for s in sections]
        buf = bytearray(pack(header, sections))
        if rng.random() < 0.3:
            buf = bytearray(recrc(bytes(buf[:-4]) + rng.bytes(int(rng.integers(4, 40)))))
    else:                # forged extreme latent symbol
        value = int(rng.choice(EXTREMES)) * int(rng.choice([-1, 1]))
        buf = bytearray(forge_symbol(model, image(48, 64, 0), value))
    return bytes(buf)


def check(model, stream: bytes) -> str:
    try:
        out = api.decode(stream, model)
    except BitstreamError:
        return "refused"
    header, _ = unpack(stream)
    assert out.image.dtype == np.uint8
    assert out.image.shape == (header.height, header.width, 3)
    return "decoded"


def run_fuzz(corpus, per_model: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    everything = [s for _, streams in corpus.values() for s in streams]
    counts = {}
    old = torch.get_num_threads()
    for name, (model, streams) in corpus.items():
        for i in range(per_model):
            data = streams[i % len(streams)]
            stream = mutate(rng, data, everything, model)
            if stream == data:
                continue
            outcome = check(model, stream)
            counts[outcome] = counts.get(outcome, 0) + 1
        assert torch.get_num_threads() == old, name
    return counts


def test_fuzz_default(corpus):
    counts = run_fuzz(corpus, per_model=100, seed=16)
    assert counts.get("refused", 0) > 250


@pytest.mark.slow
def test_fuzz_long(corpus):
    counts = run_fuzz(corpus, per_model=2000, seed=1616)
    assert counts.get("refused", 0) > 5000


def test_fuzz_through_the_cli(corpus, tmp_path, capsys):
    """Mutated streams through ``python -m codec.decompress``: exit 0 with a PNG, or exit 2
    with one line on stderr and no file."""
    rng = np.random.default_rng(7)
    model, streams = next(iter(corpus.values()))
    ckpt = api.save(model, tmp_path / "m.pt")
    for i in range(12):
        stream = mutate(rng, streams[i % len(streams)], streams, model)
        (tmp_path / "s.plic").write_bytes(stream)
        out = tmp_path / f"o{i}.png"
        rc = decompress.main([str(tmp_path / "s.plic"), str(out), "--model", str(ckpt)])
        cap = capsys.readouterr()
        if rc == 0:
            assert out.is_file()
        else:
            assert rc == 2 and cap.err.count("\n") == 1 and not out.exists()


POISONS = [math.nan, math.inf, -math.inf, 1e30]


def integer_path_models() -> dict:
    """Tiny models whose entropy parameters come from the integer path (codec.context)."""
    torch.manual_seed(0)
    return {"mbt2018-tiny": models.build("mbt2018", "tiny").eval(),
            "hific-tiny-context": models.build("hific", "tiny", context=True,
                                               coding_order="wavefront").eval()}


def test_fuzz_non_finite_weights_on_the_integer_path():
    """Issue 32, finding 1: one weight of the parameter path made NaN, +-inf or 1e30 (beyond
    int64 once scaled), each tensor in turn. Encoding either raises a ``CodingError`` or
    writes exactly the clean model's sections (the coder never reads that weight: a masked
    tap of the context convolution); the clean stream, under the broken model's hash, and
    mutations of it are refused with a ``BitstreamError`` or decode as the clean model does.
    Before the fix, NaN became INT64_MIN and both ends "succeeded" with other parameters."""
    rng = np.random.default_rng(32)
    img = image(48, 64, 0)
    for name, clean in integer_path_models().items():
        ref = api.compress(img, clean, bin_width=0.5)
        ref_header, ref_sections = unpack(ref)
        ref_image = api.decompress(ref, clean)
        keys = [k for k, _ in clean.named_parameters() if k.startswith(("h_s.", "heads.",
                                                                          "context."))]
        refused = 0
        for key in keys:
            model = copy.deepcopy(clean)
            param = dict(model.named_parameters())[key]
            # GDN's reparametrised beta and gamma are bounded below: -inf there is a finite
            # weight (the bound), not a broken one
            poisons = [v for v in POISONS if not (key.endswith(".param") and v < 0)]
            with torch.no_grad():
                param.view(-1)[int(rng.integers(param.numel()))] = float(rng.choice(poisons))
            try:
                sections = unpack(api.compress(img, model, bin_width=0.5))[1]
            except CodingError as e:
                refused += isinstance(e, FixedPointError)
                sections = None
            forged = pack(dataclasses.replace(ref_header,
                                              weights_hash=bitstream.model_hash(model)),
                          ref_sections)
            try:
                out = api.decode(forged, model).image
            except BitstreamError:
                out = None
            if sections is None:
                assert out is None, (name, key)
            else:
                assert sections == ref_sections, (name, key)
                assert np.array_equal(out, ref_image), (name, key)
            for _ in range(2):
                try:
                    check(model, mutate(rng, forged, [forged], model))
                except CodingError:
                    assert sections is None  # a forged symbol needs the broken encoder
        # every tensor but the context convolution's (most of its taps are masked) and the
        # heads the context model replaces is read by the coder
        assert refused >= len(keys) - 3, (name, refused, len(keys))
