"""The one list of codec backends: a name, a factory and where the name is used by default.

``register(name, factory)`` adds a backend; ``make_backend``, the ``--codecs`` choices and the
``--help`` of ``python -m distortions`` (and ``benchmarks.distortions_run``, ``codec.evaluate``)
derive from it. A factory takes ``(options, name)``: the :class:`BackendOptions` of the run and
the codec name asked for (a ``family`` backend such as ``learned`` also answers to
``learned-<label>``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .base import Backend


@dataclass(frozen=True)
class BackendOptions:
    """Settings that pick binaries and speed/quality trade-offs of the backends."""

    ffmpeg: str = "ffmpeg"
    x265_preset: str = "slow"
    bpgenc: str = "bpgenc"
    bpgdec: str = "bpgdec"
    checkpoint: str | None = None  # the checkpoint of the codec called plain ``learned``
    learned: tuple[tuple[str, str], ...] = ()  # (``learned-<label>``, checkpoint path) pairs
    postdecode: str | None = None  # hevc-bpgcfg-pd's checkpoint (None: checkpoints/ default)
    hevc_cache: str | None = None  # HEVC streams kept here by hevc-bpgcfg and hevc-bpgcfg-pd


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[[BackendOptions, str], Backend]
    default: bool   # run by ``python -m distortions`` when ``--codecs`` is not given
    classic: bool   # a classic codec needing no extra binary (benchmarks.distortions_run's set)
    family: bool    # also answers to ``<name>-<label>``
    aliases: tuple[str, ...]


_REGISTRY: dict[str, Entry] = {}
_NAME = re.compile(r"[a-z][a-z0-9-]*")


def register(name: str, factory: Callable[[BackendOptions, str], Backend], *,
             default: bool = False, classic: bool = False, family: bool = False,
             aliases: tuple[str, ...] = ()) -> None:
    """Add the backend ``name``; a malformed or repeated name raises."""
    for n in (name, *aliases):
        if not isinstance(n, str) or not _NAME.fullmatch(n):
            raise ValueError(f"backend name {n!r}: lower-case letters, digits and '-'")
        if n in _REGISTRY or any(n in e.aliases for e in _REGISTRY.values()):
            raise ValueError(f"backend name {n!r} is already registered")
    if not callable(factory):
        raise TypeError(f"backend {name!r}: the factory must be callable, not {factory!r}")
    _REGISTRY[name] = Entry(name, factory, default, classic, family, tuple(aliases))


def unregister(name: str) -> None:
    """Remove ``name`` (tests that register a backend of their own)."""
    _REGISTRY.pop(name, None)


def names() -> tuple[str, ...]:
    """Every backend name, in registration order (``--codecs`` choices)."""
    return tuple(_REGISTRY)


def default_names() -> tuple[str, ...]:
    return tuple(n for n, e in _REGISTRY.items() if e.default)


def classic_names() -> tuple[str, ...]:
    return tuple(n for n, e in _REGISTRY.items() if e.classic)


def _entry(name: str) -> Entry | None:
    for e in _REGISTRY.values():
        if name == e.name or name in e.aliases or (e.family and name.startswith(e.name + "-")):
            return e
    return None


def is_known(name: str) -> bool:
    """A registered name or a member of a family (``learned-<label>``); aliases aside."""
    e = _entry(name)
    return e is not None and name not in e.aliases


def choices_text(label: str = "NAME") -> str:
    """``jpeg, ..., learned or learned-NAME``: the names an error message offers."""
    families = "".join(f" or {n}-{label}" for n, e in _REGISTRY.items() if e.family)
    return ", ".join(names()) + families


def make_backend(name: str, options: BackendOptions | None = None) -> Backend:
    """Build the backend called ``name`` (one of :func:`names`, an alias or a family member)."""
    e = _entry(name)
    if e is None:
        raise ValueError(f"unknown codec {name!r}; choose from {choices_text('<label>')}")
    return e.factory(options or BackendOptions(), name)
