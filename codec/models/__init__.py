"""Registry of codec models: ``build(name, preset="small", **overrides)``, ``names()``.

Every model has ``model.name``, ``model.config`` (a plain dict; ``build(model.name,
**model.config)`` rebuilds it), ``model.stride``, the training forward ``model(x, delta)`` and
``top_prior_parameters()`` / ``main_parameters()`` (see ``codec.models.base``).

Names: ``hific`` (the seed model), ``bmshj2018-factorized``, ``bmshj2018-hyperprior`` and, once
its module exists, ``mbt2018``. Presets: ``paper``, ``small`` (CPU-trainable), ``tiny`` (tests).
"""

from __future__ import annotations

import dataclasses
import importlib

from torch import nn

_REGISTRY: dict[str, type] = {}
# modules that register models when imported; a missing optional one is skipped
_BUILTIN_MODULES = ("codec.models.hific", "codec.models.bmshj2018", "codec.models.mbt2018",
                    "codec.context.models")
_loaded = False


def register(name: str):
    """Class decorator: ``@register("hific")`` adds a model class under ``name``."""

    def deco(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered to {_REGISTRY[name]}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


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
