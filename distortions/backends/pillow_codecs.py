"""Classic codecs through Pillow: JPEG (libjpeg-turbo), WebP, AVIF, JPEG XL (pillow-jxl-plugin)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, features

from plic.image_io import check_rgb_uint8, decode_image_bytes

from .base import Backend, BackendError, BackendUnavailable, ParamSpec

QUALITY = ParamSpec("quality", 0, 100, more_bits_when="higher", integer=True)


class PillowBackend(Backend):
    """Shared encode/decode through ``Image.save`` with a format and fixed options: a codec
    declares its ``format``, Pillow ``feature``, the ``fixed`` options beside the quality and
    their ``settings_tag`` in its version string."""

    format: str = ""
    feature: str = ""  # Pillow feature name for check/version
    install_hint: str = "reinstall Pillow (>=11) from PyPI wheels, which bundle the codec"
    settings_tag: str = "default"
    fixed: tuple[tuple[str, object], ...] = ()

    def options(self, param: float) -> dict:
        return {"quality": int(round(param)), **dict(self.fixed)}

    def lib_version(self) -> str:
        return str(features.version(self.feature))

    @property
    def version(self) -> str:
        import PIL

        return f"pillow-{PIL.__version__}/{self.feature}-{self.lib_version()}/{self.settings()}"

    def settings(self) -> str:
        return self.settings_tag

    def check_available(self) -> None:
        if not features.check(self.feature):
            raise BackendUnavailable(f"{self.name}: this Pillow has no {self.feature} support; "
                                     f"{self.install_hint}")

    def encode(self, image: np.ndarray, param: float) -> bytes:
        check_rgb_uint8(image)
        buf = io.BytesIO()
        try:
            Image.fromarray(image, "RGB").save(buf, format=self.format, **self.options(param))
        except (OSError, ValueError, KeyError) as e:
            raise BackendError(f"{self.name}: encoding at {self.param.name}={param} "
                               f"failed: {e}") from e
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        return decode_image_bytes(data)


class JpegBackend(PillowBackend):
    """JPEG, libjpeg-turbo through Pillow; 4:2:0 chroma by default (``jpeg``), 4:4:4 as ``jpeg444``.

    Quality 1..100 (0 is an alias of 1 in libjpeg). Standard tables, optimised Huffman coding off
    (the libjpeg default), baseline: the JPEG everyone compares against.
    """

    ext = "jpg"
    format = "JPEG"
    feature = "jpg"
    param = ParamSpec("quality", 1, 100, more_bits_when="higher", integer=True)

    def __init__(self, subsampling: str = "4:2:0"):
        if subsampling not in ("4:2:0", "4:4:4"):
            raise ValueError(f"jpeg subsampling must be 4:2:0 or 4:4:4, not {subsampling!r}")
        self.subsampling = subsampling
        self.name = "jpeg" if subsampling == "4:2:0" else "jpeg444"

    def lib_version(self) -> str:
        turbo = features.version("libjpeg_turbo")
        return f"turbo-{turbo}" if turbo else str(features.version("jpg"))

    def settings(self) -> str:
        return self.subsampling.replace(":", "")

    def options(self, param: float) -> dict:
        return {"quality": int(round(param)), "subsampling": self.subsampling}


class WebpBackend(PillowBackend):
    """Lossy WebP (libwebp), quality 0..100, method 6 (slowest, best)."""

    name = ext = feature = "webp"
    format = "WEBP"
    param = QUALITY
    settings_tag = "method6"
    fixed = (("method", 6), ("lossless", False))


class AvifBackend(PillowBackend):
    """AVIF (libavif through Pillow), quality 0..100, 4:4:4, speed 6, one thread."""

    name = ext = feature = "avif"
    format = "AVIF"
    param = QUALITY
    settings_tag = "yuv444-speed6"
    fixed = (("subsampling", "4:4:4"), ("speed", 6), ("max_threads", 1))


class JxlBackend(PillowBackend):
    """JPEG XL (libjxl through pillow-jxl-plugin), quality 0..100, effort 7, one thread."""

    name = ext = feature = "jxl"
    format = "JXL"
    # quality 100 means distance 0, which libjxl only accepts as lossless
    param = ParamSpec("quality", 0, 99, more_bits_when="higher", integer=True)
    settings_tag = "effort7"
    fixed = (("effort", 7), ("num_threads", 1), ("lossless", False))

    def _plugin(self):
        try:
            import pillow_jxl  # noqa: F401  (registers the JXL format with Pillow)
        except ImportError as e:
            raise BackendUnavailable(
                "jxl: pillow-jxl-plugin is not installed; `pip install pillow-jxl-plugin` "
                "(it is in the project's `distortions` extra)") from e

    def check_available(self) -> None:
        self._plugin()

    def lib_version(self) -> str:
        import importlib.metadata as md

        return md.version("pillow-jxl-plugin")

    def encode(self, image: np.ndarray, param: float) -> bytes:
        self._plugin()
        return super().encode(image, param)

    def decode(self, data: bytes) -> np.ndarray:
        self._plugin()
        return super().decode(data)
