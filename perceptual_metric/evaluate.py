"""2AFC agreement of metrics with the study's labels, with bootstrap 95% intervals.

Scores the fitted metric(s) and the baselines (PSNR, MS-SSIM from ``plic.quality``; LPIPS v0.1
Alex/VGG/Squeeze) on the same crops, overall and per codec pair, and writes a table
(``scores.csv``, ``scores.md``) and a plot (``scores.png``). With ``--split val`` only the
references held out by the fit (same seed and fraction as the checkpoint's) are scored::

    python -m perceptual_metric.evaluate --labels runs/study/labels.csv --metric runs/metric.pt \\
        --out runs/metric_eval --split val
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from plic.cli import command, parser
from plic.fsio import atomic_save_figure, atomic_write_text
from plic.paths import runs_dir
from plic.quality import ms_ssim_scales
from plic.tables import write_table

from .labels import TripletDataset, labels_sha256, read_labels, simulated_source
from .scoring import bootstrap_ci, ceiling, scored_distances, two_afc, val_indices

SCORES_COLUMNS = ["metric", "group", "n_trials", "score", "ci_low", "ci_high"]
BASELINES = ("psnr", "ms-ssim", "lpips-alex", "lpips-vgg", "lpips-squeeze")
CEILING = "ceiling (majority of people)"


@dataclass
class Scored:
    name: str
    d_a: np.ndarray
    d_b: np.ndarray


def score_table(scored: list[Scored], trials, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Rows of SCORES_COLUMNS: every metric overall and per codec pair, plus the ceiling."""
    p_b = np.array([t.p_b for t in trials])
    pairs = np.array([t.pair for t in trials])
    groups = [("all", np.ones(len(trials), bool))] + [
        (g, pairs == g) for g in sorted(set(pairs.tolist()))]
    rows = []
    per_trial = [(s.name, two_afc(s.d_a, s.d_b, p_b)) for s in scored] + [(CEILING, ceiling(p_b))]
    for name, s in per_trial:
        for g, mask in groups:
            lo, hi = bootstrap_ci(s[mask], n_boot, seed)
            rows.append({"metric": name, "group": g, "n_trials": int(mask.sum()),
                         "score": float(s[mask].mean()), "ci_low": lo, "ci_high": hi})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| metric | group | trials | 2AFC | 95% CI |", "| --- | --- | ---: | ---: | --- |"]
    for r in rows:
        lines.append(f"| {r['metric']} | {r['group']} | {r['n_trials']} | {r['score']:.4f} | "
                     f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}] |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path, title: str, scale: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    overall = [r for r in rows if r["group"] == "all"]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(overall) + 1.6))
    y = np.arange(len(overall))
    s = np.array([r["score"] for r in overall])
    err = np.array([[r["score"] - r["ci_low"] for r in overall],
                    [r["ci_high"] - r["score"] for r in overall]])
    ax.barh(y, s, xerr=err, color=["0.6" if r["metric"] == CEILING else "C0" for r in overall],
            capsize=3)
    ax.set_yticks(y, [r["metric"] for r in overall])
    ax.axvline(0.5, color="k", lw=0.8, ls=":")
    if scale:  # other images and raters: a sense of scale, not a comparison
        for key, style in (("psnr", "--"), ("best", "-.")):
            if scale.get(key) is not None:
                ax.axvline(scale[key], color="C3", lw=0.8, ls=style,
                           label=f"CLIC 2021 perceptual, {key}: {scale[key]:.3f}")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=7,
                  frameon=False)
    ax.set_xlim(0.4, 1.0)
    ax.set_xlabel("2AFC agreement with people (95% bootstrap CI)")
    ax.set_title(title)
    fig.tight_layout()
    atomic_save_figure(fig, path)


def clic_scale(folder: Path | None) -> dict | None:
    """PSNR's and the best entry's 2AFC accuracy on the CLIC 2021 perceptual track, if present."""
    path = folder / "clic2021_perceptual_test_leaderboard.csv" if folder else None
    if path is None or not path.is_file():
        return None
    import pandas as pd

    df = pd.read_csv(path)
    psnr_rows = df[df["Team"].str.upper() == "PSNR"]
    return {"psnr": float(psnr_rows["accuracy"].iloc[0]) if len(psnr_rows) else None,
            "best": float(df["accuracy"].max()), "source": str(path)}


