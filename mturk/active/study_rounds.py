"""A study in rounds: ``python -m mturk.active.study_rounds --study runs/study`` merges the rounds'
labels.

Layout (every round is a study of its own: its trials, its judgments database, its labels)::

    STUDY/pool/      mturk.trials (--strategy random): every candidate pair, with views; the
                     metric's predictions are made on its tests
    STUDY/r001/      mturk.trials --strategy active --out STUDY/r001 [--labels STUDY/labels.csv
                     --predictions ...]; then serve (or publish + collect) and
                     mturk.aggregate --db STUDY/r001/judgments.sqlite --out STUDY/r001
    STUDY/labels.csv this command: every round's labels, one row per pair

A pair asked in several rounds keeps its trial id (``mturk.trials`` ids are stable per pair), so
the merged row has ``n`` = the sum of the rounds' ``n`` and ``p_b`` their ``n``-weighted mean (a
round that showed the pair with a and b swapped counts ``1 - p_b``). Paths are rewritten
relative to the merged file; an image id keeps the path of the first round that showed it (each
round writes the same view of it into its own ``views/``). ``STUDY/aggregate.json`` says
``simulated`` when any round was.
Rounds are resumable: a round folder with a ``labels.csv`` is done, the first one without is the
one in progress, and merging again gives the same file.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from plic.cli import command, parser
from plic.fsio import atomic_write_text
from plic.paths import runs_dir
from plic.tables import read_table, rel_path, resolve_path, write_table

from ..schema import LABELS_COLUMNS, LABELS_ID
from .acquire import settled

ROUND_RE = re.compile(r"^r(\d{3})$")


def round_dirs(study: str | Path) -> list[Path]:
    """The round folders ``rNNN`` of a study, in order."""
    study = Path(study)
    if not study.is_dir():
        return []
    return sorted(p for p in study.iterdir() if p.is_dir() and ROUND_RE.match(p.name))


def done_rounds(study: str | Path) -> list[Path]:
    return [d for d in round_dirs(study) if (d / "labels.csv").is_file()]


def next_round(study: str | Path) -> Path:
    """The first round without labels (resume it), else a new one."""
    dirs = round_dirs(study)
    for d in dirs:
        if not (d / "labels.csv").is_file():
            return d
    last = int(ROUND_RE.match(dirs[-1].name).group(1)) if dirs else 0
    return Path(study) / f"r{last + 1:03d}"


def merge_labels(label_files: list[Path], out_csv: Path) -> list[dict]:
    """One row per pair over every file (see the module docstring); paths relative to
    ``out_csv``."""
    merged: dict[str, dict] = {}
    paths: dict[str, str] = {}
    for f in label_files:
        for r in read_table(f, LABELS_COLUMNS, LABELS_ID).to_dict("records"):
            for side in ("ref", "a", "b"):
                r[f"{side}_path"] = paths.setdefault(
                    r[f"{side}_id"], rel_path(resolve_path(r[f"{side}_path"], f), out_csv))
            p_b, n = float(r["p_b"]), int(r["n"])
            have = merged.get(r["trial_id"])
            if have is None:
                merged[r["trial_id"]] = dict(r, p_b=p_b, n=n)
                continue
            if (r["a_id"], r["b_id"]) == (have["b_id"], have["a_id"]):
                p_b = 1 - p_b
            elif (r["a_id"], r["b_id"]) != (have["a_id"], have["b_id"]):
                raise ValueError(f"{f}: trial {r['trial_id']} compares {r['a_id']} / "
                                 f"{r['b_id']}, another round {have['a_id']} / {have['b_id']}")
            total = have["n"] + n
            have["p_b"] = (have["p_b"] * have["n"] + p_b * n) / total
            have["n"] = total
    return [merged[k] for k in sorted(merged)]


def merge(study: str | Path) -> tuple[Path, dict]:
    """Write ``STUDY/labels.csv`` (and ``aggregate.json``) from the finished rounds."""
    study = Path(study)
    done = done_rounds(study)
    if not done:
        raise ValueError(f"{study}: no round with labels yet (rNNN/labels.csv)")
    out = study / "labels.csv"
    rows = merge_labels([d / "labels.csv" for d in done], out)
    write_table(out, rows, LABELS_COLUMNS, LABELS_ID)
    simulated = False
    for d in done:
        agg = d / "aggregate.json"
        if agg.is_file() and json.loads(agg.read_text()).get("simulated"):
            simulated = True
    p_b, n = [r["p_b"] for r in rows], [r["n"] for r in rows]
    summary = dict(simulated=simulated, rounds=[d.name for d in done], pairs=len(rows),
                   judgments=int(sum(n)), settled=int(settled(p_b, n).sum()),
                   note="labels merged over rounds by mturk.active.study_rounds")
    atomic_write_text(study / "aggregate.json", json.dumps(summary, indent=2) + "\n")
    return out, summary


PROG = "python -m mturk.active.study_rounds"


@command(PROG, errors=(OSError,))
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("--study", default=str(runs_dir() / "study"),
                   help="the study folder holding r001, r002, ... (default: %(default)s)")
    args = p.parse_args(argv)
    out, s = merge(args.study)
    sim = "SIMULATED " if s["simulated"] else ""
    print(f"wrote {out}: {sim}labels of {s['pairs']} pairs from {s['judgments']} judgments over "
          f"{len(s['rounds'])} rounds ({s['settled']} pairs settled); next round: "
          f"{next_round(args.study)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
