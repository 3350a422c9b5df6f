"""The plic bitstream: a versioned container around the coded stages (see docs/BITSTREAM.md).

Layout (all integers little endian; ``varint`` is unsigned LEB128)::

    magic        4 bytes   b"PLIC"
    version      u8        FORMAT_VERSION
    name_len     u8        then name_len bytes: the model's registry name (ASCII)
    weights      8 bytes   first 8 bytes of the SHA-256 of the model's weights
    height       varint    image size before padding
    width        varint
    delta        f32       bin width of the latent stage
    order        u8        coding order of the latent stage (codec.coding.CODING_ORDERS)
    sections     u8        number of sections: one per stage (top stage first), then escapes
    lengths      varint x sections
    payload      the sections, in order
    crc32        u32       CRC-32 of every byte before it

``unpack`` checks all of it and raises ``BitstreamError`` (a ``ValueError``) with a message that
says what is wrong; it never returns a half-parsed stream. Varints must be canonical
(``codec.varint``): one stream, one byte string.
"""

from __future__ import annotations

import hashlib
import math
import struct
import zlib
from dataclasses import dataclass

from . import varint

MAGIC = b"PLIC"
FORMAT_VERSION = 1
HASH_BYTES = 8
MAX_SIDE = 1 << 16
MAX_PIXELS = 1 << 28
MAX_SECTIONS = 16
BIN_WIDTH_RANGE = (2.0**-20, 2.0**20)   # delta, both ends excluded
# the bin widths a rate search for a learned codec tries (codec.api's target_bpp and the
# learned backend of distortions): 12 octaves, from near-lossless to the coarsest useful
RATE_SEARCH_RANGE = (2.0**-4, 2.0**8)


class BitstreamError(ValueError):
    """A byte string that is not a valid plic bitstream for the given model."""


@dataclass(frozen=True)
class Header:
    model_name: str
    weights_hash: bytes
    height: int
    width: int
    delta: float
    coding_order: int


class _Reader:
    def __init__(self, data: bytes, end: int):
        self.data, self.pos, self.end = data, 0, end

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > self.end:
            raise BitstreamError(f"truncated bitstream: ends inside the {what}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def varint(self, what: str) -> int:
        try:  # every varint here fits in 35 bits
            n, self.pos = varint.decode(self.data, self.pos, self.end, 5)
        except varint.VarintTruncated:
            raise BitstreamError(f"truncated bitstream: ends inside the {what}") from None
        except varint.VarintError as e:
            raise BitstreamError(f"corrupt bitstream: {what} is not a valid varint ({e})") from None
        return n


def float32(x: float) -> float:
    """The value ``x`` has once stored in the stream's f32 field."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def pack(header: Header, sections: list[bytes]) -> bytes:
    name = header.model_name.encode("ascii")
    if len(name) > 255 or len(header.weights_hash) != HASH_BYTES:
        raise ValueError("model name longer than 255 bytes or a bad weights hash")
    if not (0 < header.height <= MAX_SIDE and 0 < header.width <= MAX_SIDE):
        raise ValueError(f"image size {header.height}x{header.width} outside 1..{MAX_SIDE}")
    if len(sections) > MAX_SECTIONS:
        raise ValueError("too many sections")
    out = bytearray(MAGIC)
    out += bytes([FORMAT_VERSION, len(name)]) + name + header.weights_hash
    out += varint.encode(header.height) + varint.encode(header.width)
    out += struct.pack("<f", header.delta) + bytes([header.coding_order, len(sections)])
    for s in sections:
        out += varint.encode(len(s))
    for s in sections:
        out += s
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out)


def unpack(data: bytes) -> tuple[Header, list[bytes]]:
    """Parse and validate a stream: (header, sections)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < len(MAGIC) + 1 or data[:4] != MAGIC:
        raise BitstreamError("not a plic bitstream (bad magic bytes)")
    if data[4] != FORMAT_VERSION:
        raise BitstreamError(f"bitstream format version {data[4]} is not supported by this "
                             f"code (version {FORMAT_VERSION})")
    if len(data) < 9:
        raise BitstreamError("truncated bitstream: no room for the checksum")
    (crc,) = struct.unpack("<I", data[-4:])
    if zlib.crc32(data[:-4]) != crc:
        raise BitstreamError("corrupt or truncated bitstream: checksum mismatch")
    r = _Reader(data, len(data) - 4)
    r.pos = 5
    (name_len,) = r.take(1, "model name")
    try:
        name = r.take(name_len, "model name").decode("ascii")
    except UnicodeDecodeError:
        raise BitstreamError("corrupt bitstream: model name is not ASCII") from None
    weights = r.take(HASH_BYTES, "weights hash")
    height, width = r.varint("image height"), r.varint("image width")
    if not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE and height * width <= MAX_PIXELS):
        raise BitstreamError(f"corrupt bitstream: image size {height}x{width} out of range")
    (delta,) = struct.unpack("<f", r.take(4, "bin width"))
    if not (math.isfinite(delta) and BIN_WIDTH_RANGE[0] < delta < BIN_WIDTH_RANGE[1]):
        raise BitstreamError(f"corrupt bitstream: bin width {delta} out of range")
    order, n_sections = r.take(2, "coding order")
    if not 0 < n_sections <= MAX_SECTIONS:
        raise BitstreamError(f"corrupt bitstream: {n_sections} sections")
    lengths = [r.varint("section length") for _ in range(n_sections)]
    if r.pos + sum(lengths) != r.end:
        raise BitstreamError(f"corrupt bitstream: sections total {sum(lengths)} bytes, "
                             f"{r.end - r.pos} present")
    sections = [r.take(n, "payload") for n in lengths]
    return Header(name, weights, height, width, delta, order), sections


def weights_hash(state_dict) -> bytes:
    """First 8 bytes of SHA-256 over the state dict (sorted keys, dtypes, shapes, raw bytes)."""
    import torch

    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.digest()[:HASH_BYTES]


def model_hash(model) -> bytes:
    """``weights_hash`` of ``model``, cached until any tensor is modified in place."""
    sd = model.state_dict()
    key = tuple((k, v.data_ptr(), v._version) for k, v in sd.items())
    cached = getattr(model, "_plic_hash", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    digest = weights_hash(sd)
    object.__setattr__(model, "_plic_hash", (key, digest))
    return digest
