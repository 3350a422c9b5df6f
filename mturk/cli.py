"""Config dataclasses whose fields carry their help text, turned into argparse options.

    @dataclass
    class Cfg:
        seed: int = field(default=0, metadata={"help": "random seed"})

    add_config_args(parser, Cfg); cfg = config_from_args(Cfg, parser.parse_args(argv))
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any


def add_config_args(parser: argparse.ArgumentParser, cls: type) -> None:
    for f in dataclasses.fields(cls):
        opt = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else None
        kind = f.type if isinstance(f.type, type) else {"int": int, "float": float, "str": str,
                                                         "bool": bool}.get(str(f.type), str)
        if kind is bool:
            parser.add_argument(opt, action=argparse.BooleanOptionalAction, default=default,
                                help=help_text)
        else:
            parser.add_argument(opt, type=kind, default=default,
                                help=f"{help_text} (default: {default})")


def config_from_args(cls: type, ns: argparse.Namespace) -> Any:
    return cls(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(cls)})
