"""Registry of codec models: ``build(name, preset="small", **overrides)``, ``names()``.

Every model has ``model.name``, ``model.config`` (a plain dict; ``build(model.name,
**model.config)`` rebuilds it), ``model.stride``, the training forward ``model(x, delta)`` and
``top_prior_parameters()`` / ``main_parameters()`` (see ``codec.models.base``).

A model is one module in this package whose class carries ``@register(NAME, baseline=...,
anchor=...)``: the registry name, whether it is an MSE baseline (trained with rate + MSE only,
``codec.train``'s ``--loss auto``) and the published RD curve it is compared with
(``codec.train.rd``; a stem under ``../shared/anchors/rd_kodak``). Every module of the package is
imported on first use, so there is no list of names to keep in step; an import error is raised.

Names: ``hific`` (the seed model), ``bmshj2018-factorized``, ``bmshj2018-hyperprior``,
``mbt2018``. Presets: ``paper``, ``small`` (CPU-trainable), ``tiny`` (tests).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re

from torch import nn

_REGISTRY: dict[str, type] = {}
_NAME = re.compile(r"[a-z][a-z0-9.-]*")
_loaded = False


def register(name: str, *, baseline: bool = False, anchor: str | None = None):
    """Class decorator: ``@register("mbt2018", baseline=True, anchor="compressai-mbt2018_mse_cpu")``
    adds a model class under ``name``; a malformed declaration raises at import."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"model name {name!r}: lower-case letters, digits, '.' and '-'")
    if not isinstance(baseline, bool):
        raise TypeError(f"model {name!r}: baseline must be True or False, not {baseline!r}")
    if anchor is not None and not (isinstance(anchor, str) and anchor):
        raise TypeError(f"model {name!r}: anchor must be a file stem or None, not {anchor!r}")

    def deco(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered to {_REGISTRY[name]}")
        presets = getattr(cls, "presets", None)
        if not isinstance(presets, dict) or not presets:
            raise TypeError(f"model {name!r}: {cls.__name__}.presets must be a non-empty dict "
                            f"of config dataclasses")
        cls.name, cls.baseline, cls.anchor = name, baseline, anchor
        _REGISTRY[name] = cls
        return cls

    return deco


def unregister(name: str) -> None:
    """Remove ``name`` (tests that register a model of their own)."""
    _REGISTRY.pop(name, None)


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


def names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def baselines() -> list[str]:
    """The MSE baselines (``--loss auto`` trains them with rate + MSE only)."""
    return [n for n in names() if _REGISTRY[n].baseline]


def anchors() -> dict[str, str]:
    """Registry name -> the published anchor its RD curve is compared with."""
    return {n: _REGISTRY[n].anchor for n in names() if _REGISTRY[n].anchor}


def model_class(name: str) -> type:
    _load_builtins()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def presets(name: str) -> list[str]:
    return sorted(model_class(name).presets)


def build(name: str, preset: str = "small", **overrides) -> nn.Module:
    """A freshly initialised model ``name`` with config ``preset`` changed by ``overrides``."""
    cls = model_class(name)
    if preset not in cls.presets:
        raise ValueError(f"model {name!r} has no preset {preset!r}; choose from "
                         f"{sorted(cls.presets)}")
    fields = {f.name for f in dataclasses.fields(cls.presets[preset])}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown config keys for {name!r}: {unknown}; valid: {sorted(fields)}")
    if "delta_range" in overrides:
        overrides["delta_range"] = [float(v) for v in overrides["delta_range"]]
    config = dataclasses.replace(cls.presets[preset], preset=preset, **overrides)
    return cls(config)
