"""The coding API other packages call: uint8 image in, bytes out, uint8 image back.

    model = load("runs/codec/model.pt")
    res = encode(image, model, target_bpp=0.3)      # EncodeResult: data, bpp, est_bits, ...
    image_hat = decompress(res.data, model)
    enc = Encoder(image, model); enc.code(0.5); enc.code(2.0)   # analysis once, many deltas

``bpp`` is always measured on the whole file (header included, ``plic.quality.bpp``);
``est_bits`` is the likelihood estimate from the same discretised parameters that were coded.
Any image size works: the image is padded (edge replication) to the model's stride and the
decoder crops back. Images over ``max_pixels`` (computed pixels, padded to the model's stride;
default: what fits the memory budget, ``codec.limits``) are refused before anything large is
allocated; running out of memory anyway raises ``codec.limits.CodecMemoryError``, never a
``BitstreamError``. ``decode(data, model, untrusted=True)`` also bounds the decoding work a
stream byte may buy (``codec.limits``: the untrusted-input policy). On CPU all coding
runs on one thread, so streams and decoded pixels do not depend on the thread count.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from plic.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from plic.image_io import check_rgb_uint8, to_image, to_tensor
from plic.quality import bpp as bits_per_pixel

from . import bitstream as bs
from . import limits
from .coding import (
    CODING_ORDER_NAMES,
    CODING_ORDERS,
    CodingError,
    EscapeReader,
    EscapeWriter,
    StageCode,
    decode_stage,
    encode_stage,
    latent_coder,
)
from .context.intmath import FixedPointError
from .entropy import MIN_SYMBOL_BITS
from .limits import MAX_TARGET_BPP, check_target_bpp  # noqa: F401 (api names)
from .models import build
from .threads import exact_mode

DELTA_MIN, DELTA_MAX = bs.RATE_SEARCH_RANGE   # the rate-control search range of the bin width
SEARCH_STEPS = 10  # 12 octaves / 2^10: delta to within 0.8 %
FLOOR_FRACTION = 0.9  # of the least a stage's symbols can cost (_check_stage_lengths)


class RateControlError(ValueError):
    """The requested target rate is below what the model reaches at its largest bin width."""


@dataclass
class EncodeResult:
    data: bytes
    bpp: float          # real: 8 x len(data) / pixels
    est_bits: float     # likelihood estimate of the coded stages (no header)
    bin_width: float    # delta, as stored in the stream
    seconds: float


@dataclass
class DecodeResult:
    image: np.ndarray
    bpp: float
    est_bits: float
    bin_width: float
    seconds: float


# ---- checkpoints -----------------------------------------------------------------------------

def save(model, path: str | os.PathLike, provenance: dict | None = None) -> Path:
    """Write ``model`` as a ``codec`` checkpoint (config carries everything to rebuild it)."""
    return save_checkpoint(path, "codec", model.name, model.config, model.state_dict(),
                           provenance)


def load(ckpt_path: str | os.PathLike, device: str = "cpu"):
    """A codec checkpoint as a model in eval mode, ready to code."""
    if _is_postdecode_file(ckpt_path):  # the HEVC post-decoder (codec.postdecode)
        return _postdecode().load(ckpt_path, device)
    ckpt = load_checkpoint(ckpt_path, kind="codec", map_location=device)
    try:
        model = build(ckpt["model"], **ckpt["config"])
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{ckpt_path}: cannot rebuild codec model ({e})") from e
    return model.to(device).eval()


def _postdecode():
    """codec.postdecode (the HEVC post-decoder), imported when first needed."""
    from . import postdecode

    return postdecode


def _is_postdecode_file(path) -> bool:
    try:
        return load_checkpoint(path)["kind"] == "postdecode"
    except CheckpointError:
        return False  # reported by the codec load below


def _is_postdecoder(model) -> bool:
    return getattr(model, "name", None) == _postdecode().NAME


def _postdecode_encode(image, model, target_bpp, bin_width, max_pixels) -> EncodeResult:
    """A post-decoder codes HEVC at a QP (``codec.postdecode.encode``); no likelihood estimate
    (``est_bits`` and ``bin_width`` are NaN; the QP is ``res.qp``)."""
    if bin_width is not None:
        raise ValueError("a post-decoded HEVC checkpoint codes at a QP, not a bin width: give "
                         "target_bpp, or use codec.postdecode.encode(image, model, qp=Q)")
    res = _postdecode().encode(image, model, target_bpp=target_bpp, max_pixels=max_pixels)
    out = EncodeResult(res.data, res.bpp, math.nan, math.nan, res.seconds)
    out.qp = res.qp
    return out


def _postdecode_decode(data, model, max_pixels) -> DecodeResult:
    res = _postdecode().decode(data, model, max_pixels)
    out = DecodeResult(res.image, res.bpp, math.nan, math.nan, res.seconds)
    out.qp = res.qp
    return out


# ---- helpers -------------------------------------------------------------------------------

def _device(model) -> torch.device:
    return next(model.parameters()).device


def _padded(h: int, w: int, stride: int) -> tuple[int, int]:
    return limits.padded_size(h, w, stride)


def _to_tensor(image: np.ndarray, model) -> torch.Tensor:
    h, w = image.shape[:2]
    hp, wp = _padded(h, w, model.stride)
    x = to_tensor(image)
    if (hp, wp) != (h, w):
        x = torch.nn.functional.pad(x, (0, wp - w, 0, hp - h), mode="replicate")
    return x.to(_device(model))


def stage_shapes(model, height: int, width: int) -> list[tuple[int, ...]]:
    """Shapes (1, C, h, w) of every stage for an image of this size (``codec.limits.probe``:
    once per model)."""
    hp, wp = _padded(height, width, model.stride)
    return [(1, c, hp // fh, wp // fw) for c, fh, fw in limits.probe(model).stages]


def _coding_order(model) -> str:
    """The coding order the model's config names (``codec.coding.CODING_ORDERS``)."""
    name = model.config.get("coding_order", "parallel")
    if name not in CODING_ORDERS:
        raise ValueError(f"model config names unknown coding order {name!r}")
    return name


