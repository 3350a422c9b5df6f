"""Entropy coding with constriction: symbols + discretised scales -> bytes, and back.

Each stage is coded into its own ANS stream (32-bit words, little endian) with constriction's
vectorised ``QuantizedLaplace`` on ``[-(ESCAPE_AT + 1), ESCAPE_AT + 1]``: zero mean (symbols are
already centred on the discretised means, see ``codec.entropy``) and one scale per symbol taken
from ``SCALE_TABLE``. The boundary symbols carry the tail mass and mean "escaped": the magnitude
beyond the boundary follows as an unsigned LEB128 varint in the stream's escape section.

The latent stage is coded by ONE swappable object, a ``LatentCoder``. The default
(``ParallelLatentCoder``, coding order ``parallel``) computes all latent parameters from the hyper
features at once. A context model registers another coder (e.g. ``wavefront``) with
``register_latent_coder``; the bitstream records which one was used.

The format bounds every symbol: ``|k| * delta <= LATENT_LIMIT`` (``check_symbols``), so a
decoded latent lies within ``LATENT_LIMIT`` of its mean, the fixed-point path (int64 at 16
fractional bits) cannot wrap and the float path cannot overflow on a forged symbol. The encoder
refuses latents outside the bound; the decoder refuses streams that hold such symbols, and
non-finite entropy parameters, with a ``CodingError``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import constriction
import numpy as np
import torch

from . import varint
from .bitstream import BIN_WIDTH_RANGE
from .entropy import ESCAPE_AT, SCALE_TABLE, discretize, estimate_bits, from_symbols, to_symbols

_MODEL = constriction.stream.model.QuantizedLaplace(-(ESCAPE_AT + 1), ESCAPE_AT + 1)

# |k| * delta <= LATENT_LIMIT for every symbol k of a stage with bin width delta (1 for the hyper
# stages): 2^14 is the fixed-point path's activation range (``codec.context.intmath.ACT_LIMIT``).
LATENT_LIMIT = 2**14
# the largest |k| at any bin width the container allows (delta > 2^-20): escapes fit 5 bytes
SYMBOL_LIMIT = math.floor(LATENT_LIMIT / BIN_WIDTH_RANGE[0])


class CodingError(ValueError):
    """A stream that does not decode (bitstream.py turns it into a BitstreamError)."""


# ---- escape values ---------------------------------------------------------------------------

class EscapeWriter:
    def __init__(self):
        self.buf = bytearray()

    def write(self, values: np.ndarray) -> None:
        for n in np.asarray(values, dtype=np.uint64).tolist():
            self.buf += varint.encode(n)


class EscapeReader:
    MAX_VALUE = SYMBOL_LIMIT - ESCAPE_AT - 1  # escape = |k| - (ESCAPE_AT + 1); 5 bytes
    MAX_BYTES = 10                            # any 64-bit value is read, then judged

    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.pos = 0

    def read(self, count: int) -> np.ndarray:
        out = np.empty(count, dtype=np.int64)
        for i in range(count):
            try:
                n, self.pos = varint.decode(self.data, self.pos, len(self.data), self.MAX_BYTES)
            except varint.VarintTruncated:
                raise CodingError("escape section ends early") from None
            except varint.VarintError as e:
                raise CodingError(f"escape value is not a valid varint ({e})") from None
            if n > self.MAX_VALUE:
                raise CodingError(f"escape value {n} is beyond the format's symbol range "
                                  f"(at most {self.MAX_VALUE})")
            out[i] = n
        return out

    def check_done(self) -> None:
        if self.pos != len(self.data):
            raise CodingError(f"{len(self.data) - self.pos} unused bytes in the escape section")


def resolve_escapes(k: np.ndarray, escapes: EscapeReader) -> np.ndarray:
    """Decoded int64 symbols with the boundary ones ``+-(ESCAPE_AT + 1)`` completed by their
    escape values (read in order), in place."""
    esc = np.abs(k) > ESCAPE_AT
    if np.any(esc):
        k[esc] = np.sign(k[esc]) * (ESCAPE_AT + 1 + escapes.read(int(esc.sum())))
    return k


# ---- the format's bounds -----------------------------------------------------------------------

def symbol_limit(delta: float) -> int:
    """The largest |k| a stage with bin width ``delta`` may hold: |k| * delta <= LATENT_LIMIT."""
    return math.floor(LATENT_LIMIT / float(delta))


def check_symbols(k: torch.Tensor, delta: float) -> None:
    """``CodingError`` unless every symbol is within ``symbol_limit(delta)``."""
    if k.numel() == 0:
        return
    lo, hi = int(k.min()), int(k.max())
    limit = symbol_limit(delta)
    if lo < -limit or hi > limit:
        worst = lo if -lo > hi else hi
        raise CodingError(f"latent symbol {worst} at bin width {delta:.6g} is outside the "
                          f"format's range (|symbol| x bin width <= {LATENT_LIMIT})")


def check_params(means: torch.Tensor, scales: torch.Tensor) -> None:
    """``CodingError`` if an entropy parameter is NaN or infinite (it would index no table)."""
    if not (bool(torch.isfinite(means).all()) and bool(torch.isfinite(scales).all())):
        raise CodingError("non-finite entropy parameters: the decoded stage above is outside "
                          "what the model handles")


# ---- symbols <-> words -----------------------------------------------------------------------

def encode_symbols(k: torch.Tensor, scale_idx: torch.Tensor, escapes: EscapeWriter) -> bytes:
    """ANS-code integer symbols with their scale indices; escapes go to ``escapes``."""
    k = k.reshape(-1).cpu().numpy().astype(np.int64)
    idx = scale_idx.reshape(-1).cpu().numpy()
    esc = np.abs(k) > ESCAPE_AT
    coded = np.clip(k, -(ESCAPE_AT + 1), ESCAPE_AT + 1).astype(np.int32)
    escapes.write(np.abs(k[esc]) - ESCAPE_AT - 1)
    coder = constriction.stream.stack.AnsCoder()
    if len(coded):
        coder.encode_reverse(coded, _MODEL, np.zeros(len(coded)), SCALE_TABLE[idx])
    return coder.get_compressed().astype("<u4").tobytes()


class SymbolStream:
    """Symbols popped off one ANS stream that ``encode_symbols`` wrote, in the order written:
    the one decoding loop of every stage (``decode_symbols`` pops a stage at once, the wavefront
    decoder a step at a time). ``what`` names the stream in errors."""

    def __init__(self, data: bytes, escapes: EscapeReader, what: str = "stage"):
        if len(data) % 4:
            raise CodingError(f"stage length {len(data)} is not a whole number of 32-bit words")
        self.escapes, self.what = escapes, what
        self._zeros = np.zeros(0)  # the zero means of the symbol model, reused
        try:
            self.coder = constriction.stream.stack.AnsCoder(
                np.frombuffer(data, dtype="<u4").astype(np.uint32))
        except Exception as e:  # constriction raises plain ValueError/AssertionError on bad data
            raise CodingError(f"entropy decoding failed ({e})") from e

    def pop(self, scale_idx: torch.Tensor, where: str = "") -> torch.Tensor:
        """The next ``scale_idx.numel()`` symbols (escapes resolved), int64 shaped like
        ``scale_idx`` and on its device."""
        flat = scale_idx.reshape(-1).cpu().numpy()
        if len(self._zeros) < len(flat):
            self._zeros = np.zeros(len(flat))
        try:
            k = self.coder.decode(_MODEL, self._zeros[:len(flat)], SCALE_TABLE[flat])
        except Exception as e:  # constriction raises plain ValueError/AssertionError on bad data
            raise CodingError(f"entropy decoding failed{where} ({e})") from e
        k = torch.from_numpy(resolve_escapes(k.astype(np.int64), self.escapes))
        k = k.reshape(scale_idx.shape)
        return k if scale_idx.device.type == "cpu" else k.to(scale_idx.device)

    def finish(self) -> None:
        if not self.coder.is_empty():
            raise CodingError(f"{self.what} stream has words left over after decoding")


def decode_symbols(data: bytes, scale_idx: torch.Tensor, escapes: EscapeReader) -> torch.Tensor:
    """Inverse of ``encode_symbols``; returns int64 symbols shaped like ``scale_idx``."""
    stream = SymbolStream(data, escapes)
    k = stream.pop(scale_idx)
    stream.finish()
    return k


# ---- one stage ---------------------------------------------------------------------------------

@dataclass
class StageCode:
    """The result of coding one stage: its bytes, the reconstruction, the estimate in bits."""

    data: bytes
    v_hat: torch.Tensor
    est_bits: float
    symbols: torch.Tensor


def encode_stage(v: torch.Tensor, means: torch.Tensor, scales: torch.Tensor, delta: float,
                 escapes: EscapeWriter) -> StageCode:
    """Code ``v`` given its Laplace parameters; all parameters pass through ``discretize``."""
    check_params(means, scales)
    means_q, idx = discretize(means, scales, delta)
    k = to_symbols(v, means_q, delta)
    check_symbols(k, delta)
    n_esc = len(escapes.buf)
    data = encode_symbols(k, idx, escapes)
    est = estimate_bits(k, idx)
    assert est >= 8 * (len(escapes.buf) - n_esc) - 1e-6  # the estimate counts the escapes
    return StageCode(data, from_symbols(k, means_q, delta), est, k)


def decode_stage(data: bytes, means: torch.Tensor, scales: torch.Tensor, delta: float,
                 escapes: EscapeReader) -> StageCode:
    """Inverse of ``encode_stage`` (same parameters in, same ``StageCode`` out)."""
    check_params(means, scales)
    means_q, idx = discretize(means, scales, delta)
    k = decode_symbols(data, idx, escapes)
    check_symbols(k, delta)
    return StageCode(data, from_symbols(k, means_q, delta), estimate_bits(k, idx), k)


# ---- the latent stage: one swappable coder ----------------------------------------------------

class LatentCoder(Protocol):
    """Codes the latent ``y`` given the hyper features (the output of the first hyper decoder).

    ``model.latent_params(features, y_hat=None) -> (means, scales)`` is the model's parameter
    head; a context model's coder calls it with the already decoded part of ``y_hat``."""

    def encode(self, model, y: torch.Tensor, features: torch.Tensor, delta: float,
               escapes: EscapeWriter) -> StageCode: ...

    def decode(self, model, data: bytes, features: torch.Tensor, shape: tuple, delta: float,
               escapes: EscapeReader) -> StageCode: ...


