"""CSV tables with a fixed schema: the contracts between packages (docs/CONTRACTS.md).

The producer of a table owns its column list and passes it here; readers pass the same list and
get a clear error when the file does not follow it. Paths inside a table are relative to the
table's own folder: ``rel_path`` and ``resolve_path`` convert.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .fsio import atomic_write_text


class SchemaError(ValueError):
    """A table whose columns or ids break its contract."""


def write_table(path: str | os.PathLike, rows: Iterable[Mapping], columns: Sequence[str],
                id_column: str | None = None) -> Path:
    """Write ``rows`` with exactly ``columns`` (atomically). Extra or missing keys are errors."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    seen = set()
    for i, row in enumerate(rows):
        keys = set(row)
        if keys != set(columns):
            missing, extra = set(columns) - keys, keys - set(columns)
            raise SchemaError(f"{path}: row {i} breaks the schema "
                              f"(missing {sorted(missing)}, extra {sorted(extra)})")
        if id_column is not None:
            if row[id_column] in seen:
                raise SchemaError(f"{path}: duplicate {id_column} {row[id_column]!r}")
            seen.add(row[id_column])
        w.writerow({k: _fmt(v) for k, v in row.items()})
    return atomic_write_text(path, buf.getvalue())


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return v


def read_table(path: str | os.PathLike, columns: Sequence[str], id_column: str | None = None):
    """Read a table as a pandas DataFrame (all columns as strings, empty cells as '')."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: table not found")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(df.columns) != list(columns):
        raise SchemaError(f"{path}: columns {list(df.columns)} != contract {list(columns)}")
    if id_column is not None and df[id_column].duplicated().any():
        dups = df.loc[df[id_column].duplicated(), id_column].tolist()[:5]
        raise SchemaError(f"{path}: duplicate {id_column} values, e.g. {dups}")
    return df


def rel_path(target: str | os.PathLike, table_path: str | os.PathLike) -> str:
    """``target`` relative to the folder of the table at ``table_path`` (posix separators)."""
    base = Path(table_path).resolve().parent
    return Path(os.path.relpath(Path(target).resolve(), base)).as_posix()


def resolve_path(value: str, table_path: str | os.PathLike) -> Path:
    """A path read from a table, resolved against the table's own folder."""
    p = Path(value)
    return p if p.is_absolute() else (Path(table_path).resolve().parent / p)