# ---- encoding --------------------------------------------------------------------------------

class _Encoder:
    """Analysis and hyper stages once; the latent stage again for each bin width tried."""

    def __init__(self, image: np.ndarray, model):
        self.model, self.h, self.w = model, image.shape[0], image.shape[1]
        self.latents = model.analysis(_to_tensor(image, model))
        if not all(bool(torch.isfinite(v).all()) for v in self.latents):
            raise ValueError("the analysis transform gave non-finite latents (broken weights?)")
        self.escapes = EscapeWriter()
        self.hyper: list[StageCode] = []
        above = None
        top = len(self.latents) - 1
        for i in range(top, 0, -1):
            v = self.latents[i]
            means, scales = (model.top_params(v.shape) if i == top
                             else model.stage_params(i, above))
            code = encode_stage(v, means, scales, 1.0, self.escapes)
            self.hyper.append(code)
            above = code.v_hat.to(v.device)
        self.features = model.h_s[0](above) if top > 0 else None

    def code(self, delta: float) -> EncodeResult:
        t0 = time.perf_counter()
        model, y = self.model, self.latents[0]
        esc = EscapeWriter()
        esc.buf = bytearray(self.escapes.buf)
        order = _coding_order(model)
        if self.features is None:
            means, scales = model.top_params(y.shape)
            y_code = encode_stage(y, means, scales, delta, esc)
        else:
            y_code = latent_coder(order).encode(model, y, self.features, delta, esc)
        header = bs.Header(model.name, bs.model_hash(model), self.h, self.w, delta,
                           CODING_ORDERS[order])
        sections = [c.data for c in self.hyper] + [y_code.data, bytes(esc.buf)]
        data = bs.pack(header, sections)
        est = sum(c.est_bits for c in self.hyper) + y_code.est_bits
        return EncodeResult(data, bits_per_pixel(len(data), self.h, self.w), est, delta,
                            time.perf_counter() - t0)


BIN_WIDTH_RANGE_TEXT = "(2^-20, 2^20)"  # bs.BIN_WIDTH_RANGE, both ends excluded


def check_bin_width(bin_width) -> float:
    """``bin_width`` as the f32 the stream stores, if that is within ``BIN_WIDTH_RANGE``
    (both ends excluded: 1048575.99 rounds to 2^20 in f32 and is refused), else ValueError."""
    try:
        delta = float(bin_width)
    except (TypeError, ValueError):
        raise ValueError(f"bin_width must be a number, got {bin_width!r}") from None
    lo, hi = bs.BIN_WIDTH_RANGE
    if not (math.isfinite(delta) and lo < delta < hi and lo < bs.float32(delta) < hi):
        raise ValueError(f"bin_width {bin_width} out of range {BIN_WIDTH_RANGE_TEXT}")
    return bs.float32(delta)


