"""The gap to a reference codec against training time: ``python -m codec.evaluate.gap``.

    python -m codec.evaluate.gap runs/eval/snapshots [more evaluation folders]
        [--reference hevc-bpgcfg] [--out runs/eval/gap]

Reads the ``results.json`` of one or more ``python -m codec.evaluate`` runs whose learned rows are
checkpoints of one training chain (snapshots of a run, a fine-tune of them, ...). For every learned
row and target it takes the training wall time of the checkpoint's whole chain from its
provenance (this run plus every ``--init`` it started from: ``codec.train.ship.chain_totals``)
and the gap to the reference codec's row at the same target, per metric, signed so that a
positive gap means "behind the reference":

    gap = ours - reference      for LPIPS-*, DISTS, FID, KID (lower is better)
    gap = reference - ours      for PSNR, MS-SSIM            (higher is better)

and writes ``gap.md`` (the table, with the bpp of both sides: a gap only means something at equal
or lower bpp, which ``codec.evaluate`` guarantees per file) and ``gap.png`` (one panel per metric:
the gap against training hours, one line per target, zero dashed). The question it answers:
at this rate of progress, does more CPU time close the gap, or does it need a GPU?
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from plic.cli import CliError, command, parser
from plic.fsio import atomic_write_text

LOWER_BETTER = ("lpips_alex", "lpips_vgg", "lpips_squeeze", "dists", "fid", "kid")
HIGHER_BETTER = ("psnr", "ms_ssim")
LABELS = {"psnr": "PSNR dB", "ms_ssim": "MS-SSIM", "lpips_alex": "LPIPS-Alex",
          "lpips_vgg": "LPIPS-VGG", "lpips_squeeze": "LPIPS-squeeze", "dists": "DISTS",
          "fid": "FID", "kid": "KID"}


def signed_gap(metric: str, ours: float, ref: float) -> float:
    """Positive: ours is behind the reference on ``metric``."""
    if metric in LOWER_BETTER:
        return ours - ref
    if metric in HIGHER_BETTER:
        return ref - ours
    raise ValueError(f"unknown metric {metric!r}")


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def checkpoint_hours(path: str) -> tuple[float | None, int | None]:
    """(wall hours, steps) of the checkpoint's whole training chain, from its provenance."""
    from plic.checkpoint import load_checkpoint

    from ..train.ship import chain_totals

    prov = load_checkpoint(path, kind="codec")["provenance"]
    steps, seconds = chain_totals(prov)
    return (None if seconds is None else seconds / 3600.0), steps


def gap_rows(results: list[dict], reference: str) -> list[dict]:
    """One row per (learned method, target) of every evaluation: hours, steps, bpp, gaps."""
    rows, hours_of = [], {}
    for res in results:
        ref = {r["target_bpp"]: r for r in res["summary"] if r["method"] == reference}
        if not ref:
            raise ValueError(f"{res['meta'].get('command', '?')}: no {reference!r} rows; "
                             "evaluate the reference codec in the same run")
        ckpt = {}
        for r in res["per_image"]:
            if r.get("checkpoint"):
                ckpt.setdefault(r["method"], r["checkpoint"])
        for r in res["summary"]:
            if r["kind"] == "classic" or r["method"] not in ckpt:
                continue
            path = ckpt[r["method"]]
            if path not in hours_of:
                hours_of[path] = checkpoint_hours(path)
            hours, steps = hours_of[path]
            base = ref.get(r["target_bpp"])
            if base is None:
                continue
            row = {"method": r["method"], "trained_with": r.get("trained_with", ""),
                   "checkpoint": path, "hours": hours, "steps": steps,
                   "target_bpp": r["target_bpp"], "bpp": r["bpp"], "ref_bpp": base["bpp"]}
            for m in HIGHER_BETTER + LOWER_BETTER:
                if _finite(r.get(m)) and _finite(base.get(m)):
                    row[m] = signed_gap(m, r[m], base[m])
            rows.append(row)
    rows.sort(key=lambda r: (r["target_bpp"], r["hours"] if r["hours"] is not None else -1))
    return rows


def markdown(rows: list[dict], reference: str, sources: list[str]) -> str:
    metrics = [m for m in HIGHER_BETTER + LOWER_BETTER if any(m in r for r in rows)]
    lines = [f"# Gap to {reference} against training time", "",
             "Positive: behind the reference (ours - reference for LPIPS, DISTS, FID, KID; "
             "reference - ours for PSNR and MS-SSIM). Hours: wall time of the checkpoint's whole "
             "training chain, from its provenance. From: " + ", ".join(f"`{s}`" for s in sources),
             "", "| checkpoint | trained with | hours | steps | target | bpp (ref) | "
             + " | ".join(LABELS[m] for m in metrics) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(metrics)]
    for r in rows:
        h = "–" if r["hours"] is None else f"{r['hours']:.2f}"
        cells = [f"{r[m]:+.4f}" if m in r else "–" for m in metrics]
        lines.append(f"| {r['method']} | {r['trained_with'] or '–'} | {h} | {r['steps'] or '–'} "
                     f"| {r['target_bpp']:g} | {r['bpp']:.3f} ({r['ref_bpp']:.3f}) | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], reference: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in HIGHER_BETTER + LOWER_BETTER
               if any(m in r and r["hours"] is not None for r in rows)]
    cols = min(4, len(metrics)) or 1
    nrows = math.ceil(len(metrics) / cols) or 1
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.2 * nrows), squeeze=False)
    targets = sorted({r["target_bpp"] for r in rows})
    for ax, m in zip(axes.flat, metrics):
        for t in targets:
            pts = sorted((r["hours"], r[m]) for r in rows
                         if r["target_bpp"] == t and m in r and r["hours"] is not None)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=f"{t:g} bpp")
        ax.axhline(0.0, color="k", ls="--", lw=0.8)
        ax.set_title(f"{LABELS[m]}: gap to {reference}", fontsize=9)
        ax.set_xlabel("training wall hours (whole chain)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.suptitle("above 0: behind the reference", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


PROG = "python -m codec.evaluate.gap"


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("evals", nargs="+", type=Path, help="codec.evaluate output folders")
    p.add_argument("--reference", default="hevc-bpgcfg", help="the codec to measure gaps to")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: the first "
                                                         "evaluation folder's gap/)")
    a = p.parse_args(argv)
    results = []
    for d in a.evals:
        f = d / "results.json"
        if not f.is_file():
            raise CliError(f"{f}: no such file (run python -m codec.evaluate --out {d} first)")
        results.append(json.loads(f.read_text()))
    rows = gap_rows(results, a.reference)
    if not rows:
        raise CliError("no learned checkpoint rows to compare")
    out = a.out or a.evals[0] / "gap"
    out.mkdir(parents=True, exist_ok=True)
    # the sources relative to the write-up, never a machine's absolute folders
    text = markdown(rows, a.reference, [os.path.relpath(d, out) for d in a.evals])
    atomic_write_text(out / "gap.md", text)
    atomic_write_text(out / "gap.json", json.dumps(rows, indent=1) + "\n")
    plot(rows, a.reference, out / "gap.png")
    print(text)
    print(f"wrote {out / 'gap.md'}, gap.json and gap.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