class ParallelLatentCoder:
    """All latent parameters from the hyper features in one pass (no context model)."""

    def encode(self, model, y, features, delta, escapes):
        means, scales = model.latent_params(features)
        return encode_stage(y, means, scales, delta, escapes)

    def decode(self, model, data, features, shape, delta, escapes):
        means, scales = model.latent_params(features)
        if tuple(means.shape) != tuple(shape):
            raise CodingError(f"latent parameters {tuple(means.shape)} do not match {shape}")
        return decode_stage(data, means, scales, delta, escapes)


# Coding orders: the bitstream stores the number, the model config the name.
CODING_ORDERS: dict[str, int] = {"parallel": 0, "wavefront": 1}
CODING_ORDER_NAMES: dict[int, str] = {v: k for k, v in CODING_ORDERS.items()}
_LATENT_CODERS: dict[str, LatentCoder] = {"parallel": ParallelLatentCoder()}


def register_latent_coder(name: str, coder: LatentCoder) -> None:
    """Make ``coder`` available as coding order ``name`` (must be one of ``CODING_ORDERS``)."""
    if name not in CODING_ORDERS:
        raise ValueError(f"unknown coding order {name!r}; add it to CODING_ORDERS first")
    _LATENT_CODERS[name] = coder


def latent_coder(name: str) -> LatentCoder:
    try:
        return _LATENT_CODERS[name]
    except KeyError:
        raise CodingError(f"no latent coder registered for coding order {name!r}") from None
