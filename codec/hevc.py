"""HEVC intra with BPG's settings through ffmpeg/libx265: the one home of those settings.

BPG is one HEVC intra picture. bpgenc 0.9.8 runs x265 with preset placebo, tune ssim, constant
QP = q + 1, BT.601 full-range YCbCr 4:4:4. These functions reproduce that through Debian's
ffmpeg/libx265 and keep the raw Annex-B stream. ``distortions``' ``hevc-bpgcfg`` backend and the
learned post-decoder (``codec.postdecode``) both code through here, so their streams and
decodes are the same bytes and pixels.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from plic.image_io import check_rgb_uint8, read_image, write_png

X265_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow", "placebo")
DEFAULT_PRESET = "slow"
QP_RANGE = (0, 51)
TO_YUV = "scale=out_color_matrix=bt601:out_range=full:flags=accurate_rnd+full_chroma_int"
TO_RGB = "scale=in_color_matrix=bt601:in_range=full:flags=accurate_rnd+full_chroma_int"
FFMPEG_HINT = "install Debian's ffmpeg (`apt-get install ffmpeg`, in scripts/setup.sh)"


class HevcError(RuntimeError):
    """ffmpeg failed on one input (the message names the step and ffmpeg's last lines)."""


class HevcUnavailable(HevcError):
    """ffmpeg is not there at all."""


def which(exe: str) -> str | None:
    if os.sep in exe:
        return exe if os.path.isfile(exe) and os.access(exe, os.X_OK) else None
    return shutil.which(exe)


def find_ffmpeg(ffmpeg: str = "ffmpeg", what: str = "hevc-bpgcfg") -> str:
    exe = which(ffmpeg)
    if exe is None:
        raise HevcUnavailable(f"{what}: ffmpeg not found at {ffmpeg!r}; {FFMPEG_HINT}, or pass "
                              f"--ffmpeg PATH")
    return exe


def run(cmd: list[str], what: str, timeout: float = 600) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except FileNotFoundError as e:
        raise HevcUnavailable(f"{what}: {cmd[0]} not found; {FFMPEG_HINT}") from e
    except subprocess.TimeoutExpired as e:
        raise HevcError(f"{what}: {cmd[0]} timed out after {timeout:.0f} s") from e
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise HevcError(f"{what}: {Path(cmd[0]).name} exited {proc.returncode}: "
                        + " | ".join(tail))
    return proc


@functools.lru_cache(maxsize=8)
def ffmpeg_versions(ffmpeg: str) -> tuple[str, str]:
    """(ffmpeg version, x265 version), the latter read from a tiny real encode."""
    out = run([ffmpeg, "-hide_banner", "-version"], "hevc-bpgcfg").stdout.decode()
    m = re.search(r"ffmpeg version (\S+)", out)
    ff = m.group(1) if m else "unknown"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "v.png"
        write_png(src, np.zeros((16, 16, 3), np.uint8))
        proc = run([ffmpeg, "-hide_banner", "-loglevel", "info", "-i", str(src), "-pix_fmt",
                    "yuv444p", "-c:v", "libx265", "-x265-params", "keyint=1:qp=30",
                    "-f", "hevc", "-y", str(Path(tmp) / "v.hevc")], "hevc-bpgcfg")
    m = re.search(r"HEVC encoder version (\S+)", proc.stderr.decode(errors="replace"))
    return ff, (m.group(1) if m else "unknown")


def version(ffmpeg: str, preset: str = DEFAULT_PRESET) -> str:
    """What makes the same (image, QP) give the same bytes: ffmpeg, x265 and the settings."""
    ff, x265 = ffmpeg_versions(ffmpeg)
    return f"ffmpeg-{ff}/x265-{x265}/preset-{preset}-tune-ssim-yuv444-bt601full"


def check_preset(preset: str) -> str:
    if preset not in X265_PRESETS:
        raise ValueError(f"x265 preset must be one of {', '.join(X265_PRESETS)}, not {preset!r}")
    return preset


def encode(image: np.ndarray, qp: int, ffmpeg: str = "ffmpeg", preset: str = DEFAULT_PRESET,
           what: str = "hevc-bpgcfg") -> bytes:
    """The raw Annex-B HEVC stream of ``image`` (uint8 RGB) at constant ``qp``."""
    check_rgb_uint8(image)
    check_preset(preset)
    qp = int(qp)
    if not QP_RANGE[0] <= qp <= QP_RANGE[1]:
        raise ValueError(f"QP {qp} out of range {QP_RANGE[0]}..{QP_RANGE[1]}")
    with tempfile.TemporaryDirectory(prefix="plic-hevc-") as tmp:
        src, dst = Path(tmp) / "in.png", Path(tmp) / "out.hevc"
        write_png(src, image)
        run([find_ffmpeg(ffmpeg, what), "-hide_banner", "-loglevel", "error", "-i", str(src),
             "-vf", TO_YUV, "-pix_fmt", "yuv444p", "-c:v", "libx265",
             "-preset", preset, "-tune", "ssim",
             "-x265-params", f"keyint=1:qp={qp}:info=0:log-level=error",
             "-f", "hevc", "-y", str(dst)], f"{what} encode qp={qp}")
        return dst.read_bytes()


def decode(data: bytes, ffmpeg: str = "ffmpeg", what: str = "hevc-bpgcfg") -> np.ndarray:
    """uint8 RGB image of an Annex-B HEVC stream (the first picture)."""
    with tempfile.TemporaryDirectory(prefix="plic-hevc-") as tmp:
        src, dst = Path(tmp) / "in.hevc", Path(tmp) / "out.png"
        src.write_bytes(data)
        run([find_ffmpeg(ffmpeg, what), "-hide_banner", "-loglevel", "error", "-i", str(src),
             "-vf", TO_RGB, "-pix_fmt", "rgb24", "-frames:v", "1", "-y", str(dst)],
            f"{what} decode")
        if not dst.is_file():
            raise HevcError(f"{what} decode: ffmpeg found no picture in the stream")
        return read_image(dst)


def cached_encode(image: np.ndarray, qp: int, cache_dir: str | os.PathLike,
                  ffmpeg: str = "ffmpeg", preset: str = DEFAULT_PRESET,
                  what: str = "hevc-bpgcfg") -> bytes:
    """``encode``, its stream kept in ``cache_dir`` under a key of (the image's pixels, QP,
    ``version``): a rate search repeated with another post-decoder re-codes nothing."""
    import hashlib

    from plic.fsio import atomic_write_bytes

    check_rgb_uint8(image)
    exe = find_ffmpeg(ffmpeg, what)
    h = hashlib.sha256(version(exe, preset).encode())
    h.update(f"{image.shape}|{int(qp)}|".encode())
    h.update(np.ascontiguousarray(image).tobytes())
    path = Path(cache_dir) / h.hexdigest()[:2] / f"{h.hexdigest()}.hevc"
    if path.is_file():
        return path.read_bytes()
    data = encode(image, qp, exe, preset, what)
    atomic_write_bytes(path, data)
    return data
