"""What every command shares: its parser, its one error path, validated numbers, safe outputs.

One shape for every command (``python -m ...`` and the console scripts of pyproject.toml)::

    PROG = "python -m codec.compress"

    @command(PROG)
    def main(argv=None) -> int:
        p = parser(PROG, __doc__)          # or Parser(prog=PROG, ...)
        ...                                # options; config dataclasses: plic.config_args
        args = p.parse_args(argv)
        ...                                # raise CliError("...") for a bad input
        return 0

The one error path: a usage mistake (``Parser``), a ``CliError``, a ``ValueError`` (the
project's own input errors derive from it) or an ``OSError`` about a file (missing, existing,
a folder, not allowed) is ONE line ``NAME: error: ...`` on stderr (NAME: PROG without
``python -m ``) and exit status 2, never a traceback; Ctrl-C is one line and exit status 130.
Anything else is a bug and keeps its traceback (with ``$PLIC_TRACEBACK`` set, every error
does). ``main(argv)`` returns the status (a usage mistake raises ``SystemExit(2)``, as argparse
does), so tests call it in-process. A command checks its inputs before it writes anything, so
a refused run leaves nothing behind; ``check_output``/``write_output`` do that for a single
output file.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .fsio import atomic_write_bytes

#: What a command reports in one line (exit status 2): bad input, not bugs.
INPUT_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError,
    NotADirectoryError)

#: Set (to anything) to see the traceback behind a one-line error, e.g. when debugging.
TRACEBACK_ENV = "PLIC_TRACEBACK"


class CliError(Exception):
    """A problem the command reports in one line (exit status 2)."""


def name_of(prog: str) -> str:
    """How an error names the command: ``prog`` without a leading ``python -m ``."""
    return prog.removeprefix("python -m ")


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line: ``name: error: ... (see --help)``, the name
    being ``prog`` without ``python -m `` (``name_of``)."""

    def error(self, message: str):
        fail(f"{name_of(self.prog)}: error: {message} (see --help)")


def parser(prog: str, description: str | None = None, **kw) -> Parser:
    """A command's parser: ``prog`` as the user types it, the module's docstring as written."""
    kw.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
    return Parser(prog=prog, description=description, **kw)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def fail(message: str, status: int = 2):
    """Print ``message`` on one line on stderr and exit with ``status``."""
    print(one_line(message), file=sys.stderr)
    raise SystemExit(status)


def message_of(e: BaseException | str) -> str:
    """One line for ``e``: an OSError as ``FILE: reason``, else its text (or its type)."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        return one_line(f"{e.filename}: {e.strerror}")
    if isinstance(e, KeyError) and e.args:
        return one_line(str(e.args[0]))
    return one_line(str(e)) or type(e).__name__


def report(e: BaseException | str, prog: str | None = None) -> int:
    """Print ``[name: ]error: <e>`` on one line on stderr (``name_of(prog)``); the exit status
    of a failed command (2)."""
    head = f"{name_of(prog)}: error" if prog else "error"
    print(f"{head}: {message_of(e)}", file=sys.stderr)
    return 2


def command(prog: str, errors: tuple[type[BaseException], ...] = ()) -> Callable:
    """Decorate a command's ``main(argv=None) -> int`` with the one error path: a ``CliError``,
    one of ``INPUT_ERRORS`` or of ``errors`` becomes one line ``name: error: ...`` on stderr and
    status 2; ``KeyboardInterrupt`` one line and status 130."""
    caught = (CliError, *INPUT_ERRORS, *errors)

    def wrap(fn: Callable[..., int | None]) -> Callable[..., int]:
        @functools.wraps(fn)
        def main(argv=None, *args, **kwargs) -> int:
            try:
                return fn(argv, *args, **kwargs) or 0
            except KeyboardInterrupt:
                print(f"{name_of(prog)}: interrupted", file=sys.stderr)
                return 130
            except caught as e:
                if os.environ.get(TRACEBACK_ENV):
                    raise
                return report(e, prog)

        main.prog = prog
        return main

    return wrap


# ---- numbers ---------------------------------------------------------------------------------

def number(kind=float, lo=None, hi=None, lo_open=False, allow_zero=False):
    """An argparse ``type``: a finite ``kind`` in [lo, hi] ((lo, hi] with ``lo_open``);
    ``allow_zero`` lets 0 through as well (e.g. "0: the default")."""
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if allow_zero and v == 0:
            return v
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text} is not finite")
        if (lo is not None and (v <= lo if lo_open else v < lo)) or (hi is not None and v > hi):
            left = "(" if lo_open else "["
            raise argparse.ArgumentTypeError(
                f"{text} is out of range {left}{'-inf' if lo is None else f'{lo:g}'}, "
                f"{'inf' if hi is None else f'{hi:g}'}]" + (" (or 0)" if allow_zero else ""))
        return v
    return parse


def checked(validate):
    """An argparse ``type`` from the API's own validator (``ValueError`` -> a usage error with
    its message), so a command and the API accept the same values and say the same range."""
    def parse(text: str):
        try:
            return validate(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


def positive_numbers(message: str, finite: bool = False, empty: bool = False):
    """An argparse ``type``: a comma-separated list of numbers > 0 (a tuple; ``finite``: inf
    refused too; ``empty``: no numbers at all accepted); ``message`` says what must be
    positive."""
    def parse(text: str) -> tuple[float, ...]:
        try:
            vals = tuple(float(v) for v in text.split(",") if v.strip())
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}"
                                             ) from e
        bad = (lambda v: not (math.isfinite(v) and v > 0)) if finite else (lambda v: v <= 0)
        if (not vals and not empty) or any(bad(v) for v in vals):
            raise argparse.ArgumentTypeError(f"{message}: {text!r}")
        return vals
    return parse


def device(text: str) -> str:
    """An argparse ``type``: a torch device this machine has."""
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a torch device") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text}: no CUDA device on this machine")
    return text


# ---- output files ----------------------------------------------------------------------------

def check_output(path: str | os.PathLike, source: str | os.PathLike | None = None) -> Path:
    """Refuse, before any work, an output that cannot be written: a folder, a read-only file,
    a path under something that is not a folder, or the ``source`` file itself."""
    path = Path(path)
    if source is not None and path.exists() and Path(source).exists() \
            and path.samefile(source):
        raise CliError(f"{path}: is the input file; write the output elsewhere")
    if path.is_dir():
        raise CliError(f"{path}: is a folder, not a file")
    if path.exists() and not os.stat(path).st_mode & 0o222:
        raise CliError(f"{path}: is read-only")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise CliError(f"{path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CliError(f"{path}: cannot write in {parent}")
    return path


def write_output(path: Path, data: bytes) -> None:
    """``data`` to ``path`` atomically, creating missing folders; on failure nothing is left
    (the folders made for it are removed again) and the reason is a ``CliError``."""
    made = []
    parent = path.parent
    while not parent.exists():
        made.append(parent)
        parent = parent.parent
    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        for d in made:  # deepest first
            try:
                d.rmdir()
            except OSError:
                break
        raise CliError(f"{path}: cannot write ({e.strerror or e})") from None
