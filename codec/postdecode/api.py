"""Code an image as HEVC (``hevc-bpgcfg``'s settings) and decode it with the learned stage.

    model = load("checkpoints/hevc-bpgcfg-pd.pt")
    res = encode(image, model, target_bpp=0.15)     # EncodeResult: data, bpp, qp, ...
    image_hat = decompress(res.data, model)           # ffmpeg's HEVC decode, then the stage

The stream is the HEVC bitstream inside ``codec.postdecode.container``; its header names the
stage's weights (a hash) and the QP the stage is conditioned on. Decoding refuses, with one
``codec.bitstream.BitstreamError`` line, a wrong magic or version, another checkpoint's stream,
a truncated payload and a picture over ``max_pixels`` (default: what the stage decodes within
``codec.limits.MEMORY_BUDGET``), before ffmpeg or the stage run. The stage runs on one CPU
thread with deterministic kernels (``codec.api``'s exact mode), so decoded pixels do not depend
on the caller's thread count or process.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from plic.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from plic.image_io import check_rgb_uint8, to_image, to_tensor
from plic.quality import bpp as bits_per_pixel

from .. import hevc, limits
from ..bitstream import MAX_PIXELS, BitstreamError, model_hash
from ..threads import exact_mode
from . import container
from .stage import NAME, PostDecoder, build

KIND = "postdecode"
PEAK_FACTOR = 8  # full-size tensors of the widest layer alive at once, with margin


class RateControlError(ValueError):
    """The target rate is below what HEVC reaches at its largest QP."""


@dataclass
class EncodeResult:
    data: bytes
    bpp: float
    qp: int
    seconds: float


@dataclass
class DecodeResult:
    image: np.ndarray
    bpp: float
    qp: int
    hevc_seconds: float    # ffmpeg's HEVC decode (a subprocess)
    stage_seconds: float   # the learned stage
    seconds: float


# ---- checkpoints -----------------------------------------------------------------------------

def save(model: PostDecoder, path: str | os.PathLike, provenance: dict | None = None) -> Path:
    return save_checkpoint(path, KIND, model.name, model.config, model.state_dict(),
                           provenance)


def load(path: str | os.PathLike, device: str = "cpu") -> PostDecoder:
    """A post-decoder checkpoint (kind ``postdecode``) as a stage in eval mode."""
    ckpt = load_checkpoint(path, kind=KIND, map_location=device)
    if ckpt["model"] != NAME:
        raise CheckpointError(f"{path}: a {ckpt['model']!r} post-decoder, this code knows "
                              f"{NAME!r}")
    try:
        model = build(ckpt["config"])
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: cannot rebuild the post-decoder ({e})") from e
    return model.to(device).eval()


def bytes_per_pixel(model: PostDecoder) -> float:
    c, s = model.config["channels"], model.config["scale"]
    return 4.0 * (c / (s * s) + 3) * PEAK_FACTOR


def default_max_pixels(model: PostDecoder) -> int:
    return min(MAX_PIXELS, int(limits.MEMORY_BUDGET // bytes_per_pixel(model)))


def check_pixels(model: PostDecoder, height: int, width: int, max_pixels: int | None,
                 stream: bool = False) -> None:
    limit = default_max_pixels(model) if max_pixels is None else int(max_pixels)
    if max_pixels is not None and (isinstance(max_pixels, bool) or limit != max_pixels
                                   or limit < 1):
        raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    if height * width <= limit:
        return
    err = limits.StreamPixelLimitError if stream else limits.PixelLimitError
    raise err(f"{'the stream claims a' if stream else 'a'} {width}x{height} image "
              f"({height * width:,} pixels), over the limit of {limit:,} pixels; raise it with "
              f"max_pixels / --max-pixels")



# ---- the stage -------------------------------------------------------------------------------

def enhance(decoded: np.ndarray, qp: int, model: PostDecoder) -> np.ndarray:
    """The stage on an HEVC decode (uint8 H x W x 3) -> uint8, bit-exact across thread counts."""
    check_rgb_uint8(decoded)
    h, w = decoded.shape[:2]
    dev = next(model.parameters()).device
    with exact_mode(), limits.out_of_memory_as(f"post-decoding a {w}x{h} image"):
        x = to_tensor(decoded, device=dev)
        y = model(x, torch.tensor([float(qp)]))
        if not bool(torch.isfinite(y).all()):
            raise ValueError("the post-decoder gave non-finite pixels (broken weights?)")
        return to_image(y)


# ---- encoding --------------------------------------------------------------------------------

def wrap(hevc_data: bytes, qp: int, height: int, width: int, model: PostDecoder) -> bytes:
    """An HEVC stream (``codec.hevc.encode``) in the container, for ``model`` to decode."""
    return container.pack(container.Header(model_hash(model), int(qp), height, width),
                          hevc_data)


def encode(image: np.ndarray, model: PostDecoder, qp: int | None = None,
           target_bpp: float | None = None, ffmpeg: str = "ffmpeg",
           preset: str = hevc.DEFAULT_PRESET, max_pixels: int | None = None,
           hevc_encode=None) -> EncodeResult:
    """Code ``image`` at ``qp``, or at the smallest QP whose whole file (container included)
    is at or under ``target_bpp`` (neither: QP 32). ``hevc_encode(image, qp) -> bytes`` may
    replace ``codec.hevc.encode`` (a cache of encodes)."""
    t0 = time.perf_counter()
    check_rgb_uint8(image)
    if qp is not None and target_bpp is not None:
        raise ValueError("give qp or target_bpp, not both")
    h, w = image.shape[:2]
    check_pixels(model, h, w, max_pixels)
    code = hevc_encode or (lambda im, q: hevc.encode(im, q, ffmpeg, preset, "hevc-bpgcfg-pd"))

    def at(q: int) -> bytes:
        return wrap(code(image, q), q, h, w, model)

    if target_bpp is None:
        q = 32 if qp is None else int(qp)
        if not 0 <= q <= container.QP_MAX:
            raise ValueError(f"QP {qp} out of range 0..{container.QP_MAX}")
        data = at(q)
    else:
        q, data = search_qp(at, limits.check_target_bpp(target_bpp), h, w)
    return EncodeResult(data, bits_per_pixel(len(data), h, w), q, time.perf_counter() - t0)


def search_qp(at, target: float, h: int, w: int) -> tuple[int, bytes]:
    """(QP, file) of the smallest QP whose file ``at(qp)`` is at or under ``target`` bpp for an
    ``h`` x ``w`` image (bisection: the rate falls as QP grows)."""
    lo, hi = 0, container.QP_MAX
    best = at(hi)
    if bits_per_pixel(len(best), h, w) > target:
        raise RateControlError(f"target {target} bpp is below what HEVC reaches on this image "
                               f"({bits_per_pixel(len(best), h, w):.4f} bpp at QP {hi})")
    found = hi
    while lo < found:
        mid = (lo + found) // 2
        data = at(mid)
        if bits_per_pixel(len(data), h, w) <= target:
            found, best = mid, data
        else:
            lo = mid + 1
    return found, best


def compress(image: np.ndarray, model: PostDecoder, **kw) -> bytes:
    return encode(image, model, **kw).data


# ---- decoding --------------------------------------------------------------------------------

def check_stream(data: bytes, model: PostDecoder,
                 max_pixels: int | None = None) -> tuple[container.Header, bytes]:
    """The container's header and payload, refused (``BitstreamError``) unless ``model``
    decodes it and its picture is within ``max_pixels``."""
    header, payload = container.unpack(data)
    if header.weights_hash != model_hash(model):
        raise BitstreamError(f"stream was made for other post-decoder weights (hash "
                             f"{header.weights_hash.hex()}, this checkpoint "
                             f"{model_hash(model).hex()}): use the same checkpoint")
    check_pixels(model, header.height, header.width, max_pixels, stream=True)
    return header, payload


def decode(data: bytes, model: PostDecoder, max_pixels: int | None = None,
           ffmpeg: str = "ffmpeg") -> DecodeResult:
    t0 = time.perf_counter()
    header, payload = check_stream(data, model, max_pixels)
    try:
        decoded = hevc.decode(payload, ffmpeg, "hevc-bpgcfg-pd")
    except hevc.HevcUnavailable:
        raise
    except hevc.HevcError as e:
        raise BitstreamError(f"corrupt stream: the HEVC payload does not decode ({e})") from e
    if decoded.shape[:2] != (header.height, header.width):
        raise BitstreamError(f"corrupt stream: the HEVC payload holds a {decoded.shape[1]}x"
                             f"{decoded.shape[0]} picture, the header says {header.width}x"
                             f"{header.height}")
    t1 = time.perf_counter()
    image = enhance(decoded, header.qp, model)
    t2 = time.perf_counter()
    return DecodeResult(image, bits_per_pixel(len(data), header.height, header.width),
                        header.qp, t1 - t0, t2 - t1, t2 - t0)


def decompress(data: bytes, model: PostDecoder, max_pixels: int | None = None,
               ffmpeg: str = "ffmpeg") -> np.ndarray:
    return decode(data, model, max_pixels, ffmpeg).image
