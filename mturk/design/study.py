"""Which design a study is: ``2afc`` (``mturk.design.twoafc``) or a rating design, ``acr`` or
``dsis`` (``mturk.design.rating``).

A study's design is recorded in its ``trials.meta.json`` (``design``; absent means ``2afc``), which
the server, the simulator and the aggregation read with ``study_design``; every rating trial id
also starts with its design, so ``rating_design`` tells a batch's design from its trial ids alone
(``mturk.market.collect`` and the HTMLQuestion see only the database).
"""

from __future__ import annotations

import json
from pathlib import Path

from .rating import RATING_DESIGNS

DESIGNS = ("2afc", *RATING_DESIGNS)


def check_design(design: str) -> str:
    if design not in DESIGNS:
        raise ValueError(f"unknown design {design!r}: one of {', '.join(DESIGNS)}")
    return design


def study_design(trials_csv: str | Path) -> str:
    """The design of the study whose ``trials.csv`` this is (from ``trials.meta.json``)."""
    meta = Path(trials_csv).parent / "trials.meta.json"
    if not meta.is_file():
        return "2afc"
    try:
        design = json.loads(meta.read_text()).get("design", "2afc")
    except (ValueError, AttributeError) as e:
        raise ValueError(f"{meta}: not a JSON object ({e})") from e
    return check_design(design)


def rating_design(trial_ids) -> str | None:
    """The rating design of a batch from its trial ids (``mturk.trials`` starts each rating
    trial's id with its design: ``acr-...``, ``dsis-...``), or None for a 2AFC batch."""
    for tid in trial_ids:
        head = str(tid).split("-", 1)[0]
        return head if head in RATING_DESIGNS else None
    return None
