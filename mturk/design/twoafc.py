"""The 2AFC design's trials: test pairs, sentinels and repeats, packed into batches.

A test trial shows a reference and two distortions of that same reference (same crop) made for the
same ``target_bpp`` by different codecs or settings; every such pair is asked once (pairs whose
decoded images are identical are skipped). ``a``/``b`` and the side shown on the left are drawn at
random and recorded. A sentinel trial has an obvious answer: one side is a near-lossless encode of
the reference (``mturk.design.crops``: never the reference's own file), the other the most
degraded distortion of that reference (lowest MS-SSIM, else lowest PSNR, else lowest bpp);
``expected`` names the near-lossless side. A repeat trial (``repeat_of`` names the test it
repeats) asks one of the batch's easiest test pairs (largest MS-SSIM, else PSNR, gap) again with
the sides swapped, so ``mturk.analysis.worker_quality`` can see whether a worker answers the same
pair the same way. The rating designs' twin is ``mturk.design.rating``; ``mturk.design.trials``
(the command) calls either.
"""

from __future__ import annotations

import hashlib
import itertools
import math

import numpy as np

from distortions.schema import INDEX_COLUMNS, INDEX_ID
from plic.tables import read_table

from ..schema import TRIALS_COLUMNS
from .crops import NEAR_LOSSLESS_CODEC


def _h(*parts) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:12]


def _num(v: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _degraded(rows: list[dict]) -> dict:
    """The most degraded distortion: lowest MS-SSIM, else lowest PSNR, else lowest bpp."""
    for col in ("ms_ssim", "psnr", "bpp"):
        vals = [_num(r[col]) for r in rows]
        if all(not math.isnan(v) for v in vals):
            return rows[int(np.argmin(vals))]
    return rows[0]


def _gap(x: dict, y: dict) -> float:
    """How far apart two distortions are (MS-SSIM, else PSNR / 100): repeats take the widest."""
    for col, scale in (("ms_ssim", 1.0), ("psnr", 0.01)):
        d = abs(_num(x[col]) - _num(y[col])) * scale
        if not math.isnan(d):
            return d
    return 0.0


def make_twoafc_trials(index_path, cfg, views, select=None) -> list[dict]:
    """2AFC trial rows (``mturk.schema.TRIALS_COLUMNS``), views written by ``views`` (the
    ``mturk.design.trials`` writer), in batches of ``cfg.batch_size`` (a ``TrialsConfig``).
    ``select`` (an active round) keeps a subset of the candidate tests, best first."""
    index = read_table(index_path, INDEX_COLUMNS, INDEX_ID)
    if index.empty:
        raise ValueError(f"{index_path}: no distortions")
    rng = np.random.default_rng(cfg.seed)
    recs = index.sort_values("dist_id").to_dict("records")
    by_ref: dict[tuple[str, str], list[dict]] = {}
    for r in recs:
        by_ref.setdefault((r["ref_id"], r["ref_path"]), []).append(r)

    tests = []
    for (ref_id, ref_path), rows in sorted(by_ref.items()):
        groups: dict[str, list[dict]] = {}
        for r in rows:
            groups.setdefault(r["target_bpp"], []).append(r)
        for target, grp in sorted(groups.items()):
            pairs = [(x, y) for x, y in itertools.combinations(grp, 2)
                     if not (x["sha256"] and x["sha256"] == y["sha256"])]
            if cfg.max_pairs_per_group and len(pairs) > cfg.max_pairs_per_group:
                keep = rng.choice(len(pairs), cfg.max_pairs_per_group, replace=False)
                pairs = [pairs[i] for i in sorted(keep)]
            for x, y in pairs:
                if rng.random() < 0.5:
                    x, y = y, x
                tests.append((dict(
                    trial_id="t-" + _h(*sorted((x["dist_id"], y["dist_id"]))),
                    ref_id=ref_id, ref_path=ref_path, a_id=x["dist_id"], a_path=x["path"],
                    b_id=y["dist_id"], b_path=y["path"], a_codec=x["codec"], b_codec=y["codec"],
                    a_bpp=x["bpp"], b_bpp=y["bpp"], target_bpp=target, kind="test",
                    expected="", repeat_of=""), _gap(x, y)))
    if not tests:
        raise ValueError(f"{index_path}: no two distortions share a reference and a target_bpp; "
                         "nothing to compare")
    order = rng.permutation(len(tests))
    tests = [tests[i] for i in order]
    if select is not None:
        tests = select(tests)

    # one sentinel candidate per reference: its near-lossless encode vs its most degraded one
    pool = [(ref_id, ref_path, _degraded(rows)) for (ref_id, ref_path), rows
            in sorted(by_ref.items())]
    n_sent = cfg.sentinels_per_batch()
    per_batch = cfg.batch_size - n_sent - cfg.repeats
    out: list[dict] = []
    pool_order: list[int] = []
    for bi, start in enumerate(range(0, len(tests), per_batch)):
        batch_id = f"b{bi:04d}"
        chunk = tests[start:start + per_batch]
        batch = [dict(t, batch_id=batch_id) for t, _ in chunk]
        easiest = sorted(range(len(chunk)), key=lambda i: (-chunk[i][1], i))[:cfg.repeats]
        for i in sorted(easiest):
            orig = batch[i]
            batch.append(dict(orig, trial_id="r-" + _h(batch_id, orig["trial_id"]),
                              repeat_of=orig["trial_id"]))
        for k in range(n_sent):
            if not pool_order:
                pool_order = list(rng.permutation(len(pool)))
            ref_id, ref_path, d = pool[pool_order.pop()]
            near_side = "a" if rng.random() < 0.5 else "b"
            near_id, near_path, near_bpp = views.near(ref_id, ref_path)
            near_cols = dict(id=near_id, path=near_path, codec=NEAR_LOSSLESS_CODEC,
                             bpp=f"{near_bpp:.4f}")
            deg_cols = dict(id=d["dist_id"], path=d["path"], codec=d["codec"], bpp=d["bpp"])
            sides = {near_side: near_cols, ("b" if near_side == "a" else "a"): deg_cols}
            batch.append(dict(
                trial_id="s-" + _h(batch_id, k, ref_id, d["dist_id"]), batch_id=batch_id,
                ref_id=ref_id, ref_path=ref_path,
                **{f"{s}_{c}": sides[s][c] for s in "ab" for c in ("id", "path", "codec", "bpp")},
                target_bpp=d["target_bpp"], kind="sentinel", expected=near_side, repeat_of=""))
        left_of: dict[str, str] = {}
        for i in rng.permutation(len(batch)):
            row = batch[i]
            row["left"] = "a" if rng.random() < 0.5 else "b"
            left_of[row["trial_id"]] = row["left"]
        for i in rng.permutation(len(batch)):
            row = dict(batch[i])
            if row["repeat_of"]:             # the repeat shows the pair with the sides swapped
                row["left"] = "b" if left_of[row["repeat_of"]] == "a" else "a"
            for side in ("ref", "a", "b"):
                if side == "ref" or row[f"{side}_codec"] != NEAR_LOSSLESS_CODEC:
                    row[f"{side}_path"] = views.path(row[f"{side}_id"], row[f"{side}_path"],
                                                     row["ref_id"])
            out.append({c: row[c] for c in TRIALS_COLUMNS})
    return out
