"""Codec backends behind one interface (:class:`Backend`), built by name with :func:`make_backend`.

Names: ``jpeg`` (4:2:0), ``jpeg444``, ``webp``, ``avif``, ``jxl``, ``hevc-bpgcfg`` (HEVC intra
with BPG's settings via ffmpeg/libx265), ``bpg`` (needs ``bpgenc``), ``hevc-bpgcfg-pd``
(hevc-bpgcfg's bits + the learned post-decoder ``BackendOptions.postdecode``) and the learned
codecs: ``learned-<label>``, one per checkpoint in ``BackendOptions.learned`` (see
``distortions.checkpoints``), or plain ``learned`` with ``BackendOptions.checkpoint``.

Adding a backend: its module, and one ``register`` line below (``distortions.backends.registry``).
"""

from __future__ import annotations

from . import hevc, learned, pillow_codecs, postdecode
from .base import Backend, BackendError, BackendUnavailable, ParamSpec
from .hevc import BpgBackend, HevcBpgcfgBackend
from .learned import LearnedBackend
from .pillow_codecs import AvifBackend, JpegBackend, JxlBackend, WebpBackend
from .postdecode import PostDecodedHevcBackend
from .registry import (
    BackendOptions,
    choices_text,
    classic_names,
    default_names,
    is_known,
    make_backend,
    names,
    register,
    unregister,
)

register("jpeg", lambda o, n: pillow_codecs.JpegBackend("4:2:0"), default=True, classic=True)
register("jpeg444", lambda o, n: pillow_codecs.JpegBackend("4:4:4"), classic=True)
register("webp", lambda o, n: pillow_codecs.WebpBackend(), default=True, classic=True)
register("avif", lambda o, n: pillow_codecs.AvifBackend(), default=True, classic=True)
register("jxl", lambda o, n: pillow_codecs.JxlBackend(), default=True, classic=True)
register("hevc-bpgcfg", lambda o, n: hevc.HevcBpgcfgBackend(ffmpeg=o.ffmpeg, preset=o.x265_preset,
                                                            cache_dir=o.hevc_cache),
         default=True, classic=True, aliases=("hevc",))
register("bpg", lambda o, n: hevc.BpgBackend(o.bpgenc, o.bpgdec))
register("hevc-bpgcfg-pd", postdecode.from_options)
register("learned", learned.from_options, family=True)


__all__ = ["AvifBackend", "Backend", "BackendError", "BackendOptions", "BackendUnavailable",
           "BpgBackend", "HevcBpgcfgBackend", "JpegBackend", "JxlBackend", "LearnedBackend",
           "ParamSpec", "PostDecodedHevcBackend", "WebpBackend", "choices_text", "classic_names",
           "default_names", "is_known", "make_backend", "names", "register", "unregister"]