def default_clic_dir() -> Path | None:
    import os

    from plic.paths import REPO_ROOT

    d = Path(os.environ.get("PLIC_SHARED", REPO_ROOT.parent / "shared")) / "anchors" / "clic"
    return d if d.is_dir() else None


def notes_for(scored: list[Scored], ds: TripletDataset, idx: list[int], args) -> list[str]:
    """What a reader must know about the numbers: simulated labels, MS-SSIM scales, trunks."""
    notes = []
    source = simulated_source(args.labels)
    if source:
        notes.append(f"Labels SIMULATED (says {source}): not human judgments.")
    names = [s.name for s in scored]
    if "ms-ssim" in names and idx:
        h, w = ds.images(idx[0])[0].shape[:2]
        _, _, h, w = ds.crop_box(h, w)
        k = ms_ssim_scales(h, w)
        if k < 5:
            notes.append(f"MS-SSIM on {w}x{h} images uses {k} scales, not 5.")
    if "lpips-squeeze-keras" in names:
        notes.append("lpips-squeeze-keras: SqueezeNet 1.1 trunk from the Keras weights, not "
                     "torchvision's; close to, not equal to, the official LPIPS-Squeeze.")
    return notes


PROG = "python -m perceptual_metric.evaluate"


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    ap = parser(PROG, __doc__.split("\n\n")[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--labels", default=str(runs_dir() / "study" / "labels.csv"),
                    help="labels.csv (2AFC) or mos.csv (opinion scores) to score on")
    ap.add_argument("--metric", action="append", default=[],
                    help="fitted metric checkpoint(s) (repeatable)")
    ap.add_argument("--baselines", default=",".join(BASELINES),
                    help=f"comma-separated subset of {','.join(BASELINES)} ('' for none)")
    ap.add_argument("--split", choices=("all", "val"), default="all",
                    help="val: only the references the (first) checkpoint's fit held out")
    ap.add_argument("--patch-size", type=int, default=0,
                    help="centre-crop size (0: whole images)")
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    ap.add_argument("--out", default=str(runs_dir() / "metric_eval"), help="output folder")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--clic", type=Path, default=default_clic_dir(),
                    help="folder of the CLIC leaderboards, for a sense of scale (optional)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from .fit_mos import is_mos_table

    if is_mos_table(args.labels):            # opinion scores: SROCC/PLCC (evaluate_mos)
        from .evaluate_mos import evaluate_on_mos

        return evaluate_on_mos(args, ap, BASELINES)
    trials = read_labels(args.labels)
    idx = list(range(len(trials)))
    if args.split == "val":
        idx = val_indices(args, ap, trials)
        if not idx:
            ap.error(f"{args.metric[0]} was fitted without a validation split")
    ds = TripletDataset(trials, args.patch_size or None, train=False)
    scored = [Scored(name, *res) for name, res in
              scored_distances(args, ap, BASELINES, ds, idx, skip_to=sys.stderr)]
    sub = [trials[i] for i in idx]
    rows = score_table(scored, sub, args.bootstrap, args.seed)
    out = Path(args.out)
    write_table(out / "scores.csv", rows, SCORES_COLUMNS)
    title = f"{Path(args.labels).name}: {len(sub)} trials ({args.split})"
    notes = notes_for(scored, ds, idx, args)
    scale = clic_scale(args.clic)
    if scale:
        notes.append(f"For scale (other images and raters): on the CLIC 2021 perceptual track, "
                     f"PSNR scored {scale['psnr']} and the best entry {scale['best']}.")
    atomic_write_text(out / "scores.md", f"# 2AFC scores, {title}\n\n" + markdown(rows)
                      + "".join(f"\n{n}\n" for n in notes))
    atomic_write_text(out / "scores.json", json.dumps(
        {"labels": str(args.labels), "labels_sha256": labels_sha256(args.labels),
         "split": args.split, "patch_size": args.patch_size, "bootstrap": args.bootstrap,
         "notes": notes, "rows": rows}, indent=2) + "\n")
    plot(rows, out / "scores.png", title, scale)
    print(markdown([r for r in rows if r["group"] == "all"]), end="")
    for n in notes:
        print(n)
    print(f"wrote {out}/scores.csv, scores.md, scores.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
