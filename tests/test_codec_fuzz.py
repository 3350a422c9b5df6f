"""Fuzzing the decoder (issue 16): mutated streams over every shipped checkpoint and a tiny
``hific``. Each mutated stream either decodes to a uint8 image of the size its header claims
or is refused with a ``BitstreamError``; no other exception, no hang, nothing large allocated
(every stream is small, so the stage-length floor and the pixel limit bound the work).

Mutation classes: bit flips, byte substitutions, truncations, extensions, header edits with
and without a recomputed checksum, section splices between streams, random payloads in a
valid frame, forged extreme latent symbols. The default run is bounded (about 100 streams a
model); ``-m slow`` runs 20 times as many."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from codec import api, decompress
from codec.bitstream import BitstreamError, Header, pack, unpack

from .forge import forge_symbol, image, recrc, shipped_models, tiny_models

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
