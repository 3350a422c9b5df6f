"""Move a study between stores: ``python -m mturk.store.copy --from SRC --to DST``.

``SRC`` and ``DST`` are a SQLite file or a ``postgresql://`` URL, in either direction. Every table
of the schema (``mturk.store.migrations``, in the order the migrations create them, so that rows
referenced come first) is copied row by row with its ids, in one transaction on each side: the
source is read under its write lock (a running study server waits for the copy, and nothing it
acknowledges is left behind), the target is written all or nothing. The study's secret comes
along, so participant links, page ids and image URLs stay valid.

The target must be empty (no row in any table, fresh or just created); a non-empty one is
refused with one line (exit 2) and left as it was. Afterwards every table's rows are counted on
both sides.
"""

from __future__ import annotations

import re
import sys

from plic.cli import command, parser, report

from .common import DBError, StoreUnavailableError
from .migrations import MIGRATIONS
from .study_db import StudyDB, is_url


def tables() -> list[str]:
    """The schema's tables, in the order the migrations create them."""
    names = []
    for _name, sql in MIGRATIONS:
        for m in re.finditer(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", sql, re.I):
            if m.group(1) not in names:
                names.append(m.group(1))
    return names


def _count(db: StudyDB, t: str) -> int:
    return db._one(f"SELECT COUNT(*) AS n FROM {t}")["n"]


def copy_study(src: StudyDB, dst: StudyDB, progress=print) -> dict[str, int]:
    """Copy every row of ``src`` into the empty ``dst``; returns rows per table."""
    names = tables()
    full = {t: n for t in names if (n := _count(dst, t))}
    if full:
        raise DBError(f"target is not empty ({', '.join(f'{t}: {n}' for t, n in full.items())})"
                      ": copy into a fresh database")
    src.secret()              # made now if the study never needed it: both sides share it
    copied: dict[str, int] = {}
    with src._tx() as s, dst._tx() as d:
        for t in names:
            rows = [dict(r) for r in s.execute(f"SELECT * FROM {t}").fetchall()]
            if rows:
                cols = list(rows[0])
                sql = (f"INSERT INTO {t} ({', '.join(cols)}) "
                       f"VALUES ({', '.join('?' for _ in cols)})")
                for r in rows:
                    d.execute(sql, [r[c] for c in cols])
            copied[t] = len(rows)
            progress(f"  {t}: {len(rows)} rows")
    if hasattr(dst, "reset_identities"):
        dst.reset_identities(names)
    for t in names:
        n = _count(dst, t)
        if n != copied[t]:
            raise DBError(f"{t}: {copied[t]} rows read, {n} in the target")
    return copied


def _name(db: str) -> str:
    return re.sub(r"//([^:@/]*):[^@/]*@", r"//\1:***@", db) if is_url(db) else db


PROG = "python -m mturk.store.copy"


@command(PROG, errors=(StoreUnavailableError, OSError))
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("--from", dest="src", required=True,
                   help="the study's store: a SQLite file or postgresql://USER@HOST/DB")
    p.add_argument("--to", dest="dst", required=True,
                   help="an empty store: a SQLite file or postgresql://USER@HOST/DB")
    args = p.parse_args(argv)
    try:
        if not is_url(args.src):
            from pathlib import Path

            if not Path(args.src).is_file():
                raise DBError(f"{args.src}: no such study database")
        if args.src == args.dst:
            raise DBError("--from and --to are the same store")
        src, dst = StudyDB(args.src), StudyDB(args.dst)
        print(f"copying {_name(args.src)} -> {_name(args.dst)}", flush=True)
        copied = copy_study(src, dst, progress=lambda s: print(s, flush=True))
    except (DBError, StoreUnavailableError, OSError) as e:
        return report(e, PROG)
    print(f"copied {sum(copied.values())} rows in {len(copied)} tables; counts checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
