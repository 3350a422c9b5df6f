"""HEVC intra coding with BPG's settings (``hevc-bpgcfg``), and real BPG when ``bpgenc`` exists.

BPG is one HEVC intra picture. bpgenc 0.9.8 runs x265 with preset placebo, tune ssim, constant
QP = q + 1, BT.601 full-range YCbCr 4:4:4. ``hevc-bpgcfg`` reproduces that through Debian's
ffmpeg/libx265 and keeps the raw Annex-B stream (bpp counts all of it). Measured on the 24 Kodak
images it sits at -0.1% BD-rate against the published BPG curve (../shared/README.md), so it
stands in for BPG; it is named honestly because it is not bpgenc's file format. ``-preset slow``
matches placebo within noise and is the default here because it is several times faster.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from codec import hevc as _hevc
from codec.hevc import FFMPEG_HINT, X265_PRESETS
from plic.image_io import check_rgb_uint8, read_image, write_png

from .base import Backend, BackendError, BackendUnavailable, ParamSpec

__all__ = ["FFMPEG_HINT", "X265_PRESETS", "BpgBackend", "HevcBpgcfgBackend"]
_which = _hevc.which


@contextlib.contextmanager
def backend_errors():
    """codec.hevc's errors as the backends' (unavailable: missing ffmpeg; else one input)."""
    try:
        yield
    except _hevc.HevcUnavailable as e:
        raise BackendUnavailable(str(e)) from e
    except _hevc.HevcError as e:
        raise BackendError(str(e)) from e


def _run(cmd: list[str], what: str, timeout: float = 600) -> subprocess.CompletedProcess:
    with backend_errors():
        return _hevc.run(cmd, what, timeout)


class HevcBpgcfgBackend(Backend):
    """HEVC intra via ffmpeg/libx265 with bpgenc's settings (``codec.hevc``). Parameter: QP
    0..51 (BPG q = QP-1)."""

    name = "hevc-bpgcfg"
    ext = "hevc"
    param = ParamSpec("qp", 0, 51, more_bits_when="lower", integer=True)

    def __init__(self, ffmpeg: str = "ffmpeg", preset: str = "slow", cache_dir=None):
        self.ffmpeg, self.preset = ffmpeg, _hevc.check_preset(preset)
        self.cache_dir = cache_dir  # keep streams here (codec.hevc.cached_encode); None: don't

    def _exe(self) -> str:
        with backend_errors():
            return _hevc.find_ffmpeg(self.ffmpeg, self.name)

    def check_available(self) -> None:
        with backend_errors():
            _hevc.ffmpeg_versions(self._exe())

    @property
    def version(self) -> str:
        with backend_errors():
            return _hevc.version(self._exe(), self.preset)

    def encode(self, image: np.ndarray, param: float) -> bytes:
        with backend_errors():
            if self.cache_dir:
                return _hevc.cached_encode(image, int(round(param)), self.cache_dir,
                                           self._exe(), self.preset, self.name)
            return _hevc.encode(image, int(round(param)), self._exe(), self.preset, self.name)

    def decode(self, data: bytes) -> np.ndarray:
        with backend_errors():
            return _hevc.decode(data, self._exe(), self.name)


class BpgBackend(Backend):
    """Fabrice Bellard's BPG through ``bpgenc``/``bpgdec`` (when installed). Parameter: q 0..51.

    4:4:4, YCbCr BT.601, 8 bit, x265 (bpgenc's defaults apart from chroma format).
    """

    name = "bpg"
    ext = "bpg"
    param = ParamSpec("q", 0, 51, more_bits_when="lower", integer=True)

    def __init__(self, bpgenc: str = "bpgenc", bpgdec: str = "bpgdec"):
        self.bpgenc, self.bpgdec = bpgenc, bpgdec

    def _exes(self) -> tuple[str, str]:
        enc, dec = _which(self.bpgenc), _which(self.bpgdec)
        if enc is None or dec is None:
            raise BackendUnavailable(
                f"bpg: {self.bpgenc if enc is None else self.bpgdec} not found on PATH; build "
                f"libbpg (https://bellard.org/bpg/) or use the hevc-bpgcfg codec, which "
                f"reproduces BPG's settings through ffmpeg")
        return enc, dec

    def check_available(self) -> None:
        self._exes()

    @property
    def version(self) -> str:
        enc, _ = self._exes()
        proc = subprocess.run([enc, "-h"], capture_output=True)
        text = (proc.stdout + proc.stderr).decode(errors="replace")
        m = re.search(r"version (\S+)", text)
        return f"bpgenc-{m.group(1) if m else 'unknown'}/yuv444-x265"

    def encode(self, image: np.ndarray, param: float) -> bytes:
        check_rgb_uint8(image)
        enc, _ = self._exes()
        with tempfile.TemporaryDirectory(prefix="plic-bpg-") as tmp:
            src, dst = Path(tmp) / "in.png", Path(tmp) / "out.bpg"
            write_png(src, image)
            _run([enc, "-q", str(int(round(param))), "-f", "444", "-o", str(dst), str(src)],
                 "bpg encode")
            return dst.read_bytes()

    def decode(self, data: bytes) -> np.ndarray:
        _, dec = self._exes()
        with tempfile.TemporaryDirectory(prefix="plic-bpg-") as tmp:
            src, dst = Path(tmp) / "in.bpg", Path(tmp) / "out.png"
            src.write_bytes(data)
            _run([dec, "-o", str(dst), str(src)], "bpg decode")
            return read_image(dst)
