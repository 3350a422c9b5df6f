"""Quality against training compute: each checkpoint's Kodak curve beside HEVC's on the same images.

    python -m codec.train.cpu_hours runs/rd-hific/step*/rd.json runs/rd-hific/bmshj-small/rd.json \\
        --hevc runs/distortions/index.csv --cpu-per-step hific=0.69 \\
        --cpu-per-step bmshj2018-hyperprior=0.11 --out runs/cpu_hours

Each ``rd.json`` is a ``python -m codec.train.rd`` output (real bitstreams over bin widths). The
anchor is ``hevc-bpgcfg`` from a ``python -m distortions`` index on the same images (its rows at
every target, per image). Per checkpoint: its steps (the checkpoint's provenance, the ``--init``
chain included), CPU hours = steps x the measured CPU seconds per step of its model
(``--cpu-per-step MODEL=S``, e.g. from ``python -m benchmarks.train_speed --threads 1``: wall time
on a shared machine says little), and against HEVC on the images both have: BD-rate (PSNR; n/a where
the PSNR ranges do not overlap) and BD-PSNR (over the overlapping rate range), from the mean
curves. Writes ``cpu_hours.md``, ``cpu_hours.json`` and ``cpu_hours.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from plic.checkpoint import load_checkpoint
from plic.cli import command, parser
from plic.fsio import atomic_save_figure, atomic_write_text
from plic.rd import bd_quality, bd_rate
from plic.tables import read_table

from .ship import chain_totals


def mean_curve(rows: list[dict], key: str, images: set[str]) -> tuple[list[float], list[float]]:
    """Mean (bpp, PSNR) per ``key`` value (bin width or target) over ``images``; a key value
    every image does not have is left out."""
    by = defaultdict(dict)
    for r in rows:
        if r["image"] in images:
            by[r[key]][r["image"]] = (float(r["bpp"]), float(r["psnr"]))
    pts = [np.mean(list(v.values()), axis=0) for _, v in sorted(by.items())
           if len(v) == len(images)]
    return [float(p[0]) for p in pts], [float(p[1]) for p in pts]


def hevc_rows(index: Path, codec: str = "hevc-bpgcfg") -> list[dict]:
    from distortions.schema import INDEX_COLUMNS

    return [{"image": r["ref_id"], "target": float(r["target_bpp"]), "bpp": r["bpp"],
             "psnr": r["psnr"]}
            for r in read_table(index, INDEX_COLUMNS).to_dict("records") if r["codec"] == codec]


def measure(rd_files: list[Path], hevc: list[dict], cpu_per_step: dict[str, float]) -> list[dict]:
    out = []
    hevc_images = {r["image"] for r in hevc}
    for f in rd_files:
        for res in json.loads(Path(f).read_text())["results"]:
            ckpt = load_checkpoint(res["checkpoint"], kind="codec")
            steps, _ = chain_totals(ckpt["provenance"])
            model = ckpt["model"]
            images = {r["image"] for r in res["rows"]} & hevc_images
            # HEVC's images: those at every target it has (a target some image misses is dropped)
            rate, psnr = mean_curve(res["rows"], "bin_width", images)
            h_rate, h_psnr = mean_curve(hevc, "target", images)
            per_step = cpu_per_step.get(model)
            out.append({
                "checkpoint": res["checkpoint"], "model": model, "steps": steps,
                "cpu_hours": None if per_step is None else steps * per_step / 3600,
                "images": len(images), "bpp": rate, "psnr": psnr,
                "hevc_bpp": h_rate, "hevc_psnr": h_psnr,
                "bd_rate_psnr": bd_rate(h_rate, h_psnr, rate, psnr),
                "bd_psnr": bd_quality(h_rate, h_psnr, rate, psnr)})
    return sorted(out, key=lambda r: (r["model"], r["steps"]))


def _fmt(v, spec):
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def table(rows: list[dict]) -> str:
    lines = ["| checkpoint | model | steps | CPU hours | images | PSNR range dB "
             "| HEVC PSNR range dB | BD-rate (PSNR) vs HEVC | BD-PSNR vs HEVC dB |",
             "|" + "---|" * 9]
    for r in rows:
        lines.append(f"| `{r['checkpoint']}` | {r['model']} | {r['steps']} | "
                     f"{_fmt(r['cpu_hours'], '.3f')} | {r['images']} | "
                     f"{min(r['psnr']):.2f}-{max(r['psnr']):.2f} | "
                     f"{min(r['hevc_psnr']):.2f}-{max(r['hevc_psnr']):.2f} | "
                     f"{_fmt(r['bd_rate_psnr'], '+.1f')} % | {_fmt(r['bd_psnr'], '+.2f')} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for model in sorted({r["model"] for r in rows}):
        pts = [(r["cpu_hours"], r["bd_psnr"]) for r in rows if r["model"] == model
               and r["cpu_hours"] is not None and not math.isnan(r["bd_psnr"])]
        if pts:
            x, y = zip(*pts, strict=True)
            ax.plot(x, y, "o-", label=model)
    ax.axhline(0, color="k", lw=0.8, ls="--", label="hevc-bpgcfg")
    ax.set_xlabel("training CPU hours (steps x measured CPU s/step, one thread)")
    ax.set_ylabel("BD-PSNR vs hevc-bpgcfg (dB)")
    ax.set_title("Kodak: quality against training compute")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_save_figure(fig, path)


def _per_step(spec: str) -> tuple[str, float]:
    name, sep, value = spec.partition("=")
    try:
        if not sep or float(value) <= 0:
            raise ValueError
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{spec!r}: expected MODEL=SECONDS (> 0)") from None


PROG = "python -m codec.train.cpu_hours"


@command(PROG, errors=(OSError, KeyError))
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("rd", nargs="+", type=Path, help="rd.json files of python -m codec.train.rd")
    p.add_argument("--hevc", type=Path, required=True,
                   help="a python -m distortions index.csv with hevc-bpgcfg rows on the images")
    p.add_argument("--cpu-per-step", type=_per_step, action="append", default=[],
                   metavar="MODEL=S", help="measured CPU seconds per training step of a model")
    p.add_argument("--out", type=Path, default=Path("runs/cpu_hours"), help="output folder")
    a = p.parse_args(argv)
    rows = measure(a.rd, hevc_rows(a.hevc), dict(a.cpu_per_step))
    a.out.mkdir(parents=True, exist_ok=True)
    md = table(rows)
    atomic_write_text(a.out / "cpu_hours.md", md)
    atomic_write_text(a.out / "cpu_hours.json", json.dumps(rows, indent=1) + "\n")
    plot(rows, a.out / "cpu_hours.png")
    print(md + f"wrote {a.out}/cpu_hours.{{md,json,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
