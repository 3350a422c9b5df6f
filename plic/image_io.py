"""Image I/O. The codec boundary is uint8 RGB, shape (H, W, 3), everywhere in the project.

Reading (``to_rgb_uint8``): one conversion per mode Pillow opens, nothing guessed.

| Pillow mode | read as |
| --- | --- |
| RGB | as stored (16-bit RGB files: Pillow keeps each sample's high byte, ``v >> 8``) |
| 1, L, P, RGBX, YCbCr, HSV, CMYK | Pillow's conversion to RGB (CMYK: no ICC profile applied) |
| I;16, I;16L, I;16B, I;16N; I from PNG or PGM/PPM | 16-bit gray: the high byte, ``v >> 8`` |
| RGBA, LA, PA, RGBa; any with a transparency key | alpha: see below |
| F (float), LAB, La, I from other formats | refused: no defined range, or no conversion |

Alpha: an alpha channel that is opaque everywhere carries nothing and is dropped; any other is
refused (``ImageReadError``) unless ``alpha="drop"`` (``--alpha drop``), which codes the stored
colours and discards the alpha. Multi-frame files (GIF, APNG, TIFF pages, MPO) give their first
frame; EXIF orientation is not applied (the pixels as stored).

Size: ``max_pixels`` is checked from the header, before any pixel is decoded; without it
Pillow's own decompression-bomb limit applies. Either way an image too large is a one-line
``ImageReadError``.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

ALPHA_POLICIES = ("error", "drop")
_TO_RGB = {"RGB", "1", "L", "P", "RGBX", "YCbCr", "HSV", "CMYK"}
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}
_WITH_ALPHA = {"RGBA", "LA", "PA", "RGBa"}
_pillow_limit = threading.Lock()


class ImageReadError(ValueError):
    """An image file that is missing, unreadable, not an image, or one this codec refuses."""


def _sixteen_bit(img: Image.Image) -> bool:
    return img.mode in _SIXTEEN_BIT or (img.mode == "I" and img.format in ("PNG", "PPM"))


def to_rgb_uint8(img: Image.Image, alpha: str = "error") -> np.ndarray:
    """uint8 (H, W, 3) by the table in the module doc; ``ImageReadError`` for what it refuses."""
    if alpha not in ALPHA_POLICIES:
        raise ValueError(f"alpha must be one of {ALPHA_POLICIES}, got {alpha!r}")
    mode = img.mode
    keyed = "transparency" in img.info
    if _sixteen_bit(img):
        if keyed and alpha != "drop":
            raise ImageReadError("16-bit image with a transparency key: pass alpha='drop' "
                                 "(--alpha drop) to code it without transparency")
        v = np.asarray(img).astype(np.int64)
        if v.min() < 0 or v.max() > 65535:
            raise ImageReadError(f"mode {mode} samples outside 0..65535")
        return np.repeat((v >> 8).astype(np.uint8)[:, :, None], 3, axis=2)
    if mode in _WITH_ALPHA or (keyed and mode in _TO_RGB):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.uint8)
        if alpha != "drop" and rgba[:, :, 3].min() < 255:
            raise ImageReadError(f"mode {mode} image with transparent pixels: pass "
                                 "alpha='drop' (--alpha drop) to code its colours without "
                                 "the alpha channel")
        return rgba[:, :, :3].copy()
    if mode in _TO_RGB:
        return np.asarray(img if mode == "RGB" else img.convert("RGB"), dtype=np.uint8).copy()
    why = {"F": "float samples have no defined range; convert to 8- or 16-bit",
           "I": "32-bit integer samples have no defined range; convert to 8- or 16-bit",
           "LAB": "Pillow has no colorimetric LAB to RGB conversion; convert to RGB"}
    raise ImageReadError(f"unsupported image mode {mode}: {why.get(mode, 'convert to RGB')}")


@contextlib.contextmanager
def _size_checked(max_pixels: int | None):
    """Pillow's decompression-bomb check, or ours (``max_pixels``) in its place."""
    with _pillow_limit, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        old = Image.MAX_IMAGE_PIXELS
        if max_pixels is not None:
            Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = old


