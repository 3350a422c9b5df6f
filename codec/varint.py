"""Unsigned LEB128 varints, canonical only: the one encoder and decoder of the bitstream's
varints (header fields, section lengths, escape values; docs/BITSTREAM.md).

Seven bits a byte, least significant group first, high bit = more bytes follow. A value has
exactly one encoding, its shortest: a last byte of 0 after a continuation byte (``0x80 0x00``
for 0) is refused, so no two byte strings decode to the same stream.
"""

from __future__ import annotations


class VarintError(ValueError):
    """Bytes that are not one canonical varint within the allowed length."""


class VarintTruncated(VarintError):
    """The data ends inside the varint."""


def encode(n: int) -> bytes:
    if n < 0:
        raise ValueError(f"varints are unsigned, got {n}")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def decode(data, pos: int, end: int, max_bytes: int) -> tuple[int, int]:
    """(value, position after it) of the varint at ``data[pos:end]``, at most ``max_bytes``
    long; ``VarintTruncated`` if the data ends inside it, else ``VarintError`` saying why not
("too long", "not canonical")."""
    n, shift = 0, 0
    for i in range(max_bytes):
        if pos >= end:
            raise VarintTruncated("ends early")
        byte = data[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if byte == 0 and i > 0:
                raise VarintError("not canonical (a redundant zero byte)")
            return n, pos
    raise VarintError(f"too long (over {max_bytes} bytes)")
