"""Metrics against opinion scores: ``python -m perceptual_metric.evaluate --labels mos.csv``.

``perceptual_metric.evaluate`` hands a ``mos.csv`` (``mturk.mos``) here. Per metric (fitted
checkpoints and the baselines, on the same crops): SROCC and PLCC (after the 4-parameter
logistic) against the score ``perceptual_metric.fit_mos`` fits on (DMOS, else MOS), each with a
95% bootstrap interval over stimuli, and beside them the 2AFC agreement on the stimulus pairs'
soft labels (``fit_mos.pair_labels``) with its bootstrap interval. Hidden references are not
scored. Writes ``mos_scores.csv``, ``.md`` and ``.json`` in ``--out``.
"""

from __future__ import annotations

import json
from pathlib import Path

from plic.fsio import atomic_write_text
from plic.tables import write_table

from .fit_mos import correlations, pair_labels, read_mos
from .labels import TripletDataset, labels_sha256
from .scoring import bootstrap_ci, scored_distances, two_afc, val_indices

MOS_SCORES_COLUMNS = ["metric", "n_stimuli", "srocc", "srocc_low", "srocc_high", "plcc",
                      "plcc_low", "plcc_high", "n_pairs", "two_afc", "two_afc_low",
                      "two_afc_high"]


def evaluate_on_mos(args, ap, baselines: tuple[str, ...]) -> int:
    """``perceptual_metric.evaluate``'s main on a ``mos.csv`` (its parsed ``args``)."""
    trials, s, se, score_name = read_mos(args.labels)
    idx = list(range(len(trials)))
    if args.split == "val":
        idx = val_indices(args, ap, trials)
        if len(idx) < 3:
            ap.error(f"{args.metric[0]}'s validation split holds {len(idx)} stimuli here")
    ds = TripletDataset(trials, args.patch_size or None, train=False)
    dists = {name: res[0] for name, res in scored_distances(args, ap, baselines, ds, idx)}
    gi, gj, p = pair_labels(s, se, idx)
    pos = {g: k for k, g in enumerate(idx)}
    rows = []
    for name, d in dists.items():
        c = correlations(d, s[idx], n_boot=args.bootstrap, seed=args.seed)
        agree = two_afc(d[[pos[i] for i in gi]], d[[pos[j] for j in gj]], p)
        lo, hi = bootstrap_ci(agree, args.bootstrap, args.seed)
        rows.append(dict(metric=name, n_stimuli=len(idx), srocc=c["srocc"],
                         srocc_low=c["srocc_ci"][0], srocc_high=c["srocc_ci"][1],
                         plcc=c["plcc"], plcc_low=c["plcc_ci"][0], plcc_high=c["plcc_ci"][1],
                         n_pairs=len(p), two_afc=float(agree.mean()), two_afc_low=lo,
                         two_afc_high=hi))
    out = Path(args.out)
    write_table(out / "mos_scores.csv", rows, MOS_SCORES_COLUMNS)
    md = (f"# Metrics against {score_name.upper()}, {Path(args.labels).name}: {len(idx)} stimuli "
          f"({args.split})\n\n| metric | SROCC | PLCC | 2AFC on MOS pairs |\n|---|---|---|---|\n"
          + "".join(f"| {r['metric']} | {r['srocc']:.3f} [{r['srocc_low']:.3f}, "
                    f"{r['srocc_high']:.3f}] | {r['plcc']:.3f} [{r['plcc_low']:.3f}, "
                    f"{r['plcc_high']:.3f}] | {r['two_afc']:.3f} [{r['two_afc_low']:.3f}, "
                    f"{r['two_afc_high']:.3f}] |\n" for r in rows))
    simulated = (Path(args.labels).parent / "mos.json").is_file() and json.loads(
        (Path(args.labels).parent / "mos.json").read_text()).get("simulated")
    if simulated:
        md += "\nSIMULATED opinion scores (mos.json says so).\n"
    atomic_write_text(out / "mos_scores.md", md)
    atomic_write_text(out / "mos_scores.json", json.dumps(
        {"labels": str(args.labels), "labels_sha256": labels_sha256(args.labels),
         "score": score_name, "split": args.split, "simulated": bool(simulated),
         "bootstrap": args.bootstrap, "rows": rows}, indent=2) + "\n")
    print(md, end="")
    print(f"wrote {out}/mos_scores.csv, mos_scores.md")
    return 0