def _open(source, name: str, alpha: str, max_pixels: int | None) -> np.ndarray:
    try:
        with _size_checked(max_pixels), Image.open(source) as img:
            w, h = img.size
            if max_pixels is not None and w * h > max_pixels:
                raise ImageReadError(f"a {w}x{h} image ({w * h:,} pixels), over the limit of "
                                     f"{max_pixels:,} pixels (max_pixels / --max-pixels)")
            img.load()
            return to_rgb_uint8(img, alpha)
    except ImageReadError as e:
        raise ImageReadError(f"{name}: {e}") from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"{name}: too large ({e})") from None
    except MemoryError:
        raise
    except Exception as e:  # Pillow's decoders raise many types on malformed files
        msg = " ".join(str(e).split()) or type(e).__name__
        raise ImageReadError(f"{name}: cannot read as an image ({msg})") from e


def read_image(path: str | os.PathLike, alpha: str = "error",
               max_pixels: int | None = None) -> np.ndarray:
    """Read a Pillow-readable image as uint8 RGB (H, W, 3), converted by the module doc's
    table; ``ImageReadError`` (one line, naming the file) for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: {'is a folder' if path.is_dir() else 'no such image file'}")
    return _open(path, str(path), alpha, max_pixels)


def decode_image_bytes(data: bytes, alpha: str = "error") -> np.ndarray:
    return _open(io.BytesIO(data), "image bytes", alpha, None)


def check_rgb_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise TypeError(f"{name} must be a uint8 numpy array, got {type(image).__name__}"
                        f"{'' if not isinstance(image, np.ndarray) else ' of ' + str(image.dtype)}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3), got {image.shape}")
    return image


def png_bytes(image: np.ndarray, compress_level: int = 6) -> bytes:
    check_rgb_uint8(image)
    buf = io.BytesIO()
    Image.fromarray(image, "RGB").save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write uint8 RGB as PNG atomically; returns the path."""
    from .fsio import atomic_write_bytes

    return atomic_write_bytes(path, png_bytes(image))


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    if size > min(h, w):
        raise ValueError(f"crop {size} larger than image {w}x{h}")
    y, x = (h - size) // 2, (w - size) // 2
    return image[y : y + size, x : x + size]


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file from its header, no pixel decoded; ``ImageReadError``
    (one line, naming the file) when Pillow cannot read it."""
    try:
        with _size_checked(None), Image.open(path) as img:
            return img.size
    except Exception as e:  # Pillow raises many types on malformed files
        msg = " ".join(str(e).split()) or type(e).__name__
        raise ImageReadError(f"{path}: cannot read as an image ({msg})") from e


def jpeg_round_trip(image: np.ndarray, quality: int,
                    subsampling: int | None = None) -> tuple[np.ndarray, bytes]:
    """(decoded uint8 RGB, the JPEG file) of ``image`` coded by Pillow at ``quality``;
    ``subsampling`` as Pillow's (None: its default, 4:2:0; 0: 4:4:4)."""
    check_rgb_uint8(image)
    buf = io.BytesIO()
    opts = {} if subsampling is None else {"subsampling": subsampling}
    Image.fromarray(image, "RGB").save(buf, format="JPEG", quality=int(quality), **opts)
    data = buf.getvalue()
    return decode_image_bytes(data), data


def to_tensor(image: np.ndarray, unit: bool = True, batch: bool = True, *, dtype=None,
              device=None):
    """uint8 RGB (H, W, 3) -> float32 torch tensor (1, 3, H, W) (``batch``, else (3, H, W)), on
    [0, 1] (``unit``) or [0, 255]. A stack (N, H, W, 3) gives (N, 3, H, W). The one conversion
    at the codec boundary; k / 255 * 255 == k in float32 for every byte, so either range gives
    the same values after scaling. ``dtype``: another float type (torch.float64); ``device``:
    where the bytes go before the conversion, so the scaling runs there."""
    import torch

    if not image.flags.writeable:  # e.g. np.asarray(PIL image): torch warns on a read-only one
        image = image.copy()
    x = torch.from_numpy(np.ascontiguousarray(image))
    x = x.permute(2, 0, 1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    if device is not None:
        x = x.to(device)
    x = x.to(torch.float32 if dtype is None else dtype)
    if unit:
        x = x / 255.0
    return x[None] if batch and image.ndim == 3 else x


def to_image(x) -> np.ndarray:
    """A float torch tensor (3, H, W) or (1, 3, H, W) on [0, 1] -> uint8 RGB (H, W, 3): clamped,
    scaled by 255 and rounded half to even, on the tensor's device, then brought to the CPU.
    The one conversion back across the codec boundary (``to_tensor``'s inverse on bytes)."""
    import torch

    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"to_image takes one image, got a batch of {x.shape[0]}")
        x = x[0]
    return x.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
