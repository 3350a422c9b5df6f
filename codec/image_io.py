"""Image I/O. The codec boundary is uint8 RGB, shape (H, W, 3), everywhere in the project."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


class ImageReadError(ValueError):
    """An image file that is missing, unreadable or not an image."""


def to_rgb_uint8(img: Image.Image) -> np.ndarray:
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy()


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read any Pillow-readable image as uint8 RGB (H, W, 3)."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such image file")
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb_uint8(img)
    except (UnidentifiedImageError, OSError) as e:
        raise ImageReadError(f"{path}: cannot read as an image ({e})") from e


def decode_image_bytes(data: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return to_rgb_uint8(img)
    except (UnidentifiedImageError, OSError) as e:
        raise ImageReadError(f"cannot decode image bytes ({e})") from e


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