class Encoder:
    """One image analysed once, then coded at any number of bin widths: what a rate search
    outside this module needs (``distortions`` bisects its own way). ``code(d)`` gives exactly
    the bytes of ``encode(image, model, bin_width=d)``; only the latent stage is re-coded."""

    def __init__(self, image: np.ndarray, model, max_pixels: int | None = None):
        _check_image(image, model, max_pixels)
        with exact_mode(), _memory(image):
            self._enc = _Encoder(image, model)

    def code(self, bin_width: float) -> EncodeResult:
        t0 = time.perf_counter()
        with exact_mode(), _memory(self._enc):
            res = self._enc.code(check_bin_width(bin_width))
        res.seconds = time.perf_counter() - t0
        return res




def _check_image(image: np.ndarray, model, max_pixels: int | None) -> None:
    check_rgb_uint8(image)
    _coding_order(model)
    limits.check_pixels(model, image.shape[0], image.shape[1], max_pixels)


def _memory(what):
    """Out-of-memory while coding ``what`` (an image, or an encoder of one) -> CodecMemoryError."""
    h, w = (what.shape[:2] if isinstance(what, np.ndarray) else (what.h, what.w))
    return limits.out_of_memory_as(f"coding a {w}x{h} image")


def encode(image: np.ndarray, model, target_bpp: float | None = None,
           bin_width: float | None = None, max_pixels: int | None = None) -> EncodeResult:
    """Code ``image`` (uint8 H x W x 3). ``bin_width`` sets delta; ``target_bpp`` searches the
    smallest delta whose real file is at or under the target (raises ``RateControlError`` when
    even the largest delta is over it); neither: delta = 1. Images over ``max_pixels`` (None:
    ``codec.limits.default_max_pixels``) raise ``codec.limits.PixelLimitError``."""
    t0 = time.perf_counter()
    if _is_postdecoder(model):
        return _postdecode_encode(image, model, target_bpp, bin_width, max_pixels)
    if target_bpp is not None and bin_width is not None:
        raise ValueError("give target_bpp or bin_width, not both")
    target = None if target_bpp is None else check_target_bpp(target_bpp)
    delta = check_bin_width(1.0 if bin_width is None else bin_width)
    _check_image(image, model, max_pixels)
    with exact_mode(), _memory(image):
        enc = _Encoder(image, model)
        res = enc.code(delta) if target is None else _search(enc, target)
    res.seconds = time.perf_counter() - t0
    return res


def _search(enc: _Encoder, target: float) -> EncodeResult:
    """Bisection on log2(delta); the rate falls (almost) monotonically as delta grows."""
    best = enc.code(bs.float32(DELTA_MAX))
    if best.bpp > target:
        raise RateControlError(f"target {target} bpp is below the smallest rate this model "
                               f"reaches on this image ({best.bpp:.4f} bpp at bin width "
                               f"{DELTA_MAX})")
    first = enc.code(bs.float32(DELTA_MIN))
    if first.bpp <= target:
        return first
    lo, hi = math.log2(DELTA_MIN), math.log2(DELTA_MAX)
    for _ in range(SEARCH_STEPS):
        mid = (lo + hi) / 2
        res = enc.code(bs.float32(2.0**mid))
        if res.bpp <= target:
            hi, best = mid, (res if res.bin_width < best.bin_width else best)
        else:
            lo = mid
    return best


def compress(image: np.ndarray, model, target_bpp: float | None = None,
             bin_width: float | None = None, max_pixels: int | None = None) -> bytes:
    return encode(image, model, target_bpp=target_bpp, bin_width=bin_width,
                  max_pixels=max_pixels).data


# ---- decoding --------------------------------------------------------------------------------

