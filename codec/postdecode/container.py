"""The post-decoded HEVC stream: a small versioned container around ``hevc-bpgcfg``'s bytes.

Layout (``varint`` is unsigned LEB128, canonical: ``codec.varint``)::

    magic        4 bytes   b"PLPD"
    version      u8        FORMAT_VERSION
    weights      8 bytes   first 8 bytes of the SHA-256 of the learned stage's weights
                           (``codec.bitstream.weights_hash``): which checkpoint decodes it
    qp           u8        the HEVC stream's constant QP (0..51): what the stage is conditioned on
    height       varint    picture size (checked against what the HEVC decoder returns)
    width        varint
    length       varint    bytes of the HEVC payload that follow
    payload      the raw Annex-B HEVC stream, exactly as ``codec.hevc.encode`` wrote it

Every byte counts in bpp (``plic.quality.bpp`` of the whole file): the container adds 19 to 21
bytes to a 768x512 picture's HEVC stream (0.0004 bpp). ``unpack`` checks all of it and raises
``codec.bitstream.BitstreamError`` with one line that says what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import varint
from ..bitstream import HASH_BYTES, MAX_PIXELS, MAX_SIDE, BitstreamError

MAGIC = b"PLPD"
FORMAT_VERSION = 1
QP_MAX = 51
FIXED_BYTES = len(MAGIC) + 1 + HASH_BYTES + 1


@dataclass(frozen=True)
class Header:
    weights_hash: bytes
    qp: int
    height: int
    width: int


def pack(header: Header, payload: bytes) -> bytes:
    if len(header.weights_hash) != HASH_BYTES:
        raise ValueError(f"weights hash must be {HASH_BYTES} bytes")
    if not 0 <= header.qp <= QP_MAX:
        raise ValueError(f"QP {header.qp} out of range 0..{QP_MAX}")
    if not (0 < header.height <= MAX_SIDE and 0 < header.width <= MAX_SIDE):
        raise ValueError(f"image size {header.height}x{header.width} outside 1..{MAX_SIDE}")
    if not payload:
        raise ValueError("empty HEVC payload")
    return (MAGIC + bytes([FORMAT_VERSION]) + header.weights_hash + bytes([header.qp])
            + varint.encode(header.height) + varint.encode(header.width)
            + varint.encode(len(payload)) + bytes(payload))


def _varint(data: bytes, pos: int, what: str) -> tuple[int, int]:
    try:
        return varint.decode(data, pos, len(data), 5)
    except varint.VarintTruncated:
        raise BitstreamError(f"truncated stream: ends inside the {what}") from None
    except varint.VarintError as e:
        raise BitstreamError(f"corrupt stream: {what} is not a valid varint ({e})") from None


def is_stream(data: bytes) -> bool:
    """Whether ``data`` starts with this container's magic (any version)."""
    return bytes(data[:len(MAGIC)]) == MAGIC


def unpack(data: bytes) -> tuple[Header, bytes]:
    """Parse and validate a stream: (header, HEVC payload)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < len(MAGIC) or not is_stream(data):
        raise BitstreamError("not a post-decoded HEVC stream (bad magic bytes)")
    if len(data) < len(MAGIC) + 1:
        raise BitstreamError("truncated stream: ends before the format version")
    if data[4] != FORMAT_VERSION:
        raise BitstreamError(f"post-decoded HEVC stream format version {data[4]} is not "
                             f"supported by this code (version {FORMAT_VERSION})")
    if len(data) < FIXED_BYTES:
        raise BitstreamError("truncated stream: ends inside the header")
    weights = data[5:5 + HASH_BYTES]
    qp = data[5 + HASH_BYTES]
    if qp > QP_MAX:
        raise BitstreamError(f"corrupt stream: QP {qp} out of range 0..{QP_MAX}")
    height, pos = _varint(data, FIXED_BYTES, "image height")
    width, pos = _varint(data, pos, "image width")
    if not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE and height * width <= MAX_PIXELS):
        raise BitstreamError(f"corrupt stream: image size {height}x{width} out of range")
    length, pos = _varint(data, pos, "payload length")
    have = len(data) - pos
    if have < length:
        raise BitstreamError(f"truncated stream: the HEVC payload holds {have} of its "
                             f"{length} bytes")
    if have > length:
        raise BitstreamError(f"corrupt stream: {have - length} bytes after the HEVC payload")
    if length == 0:
        raise BitstreamError("corrupt stream: empty HEVC payload")
    return Header(weights, qp, height, width), data[pos:]
