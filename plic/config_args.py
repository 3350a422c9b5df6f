"""Config dataclasses whose fields carry their help, turned into argparse options, and back.

One builder for every command that takes a config dataclass (``codec.train``, ``mturk``'s
commands, ``perceptual_metric.fit``)::

    @dataclass
    class Cfg:
        seed: int = option(0, "random seed")
        mode: str = option("lin", "what to train", choices=("lin", "tune"))
        out: str = option(help="output folder", factory=lambda: str(runs_dir() / "fit"))

    add_config_args(parser, Cfg)
    cfg = config_from_args(Cfg, parser.parse_args(argv))

Every option of every config is declared this one way: ``option(default, help, **extras)``.

A field named ``batch_size`` is the option ``--batch-size``. The option's type is the
annotation's (int, float, str, bool; ``float | None`` is float), else the default's: booleans
are ``--x/--no-x``, a tuple default takes one or more values, a list default zero or more. A
field's metadata may hold ``help``, ``choices``, ``aliases`` (more option strings), ``nargs``,
``type`` (of a tuple's or a list's values) and ``default_text`` (how the help shows the
default); the help ends with the default unless it already says one or it is empty.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def option(default: Any = None, help: str = "", *, factory: Any = None, **meta: Any) -> Any:
    """A dataclass field with its help text and argparse extras (``choices``, ``aliases``...);
    ``factory`` makes the default when the config is made (e.g. a path under ``$PLIC_RUNS``)."""
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"help": help, **meta})
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default),
                                 metadata={"help": help, **meta})
    return dataclasses.field(default=default, metadata={"help": help, **meta})


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _annotated_type(f: dataclasses.Field) -> type | None:
    """int, float, str or bool from the annotation (``float | None`` is float); None otherwise."""
    if isinstance(f.type, type):
        return f.type if f.type in _TYPES.values() else None
    return _TYPES.get(str(f.type).split("|")[0].strip())


def _shown(default: Any) -> str:
    if isinstance(default, (list, tuple)):
        return " ".join(map(str, default)) or "none"
    return str(default)


def add_config_args(parser: argparse.ArgumentParser, cls: type, *,
                    skip: Iterable[str] = (), extra_help: Mapping[str, str] | None = None,
                    show_default: bool = True) -> None:
    """One option per field of ``cls`` (except ``skip``); ``extra_help`` appends text to a field's
    help (e.g. what a registry holds now)."""
    skip, extra_help = set(skip), dict(extra_help or {})
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        meta = dict(f.metadata)
        help_ = meta.pop("help", "") + extra_help.get(f.name, "")
        flags = ["--" + f.name.replace("_", "-"), *meta.pop("aliases", ())]
        default = default_of(f)
        kw: dict[str, Any] = {"dest": f.name, "default": default}
        kind = _annotated_type(f)
        if isinstance(default, bool) or kind is bool:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, help=help_, **kw)
            continue
        if isinstance(default, (tuple, list)):
            kw["nargs"] = meta.pop("nargs", "+" if isinstance(default, tuple) else "*")
            kw["type"] = meta.pop("type", type(default[0]) if default else str)
        else:  # the annotation first: a float field may have an int default
            kw["type"] = meta.pop("type", kind or (str if default is None else type(default)))
        shown = meta.pop("default_text", None) or _shown(default)
        if show_default and "default" not in help_ and default not in ("", None):
            help_ += f" (default: {shown})"
        parser.add_argument(*flags, help=help_, **kw, **meta)


def config_from_args(cls: type, ns: argparse.Namespace) -> Any:
    """``cls`` from the parsed options (other options in ``ns`` are ignored)."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(ns).items() if k in names}
    for f in dataclasses.fields(cls):
        if isinstance(default_of(f), tuple) and isinstance(values.get(f.name), list):
            values[f.name] = tuple(values[f.name])
    return cls(**values)
