"""The perceptual codec against its MSE twin: ``python -m codec.evaluate.twins``.

    python -m codec.evaluate.twins runs/eval/table1 \\
        --pair hific-full-0.15=hific-mse-0.15 [--pair ...] [--reference hevc-bpgcfg]

Reads the ``results.json`` of one ``python -m codec.evaluate`` run and checks, per pair and at
the perceptual row's target, the claim of the perceptual-codec papers (HiFiC and its kin): the
model trained with a perceptual metric and a GAN beats its twin trained on rate + MSE alone on
FID, KID, every LPIPS and DISTS, at equal or lower bpp, while losing on PSNR. A cell holds when

    FID, KID, LPIPS-*, DISTS:  perceptual < twin              (lower is better)
    bpp:                       perceptual <= twin x (1 + BPP_SLACK)
    PSNR:                      perceptual < twin              (the claim expects a loss)

MS-SSIM is reported but not judged (the papers disagree on its direction). Beside each pair, the
perceptual row's gap to ``--reference`` at the same target, signed as in
``codec.evaluate.gap`` (positive: behind the reference). Writes ``twins.md`` and ``twins.json``
next to the results (or in ``--out``) and prints the table.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from plic.cli import CliError, command, parser
from plic.fsio import atomic_write_text

from .gap import LABELS, LOWER_BETTER, _finite, signed_gap

PROG = "python -m codec.evaluate.twins"

#: "equal bpp": the perceptual row may spend this fraction more than its twin
BPP_SLACK = 0.02
#: the metrics the claim judges, in table order (PSNR's expected direction is a loss)
CLAIMED = ("fid", "kid", "lpips_alex", "lpips_vgg", "lpips_squeeze", "dists")
SHOWN = ("bpp", "psnr", "ms_ssim", *CLAIMED)


def _row(summary: list[dict], method: str, target: float | None) -> dict:
    rows = [r for r in summary if r["method"] == method
            and (target is None or math.isclose(r["target_bpp"], target))]
    if not rows:
        where = "" if target is None else f" at target {target:g}"
        known = sorted({r["method"] for r in summary})
        raise CliError(f"no row {method!r}{where} in the results (methods: {', '.join(known)})")
    if len(rows) > 1:
        targets = ", ".join(f"{r['target_bpp']:g}" for r in rows)
        raise CliError(f"{method!r} has rows at several targets ({targets}): a twin pair is "
                       "compared at one target")
    return rows[0]


def judge(metric: str, ours: float | None, twin: float | None) -> bool | None:
    """Does the cell support the claim? None where either side was not measured."""
    if not (_finite(ours) and _finite(twin)):
        return None
    if metric == "bpp":
        return ours <= twin * (1 + BPP_SLACK)
    if metric == "psnr":
        return ours < twin
    if metric in LOWER_BETTER:
        return ours < twin
    return None  # shown, not judged (MS-SSIM)


def compare(summary: list[dict], perceptual: str, twin: str,
            reference: str | None = "hevc-bpgcfg") -> dict:
    """One pair: per metric the two values, whether the claim's cell holds, and the perceptual
    row's signed gap to ``reference`` at the same target (None where it has no row)."""
    ours = _row(summary, perceptual, None)
    target = ours["target_bpp"]
    other = _row(summary, twin, target)
    ref = None
    if reference:
        ref_rows = [r for r in summary if r["method"] == reference
                    and math.isclose(r["target_bpp"], target)]
        ref = ref_rows[0] if ref_rows else None
    cells = []
    for m in SHOWN:
        a, b = ours.get(m), other.get(m)
        gap = None
        if ref is not None and m != "bpp" and _finite(a) and _finite(ref.get(m)):
            gap = signed_gap(m, a, ref[m])
        cells.append({"metric": m, "perceptual": a, "twin": b, "holds": judge(m, a, b),
                      "reference": None if ref is None else ref.get(m), "gap": gap})
    judged = [c["holds"] for c in cells if c["holds"] is not None]
    missing = [c["metric"] for c in cells
               if c["metric"] in ("bpp", "psnr", *CLAIMED) and c["holds"] is None]
    return {"perceptual": perceptual, "twin": twin, "target_bpp": target,
            "reference": reference if ref is not None else None,
            "holds": bool(judged) and all(judged) and not missing,
            "failing": [c["metric"] for c in cells if c["holds"] is False],
            "unmeasured": missing, "cells": cells}


def _fmt(m: str, v) -> str:
    if not _finite(v):
        return "–"
    if m == "kid":
        return f"{v * 1e3:.1f}"
    if m in ("fid", "psnr"):
        return f"{v:.2f}"
    return f"{v:.4f}" if m != "bpp" else f"{v:.3f}"


def markdown(pairs: list[dict], source: str) -> str:
    lines = [f"Perceptual codec against its MSE twin ({source}); a cell holds (yes) where the "
             f"perceptual row is lower on FID/KID/LPIPS/DISTS, loses on PSNR, and spends at most "
             f"{BPP_SLACK:.0%} more bits. KID x1e3. Gap: to the reference at the same target, "
             "positive = behind it.", ""]
    for p in pairs:
        verdict = "holds" if p["holds"] else (
            "fails on " + ", ".join(LABELS.get(m, m) for m in p["failing"]) if p["failing"]
            else "not measured on " + ", ".join(p["unmeasured"]))
        lines += [f"### {p['perceptual']} vs {p['twin']} at {p['target_bpp']:g} bpp: claim "
                  f"{verdict}", "",
                  f"| metric | perceptual | MSE twin | claim | {p['reference'] or 'reference'} "
                  "| gap |", "|---|---|---|---|---|---|"]
        for c in p["cells"]:
            m = c["metric"]
            holds = {True: "yes", False: "**no**", None: "–"}[c["holds"]]
            gap = "–" if c["gap"] is None else (f"{c['gap'] * 1e3:+.1f}" if m == "kid"
                                                else f"{c['gap']:+.4g}")
            lines.append(f"| {LABELS.get(m, m)} | {_fmt(m, c['perceptual'])} | "
                         f"{_fmt(m, c['twin'])} | {holds} | {_fmt(m, c['reference'])} | {gap} |")
        lines.append("")
    return "\n".join(lines)


def _pair(text: str) -> tuple[str, str]:
    a, sep, b = text.partition("=")
    if not (sep and a and b):
        raise CliError(f"--pair {text!r}: expected PERCEPTUAL=MSE_TWIN (two method labels)")
    return a, b


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("eval", type=Path, help="a python -m codec.evaluate output folder")
    p.add_argument("--pair", action="append", required=True, metavar="PERCEPTUAL=TWIN",
                   help="method labels of a perceptual row and its MSE twin (repeatable)")
    p.add_argument("--reference", default="hevc-bpgcfg",
                   help="the codec whose gap is shown beside each pair ('' for none)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: EVAL)")
    a = p.parse_args(argv)
    f = a.eval / "results.json"
    if not f.is_file():
        raise CliError(f"{f}: no such file (run python -m codec.evaluate --out {a.eval} first)")
    summary = json.loads(f.read_text())["summary"]
    pairs = [compare(summary, *_pair(t), reference=a.reference or None) for t in a.pair]
    out = a.out or a.eval
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(pairs, "results.json")
    atomic_write_text(out / "twins.md", text + "\n")
    atomic_write_text(out / "twins.json", json.dumps(pairs, indent=1) + "\n")
    print(text)
    print(f"wrote {out / 'twins.md'} and twins.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
