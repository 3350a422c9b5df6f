"""Codec backends behind one interface (:class:`Backend`), built by name with :func:`make_backend`.

Names: ``jpeg`` (4:2:0), ``jpeg444``, ``webp``, ``avif``, ``jxl``, ``hevc-bpgcfg`` (HEVC intra
with BPG's settings via ffmpeg/libx265), ``bpg`` (needs ``bpgenc``) and the learned codecs:
``learned-<label>``, one per checkpoint in ``BackendOptions.learned`` (see
``distortions.checkpoints``), or plain ``learned`` with ``BackendOptions.checkpoint``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Backend, BackendError, BackendUnavailable, ParamSpec
from .hevc import BpgBackend, HevcBpgcfgBackend
from .learned import LearnedBackend
from .pillow_codecs import AvifBackend, JpegBackend, JxlBackend, WebpBackend

CLASSIC_CODECS = ("jpeg", "jpeg444", "webp", "avif", "jxl", "hevc-bpgcfg")
ALL_CODECS = CLASSIC_CODECS + ("bpg", "learned")
DEFAULT_CODECS = ("jpeg", "webp", "avif", "jxl", "hevc-bpgcfg")


@dataclass(frozen=True)
class BackendOptions:
    """Settings that pick binaries and speed/quality trade-offs of the backends."""

    ffmpeg: str = "ffmpeg"
    x265_preset: str = "slow"
    bpgenc: str = "bpgenc"
    bpgdec: str = "bpgdec"
    checkpoint: str | None = None  # the checkpoint of the codec called plain ``learned``
    learned: tuple[tuple[str, str], ...] = ()  # (``learned-<label>``, checkpoint path) pairs


def make_backend(name: str, options: BackendOptions | None = None) -> Backend:
    """Build the backend called ``name`` (one of :data:`ALL_CODECS`)."""
    o = options or BackendOptions()
    if name == "jpeg":
        return JpegBackend("4:2:0")
    if name == "jpeg444":
        return JpegBackend("4:4:4")
    if name == "webp":
        return WebpBackend()
    if name == "avif":
        return AvifBackend()
    if name == "jxl":
        return JxlBackend()
    if name in ("hevc-bpgcfg", "hevc"):
        return HevcBpgcfgBackend(ffmpeg=o.ffmpeg, preset=o.x265_preset)
    if name == "bpg":
        return BpgBackend(o.bpgenc, o.bpgdec)
    if name == "learned":
        if not o.checkpoint:
            raise BackendUnavailable("learned: needs a checkpoint; pass --checkpoint PATH or "
                                     "put codec checkpoints in checkpoints/")
        return LearnedBackend(o.checkpoint)
    if name.startswith("learned-"):
        paths = dict(o.learned)
        if name not in paths:
            known = ", ".join(paths) or "none"
            raise BackendUnavailable(f"{name}: no checkpoint given for this codec (learned "
                                     f"codecs here: {known}); pass --checkpoint PATH")
        return LearnedBackend(paths[name], name=name)
    raise ValueError(f"unknown codec {name!r}; choose from {', '.join(ALL_CODECS)} or "
                     f"learned-<label>")


__all__ = ["ALL_CODECS", "CLASSIC_CODECS", "DEFAULT_CODECS", "AvifBackend", "Backend",
           "BackendError", "BackendOptions", "BackendUnavailable", "BpgBackend",
           "HevcBpgcfgBackend", "JpegBackend", "JxlBackend", "LearnedBackend", "ParamSpec",
           "WebpBackend", "make_backend"]
