"""Absolute-rating study designs beside 2AFC: ACR (ITU-T P.910) and DSIS (ITU-R BT.500).

``python -m mturk.trials --design acr|dsis`` writes the same ``trials.csv`` (same columns, same
``views/``) as a 2AFC study; a rating trial asks for one score of one *stimulus*:

- **ACR** (Absolute Category Rating with hidden reference, P.910 ACR-HR): the page shows the
  stimulus alone and asks for its quality on the 5-point scale ``ACR_LABELS``. Every reference is
  also shown as a stimulus of its own (a *hidden reference*, ``a_codec`` = ``HIDDEN_REF_CODEC``),
  in the same batch as its distortions, so each worker's DMOS can subtract their own rating of
  the reference (``mturk.mos``).
- **DSIS** (Double Stimulus Impairment Scale, BT.500 variant I): the page shows the reference,
  then the stimulus, and asks for the impairment on the 5-point scale ``DSIS_LABELS``. No hidden
  references: the scale already compares with the reference.

A rating trial's row: ``a_*`` and ``b_*`` both name the stimulus (``a_id == b_id``), ``left`` is
``a``, ``kind`` is ``test``, ``expected`` and ``repeat_of`` are empty. The reference view is
``ref_path`` as in 2AFC. Sentinels and repeats do not apply to ratings: observer screening
(``mturk.analysis.screening``) replaces them. A batch holds whole references (all of a reference's
stimuli and, for ACR, its hidden reference, in random page order); a reference with more
stimuli than a batch takes several batches, each with its own hidden-reference trial.

The design is recorded in ``trials.meta.json`` (``design``; absent means ``2afc``), which the
server, the simulator and the aggregation read with ``study_design``; every rating trial id also
starts with its design (``rating_design``), for ``mturk.market.collect``, which sees only the
database.
"""

from __future__ import annotations

import hashlib

import numpy as np

from distortions.schema import INDEX_COLUMNS, INDEX_ID
from plic.tables import read_table

RATING_DESIGNS = ("acr", "dsis")
HIDDEN_REF_CODEC = "reference"
#: scale value -> label; the page lists them best first, keys 5..1
ACR_LABELS = {5: "Excellent", 4: "Good", 3: "Fair", 2: "Poor", 1: "Bad"}
DSIS_LABELS = {5: "Imperceptible", 4: "Perceptible, but not annoying", 3: "Slightly annoying",
               2: "Annoying", 1: "Very annoying"}
SCALE_MIN, SCALE_MAX = 1, 5


def scale_labels(design: str) -> dict[int, str]:
    if design == "acr":
        return ACR_LABELS
    if design == "dsis":
        return DSIS_LABELS
    raise ValueError(f"design {design!r} has no rating scale (one of {RATING_DESIGNS})")


def is_hidden_ref(trial: dict) -> bool:
    return trial["a_codec"] == HIDDEN_REF_CODEC


def _h(*parts) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:12]


def _row(design: str, unit: str, ref_id: str, ref_path: str, sid: str, path: str, codec: str,
         bpp: str, target: str) -> dict:
    side = dict(id=sid, path=path, codec=codec, bpp=bpp)
    return dict(trial_id=f"{design}-" + _h(design, unit, sid), ref_id=ref_id, ref_path=ref_path,
                **{f"{s}_{c}": side[c] for s in "ab" for c in ("id", "path", "codec", "bpp")},
                target_bpp=target, left="a", kind="test", expected="", repeat_of="")


def rating_units(index_path, design: str, batch_size: int, rng: np.random.Generator
                 ) -> list[list[dict]]:
    """Per reference, its stimuli in chunks of at most ``batch_size`` trials (paths still the
    index's); ACR adds the hidden reference to every chunk."""
    index = read_table(index_path, INDEX_COLUMNS, INDEX_ID)
    if index.empty:
        raise ValueError(f"{index_path}: no distortions")
    by_ref: dict[tuple[str, str], list[dict]] = {}
    for r in index.sort_values("dist_id").to_dict("records"):
        by_ref.setdefault((r["ref_id"], r["ref_path"]), []).append(r)
    hidden = design == "acr"
    per = batch_size - 1 if hidden else batch_size
    if per < 1:
        raise ValueError("batch_size must leave room for a stimulus beside the hidden reference")
    units = []
    for (ref_id, ref_path), rows in sorted(by_ref.items()):
        rows = [rows[i] for i in rng.permutation(len(rows))]
        for k, start in enumerate(range(0, len(rows), per)):
            unit = f"{ref_id}#{k}"
            chunk = [_row(design, unit, ref_id, ref_path, r["dist_id"], r["path"], r["codec"],
                          r["bpp"], r["target_bpp"]) for r in rows[start:start + per]]
            if hidden:
                chunk.append(_row(design, unit, ref_id, ref_path, ref_id, ref_path,
                                  HIDDEN_REF_CODEC, "", ""))
            units.append(chunk)
    return units


def make_rating_trials(index_path, cfg, views) -> list[dict]:
    """Rating trial rows (``mturk.schema.TRIALS_COLUMNS``), views written by ``views`` (the
    ``mturk.trials`` writer): whole references packed into batches of ``cfg.batch_size``."""
    rng = np.random.default_rng(cfg.seed)
    units = rating_units(index_path, cfg.design, cfg.batch_size, rng)
    batches: list[list[dict]] = [[]]
    for i in rng.permutation(len(units)):
        if len(batches[-1]) + len(units[i]) > cfg.batch_size:
            batches.append([])
        batches[-1].extend(units[i])
    out = []
    for bi, batch in enumerate(batches):
        for i in rng.permutation(len(batch)):
            row = dict(batch[i], batch_id=f"b{bi:04d}")
            row["ref_path"] = views.path(row["ref_id"], row["ref_path"], row["ref_id"])
            row["a_path"] = row["b_path"] = views.path(row["a_id"], row["a_path"], row["ref_id"])
            out.append(row)
    return out
