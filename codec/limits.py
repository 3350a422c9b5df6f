"""Resource limits of coding: how large an image a model may code, checked before anything
large is allocated, and out-of-memory reported as such (never as a corrupt stream).

The memory of coding grows with the pixels: the transforms' activations dominate (a decoder
holds a few full-size tensors of its widest layer at once). ``bytes_per_pixel`` estimates it
from the model's own layer sizes: one probe through ``g_a`` and ``g_s`` records, per module,
the bytes of its input and output; the largest sum, per image pixel, times ``PEAK_FACTOR``.
``PEAK_FACTOR`` covers what the probe cannot see (temporaries inside GDN and ChannelNorm,
oneDNN's reordered copies, the latent decoder's buffers): measured peak resident memory of a
1024x1024 decode over that sum is 2.2 (bmshj2018-hyperprior, mbt2018) to 5.2 (hific), on the
small presets.

The default limit, ``default_max_pixels(model)``, is the largest pixel count whose estimate fits
``MEMORY_BUDGET`` (8 GiB: room on a 24 GB machine shared with other work), and never more than
the container allows (``codec.bitstream.MAX_PIXELS``). ``max_pixels`` (``--max-pixels``) sets
another limit. The pixels counted are the ones computed: the image padded to the model's
stride (a 193 x 57921 image is coded as 256 x 57984, 1.33 times its pixels). Either way the
check needs only the header and the probe (one pass of a stride x stride image, once per
model), so a stream claiming a huge image is refused in milliseconds.

Untrusted input (``codec.api.decode(..., untrusted=True)``, ``--untrusted``): the pixel limit
bounds a decode's memory, not what it costs per byte received. A few kilobytes of zero symbols
can claim millions of pixels, and a tall, thin image runs the wavefront coder for thousands of
small steps. The untrusted policy bounds the decoding work per stream byte:
``decode_work``, in pixels, is the computed pixels, plus ``STEP_PIXELS`` for every step of a
wavefront-coded latent, plus ``STREAM_PIXELS`` for any stream (what a step and a decode's fixed
costs are worth in pixels: fitted to the CPU times of ``mbt2018`` and
``bmshj2018-hyperprior`` small decodes). It may not exceed ``max_pixels_per_byte`` times the
stream's length; the default in untrusted mode is ``UNTRUSTED_PIXELS_PER_BYTE``. Like the pixel
limit it reads the header only and allocates nothing (``StreamCostError``). For a photograph
coded without a context model it is a rate floor of about 8 / ``UNTRUSTED_PIXELS_PER_BYTE``
bits per pixel; the wavefront's steps and the fixed costs ask more of small images. The default
admits every shipped checkpoint's Kodak streams at the lowest track, 0.075 bpp (110-191 pixels
of work a byte, ``hific``'s wavefront the dearest), with room for streams below the target.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from dataclasses import dataclass

import torch

from .bitstream import MAX_PIXELS, BitstreamError
from .threads import one_thread

MEMORY_BUDGET = 8 * 2**30
PEAK_FACTOR = 6.0
# untrusted input (see the module doc; measured by ``python -m benchmarks.untrusted_streams``)
STEP_PIXELS = 512                # one wavefront step costs about as much as this many pixels
STREAM_PIXELS = 8192             # and any decode about this many (parsing, calls, set-up)
UNTRUSTED_PIXELS_PER_BYTE = 320  # decoding work a stream byte may buy in untrusted mode


class PixelLimitError(ValueError):
    """An image larger than the pixel limit (``max_pixels``)."""


class StreamPixelLimitError(PixelLimitError, BitstreamError):
    """A stream whose image is larger than the decoder's limit; a ``BitstreamError`` as well,
    so a caller that skips undecodable streams skips it, but never called corrupt."""


class StreamCostError(StreamPixelLimitError):
    """A stream whose decoding work per byte is over ``max_pixels_per_byte`` (the untrusted
    policy): refused from the header, never called corrupt."""


class CodecMemoryError(MemoryError):
    """Coding ran out of memory (the stream, if any, was not judged)."""


def _tensor_bytes(obj) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, (tuple, list)):
        return sum(_tensor_bytes(o) for o in obj)
    return 0


@dataclass(frozen=True)
class Probe:
    """What one pass of a stride x stride image through ``g_a`` and ``g_s`` tells about a
    model: per stage (bottom first) its channels and downsampling (c, fh, fw), and the
    estimated peak bytes of coding per image pixel (see the module doc)."""

    stages: tuple[tuple[int, int, int], ...]
    bytes_per_pixel: float


def probe(model) -> Probe:
    """The model's ``Probe``, computed once and cached on the model (shapes only: weights may
    change, the architecture does not)."""
    cached = getattr(model, "_plic_probe", None)
    if isinstance(cached, Probe):
        return cached
    widest = 0

    def hook(module, inputs, output):
        nonlocal widest
        widest = max(widest, _tensor_bytes(inputs) + _tensor_bytes(output))

    s = model.stride
    device = next(model.parameters()).device
    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad(), one_thread(), out_of_memory_as("probing the model's memory use"):
            lat = model.analysis(torch.zeros(1, 3, s, s, device=device))
            model.g_s(torch.zeros_like(lat[0]))
    finally:
        for h in handles:
            h.remove()
    stages = tuple((t.shape[1], s // t.shape[2], s // t.shape[3]) for t in lat)
    value = Probe(stages, PEAK_FACTOR * widest / (s * s))
    object.__setattr__(model, "_plic_probe", value)
    return value


def bytes_per_pixel(model) -> float:
    """Estimated peak bytes per image pixel of coding with ``model`` (see the module doc)."""
    return probe(model).bytes_per_pixel


def default_max_pixels(model) -> int:
    """The largest image (in computed pixels: ``computed_pixels``) whose estimated coding
    memory fits ``MEMORY_BUDGET``."""
    return min(MAX_PIXELS, int(MEMORY_BUDGET // bytes_per_pixel(model)))


def padded_size(height: int, width: int, stride: int) -> tuple[int, int]:
    """The size an image is coded at: each side rounded up to a multiple of ``stride``."""
    return -(-height // stride) * stride, -(-width // stride) * stride


def computed_pixels(model, height: int, width: int) -> int:
    """The pixels the transforms compute for a ``height x width`` image (padded to the
    model's stride): what the pixel limit counts."""
    hp, wp = padded_size(height, width, model.stride)
    return hp * wp


def _positive_int(value, name: str) -> int:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and math.isfinite(value) and value >= 1 and int(value) == value
    if not ok:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_pixels(model, height: int, width: int, max_pixels: int | None,
                 stream: bool = False) -> None:
    """Refuse a ``height x width`` image whose computed pixels (``computed_pixels``) are over
    ``max_pixels`` (None: ``default_max_pixels``): ``StreamPixelLimitError`` for a stream to
    decode, ``PixelLimitError`` for an image to code. Allocates nothing but the model's one
    small probe."""
    if max_pixels is not None:
        max_pixels = _positive_int(max_pixels, "max_pixels")
    limit = default_max_pixels(model) if max_pixels is None else max_pixels
    pixels = computed_pixels(model, height, width)
    if pixels <= limit:
        return
    how = ("the default for this model: its estimated memory, "
           f"{bytes_per_pixel(model):.0f} bytes a pixel, within {MEMORY_BUDGET / 2**30:g} GiB"
           if max_pixels is None else "max_pixels")
    hp, wp = padded_size(height, width, model.stride)
    err = StreamPixelLimitError if stream else PixelLimitError
    raise err(f"{'the stream claims a' if stream else 'a'} {width}x{height} image (computed "
              f"as {wp}x{hp}, padded to the model's stride {model.stride}: {pixels:,} pixels), "
              f"over the limit of {limit:,} pixels ({how}); raise it with max_pixels / "
              "--max-pixels")


def wavefront_steps(model, height: int, width: int, coding_order: str) -> int:
    """Steps of the wavefront coder for the latent of a ``height x width`` image (0 for any
    other coding order, or a model without a context model)."""
    context = getattr(model, "context", None)
    if coding_order != "wavefront" or context is None:
        return 0
    from .context.wavefront import wavefront_steps as steps

    hp, wp = padded_size(height, width, model.stride)
    _, fh, fw = probe(model).stages[0]
    return steps(hp // fh, wp // fw, context.kernel)


def decode_work(model, height: int, width: int, coding_order: str) -> int:
    """The work of decoding a ``height x width`` image, in pixels: the computed pixels, plus
    ``STEP_PIXELS`` for each wavefront step, plus ``STREAM_PIXELS`` (see the module doc). From
    the header alone."""
    return (computed_pixels(model, height, width)
            + STEP_PIXELS * wavefront_steps(model, height, width, coding_order) + STREAM_PIXELS)


def check_work(model, height: int, width: int, coding_order: str, nbytes: int,
               max_pixels_per_byte: int) -> None:
    """The untrusted policy: ``StreamCostError`` if ``decode_work`` is over
    ``max_pixels_per_byte`` x ``nbytes`` (the stream's whole length). Allocates nothing but
    the model's one small probe."""
    limit = _positive_int(max_pixels_per_byte, "max_pixels_per_byte")
    work = decode_work(model, height, width, coding_order)
    if work <= limit * nbytes:
        return
    steps = wavefront_steps(model, height, width, coding_order)
    _refuse_work(height, width, work, f"{computed_pixels(model, height, width):,} computed "
                 "pixels" + (f" + {steps:,} wavefront steps x {STEP_PIXELS}" if steps else ""),
                 nbytes, limit)


def check_pixel_work(height: int, width: int, nbytes: int, max_pixels_per_byte: int) -> None:
    """The same bound for a decoder of another kind that computes every pixel once (the HEVC
    post-decoder, ``codec.postdecode``): its work is ``height x width + STREAM_PIXELS``. Not
    measured by ``benchmarks.untrusted_streams``."""
    limit = _positive_int(max_pixels_per_byte, "max_pixels_per_byte")
    work = height * width + STREAM_PIXELS
    if work > limit * nbytes:
        _refuse_work(height, width, work, f"{height * width:,} pixels", nbytes, limit)


def _refuse_work(height: int, width: int, work: int, parts: str, nbytes: int,
                 limit: int) -> None:
    raise StreamCostError(
        f"the stream claims a {width}x{height} image: decoding work of {work:,} pixels "
        f"({parts} + {STREAM_PIXELS} a stream) for {nbytes:,} bytes, {work / nbytes:,.0f} a "
        f"byte, over the untrusted-input limit of {limit:,} a byte (max_pixels_per_byte / "
        "--max-pixels-per-byte)")


def is_out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is an allocation failure: MemoryError (numpy's too), torch's
    OutOfMemoryError, or a torch RuntimeError from the CPU allocator."""
    if isinstance(e, (MemoryError, torch.OutOfMemoryError)):
        return True
    msg = str(e)
    return isinstance(e, RuntimeError) and ("can't allocate memory" in msg
                                            or "DefaultCPUAllocator" in msg
                                            or "out of memory" in msg.lower())


@contextlib.contextmanager
def out_of_memory_as(what: str):
    """Re-raise an allocation failure inside as one ``CodecMemoryError`` naming ``what``."""
    try:
        yield
    except (MemoryError, RuntimeError) as e:
        if not is_out_of_memory(e) or isinstance(e, CodecMemoryError):
            raise
        raise CodecMemoryError(f"out of memory {what} (not a problem of the stream: lower "
                               f"max_pixels, free memory or use a larger machine)") from e


# raw RGBA at 16 bits a sample: no image needs more, so a larger target is a mistake (1e9, inf)
MAX_TARGET_BPP = 64.0


def check_target_bpp(target_bpp) -> float:
    """``target_bpp`` as a float in (0, MAX_TARGET_BPP], else ValueError (NaN, inf, 1e9, 0)."""
    try:
        t = float(target_bpp)
    except (TypeError, ValueError):
        raise ValueError(f"target_bpp must be a number, got {target_bpp!r}") from None
    if not (math.isfinite(t) and 0 < t <= MAX_TARGET_BPP):
        raise ValueError(f"target_bpp {target_bpp} out of range (0, {MAX_TARGET_BPP:g}]")
    return t