def decode(data: bytes, model, max_pixels: int | None = None, untrusted: bool = False,
           max_pixels_per_byte: int | None = None) -> DecodeResult:
    """Decode a stream made by ``encode`` with this very model; ``BitstreamError`` otherwise
    (``codec.limits.StreamPixelLimitError``, one, for an image over ``max_pixels``; None:
    ``codec.limits.default_max_pixels``). Out of memory: ``codec.limits.CodecMemoryError``.

    ``untrusted=True`` (streams from strangers) also refuses, from the header alone, a stream
    whose decoding work is over ``max_pixels_per_byte`` (default
    ``codec.limits.UNTRUSTED_PIXELS_PER_BYTE``) pixels per stream byte:
    ``codec.limits.StreamCostError``. ``max_pixels_per_byte`` applies in either mode."""
    t0 = time.perf_counter()
    if untrusted and max_pixels_per_byte is None:
        max_pixels_per_byte = limits.UNTRUSTED_PIXELS_PER_BYTE
    if _is_postdecoder(model):  # HEVC + the learned stage
        if max_pixels_per_byte is not None:  # the same bound, on its pixels
            header = _postdecode().api.check_stream(data, model, max_pixels)[0]
            limits.check_pixel_work(header.height, header.width, len(data),
                                    max_pixels_per_byte)
        return _postdecode_decode(data, model, max_pixels)
    header, sections = bs.unpack(data)
    if header.model_name != model.name:
        raise bs.BitstreamError(f"bitstream was made by model {header.model_name!r}, "
                                f"not {model.name!r}")
    if header.weights_hash != bs.model_hash(model):
        raise bs.BitstreamError(f"bitstream was made by other weights of {model.name!r} "
                                f"(hash {header.weights_hash.hex()}, this model "
                                f"{bs.model_hash(model).hex()}): use the same checkpoint")
    if header.coding_order not in CODING_ORDER_NAMES:
        raise bs.BitstreamError(f"unknown coding order {header.coding_order}")
    limits.check_pixels(model, header.height, header.width, max_pixels, stream=True)
    if max_pixels_per_byte is not None:
        limits.check_work(model, header.height, header.width,
                          CODING_ORDER_NAMES[header.coding_order], len(data),
                          max_pixels_per_byte)
    shapes = stage_shapes(model, header.height, header.width)
    if len(sections) != len(shapes) + 1:
        raise bs.BitstreamError(f"bitstream has {len(sections)} sections, model "
                                f"{model.name!r} needs {len(shapes) + 1}")
    _check_stage_lengths(sections, shapes)
    with exact_mode(), limits.out_of_memory_as(f"decoding a {header.width}x{header.height} "
                                                f"image"):
        try:
            codes = _decode_stages(model, header, sections, shapes)
            x_hat = model.g_s(codes[-1].v_hat.to(_device(model)))
        except (CodingError, RuntimeError, ValueError) as e:
            if isinstance(e, bs.BitstreamError) or limits.is_out_of_memory(e):
                raise
            # the integer parameter path refusing the model's weights is no fault of the stream
            what = "cannot decode" if isinstance(e, FixedPointError) else "corrupt bitstream"
            raise bs.BitstreamError(f"{what}: {e}") from e
        if not bool(torch.isfinite(x_hat).all()):
            raise bs.BitstreamError("corrupt bitstream: the decoded image is not finite (NaN "
                                    "or infinity): its latents are outside what the synthesis "
                                    "transform handles")
        image = to_image(x_hat[0, :, :header.height, :header.width])
    return DecodeResult(image, bits_per_pixel(len(data), header.height, header.width),
                        sum(c.est_bits for c in codes), header.delta, time.perf_counter() - t0)


def _check_stage_lengths(sections: list[bytes], shapes: list[tuple[int, ...]]) -> None:
    """Refuse a stream too short for the symbols its header claims, before allocating them
    (a forged size would otherwise cost gigabytes and minutes). Each stage holds at least
    ``MIN_SYMBOL_BITS`` per symbol (measured: a million zeros at the narrowest scale take
    1.008 x that); 90 % of it, less the ANS state, is the floor checked."""
    for j, shape in enumerate(reversed(shapes)):  # sections: top stage first
        n = math.prod(shape)
        floor = int(n * MIN_SYMBOL_BITS * FLOOR_FRACTION / 8) - 8
        if len(sections[j]) < floor:
            raise bs.BitstreamError(
                f"corrupt bitstream: stage {j} holds {len(sections[j])} bytes, too few for the "
                f"{n} symbols the header's image size implies")


def _decode_stages(model, header, sections, shapes) -> list[StageCode]:
    """Every stage, top first; the last is the latent y."""
    escapes = EscapeReader(sections[-1])
    dev = _device(model)
    top = len(shapes) - 1
    above, codes = None, []
    for j, i in enumerate(range(top, 0, -1)):
        means, scales = (model.top_params(shapes[i]) if i == top
                         else model.stage_params(i, above))
        code = decode_stage(sections[j], means, scales, 1.0, escapes)
        codes.append(code)
        above = code.v_hat.to(dev)
    if top == 0:
        means, scales = model.top_params(shapes[0])
        code = decode_stage(sections[0], means, scales, header.delta, escapes)
    else:
        coder = latent_coder(CODING_ORDER_NAMES[header.coding_order])
        code = coder.decode(model, sections[top], model.h_s[0](above), shapes[0],
                            header.delta, escapes)
    codes.append(code)
    escapes.check_done()
    return codes


def decompress(data: bytes, model, max_pixels: int | None = None, untrusted: bool = False,
               max_pixels_per_byte: int | None = None) -> np.ndarray:
    """uint8 (H, W, 3) image from a stream (the options: ``decode``); raises
    ``codec.bitstream.BitstreamError``."""
    return decode(data, model, max_pixels, untrusted, max_pixels_per_byte).image
