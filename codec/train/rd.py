"""Rate-distortion of trained checkpoints on a data set, through the real bitstream.

    python -m codec.train.rd CKPT [CKPT ...] --data kodak [--bin-widths 0.25,0.5,1,2,4]
        [--target-bpp 0.075,0.6] [--anchor NAME=ANCHOR ...] [--out runs/train/rd]

For every checkpoint, image and bin width delta: ``codec.api.encode`` (real bpp = 8 x file bytes /
pixels), ``codec.api.decompress``, then PSNR and MS-SSIM (``plic.quality``) of the decoded image.
One RD point per delta is the mean over the images (bpp, PSNR and MS-SSIM each averaged per image,
as the CompressAI anchors are). BD-rate and BD-PSNR (``plic.rd``) compare each curve with the
published anchors of its model (``--anchor``; nan where the quality ranges do not overlap).
``--target-bpp`` also checks rate control: the share of images the bisection over delta brings to
or under each target, and the rate and quality it gets there.

Writes ``OUT/rd.json`` (every per-image number) and ``OUT/rd.md`` (the tables).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from plic.cli import CliError, command, parser, positive_numbers


def measure(model, images: list[tuple[str, np.ndarray]], bin_widths: list[float],
            targets: list[float], progress: bool = True) -> dict:
    """Per-image rows at each bin width and target, and their means."""
    from tqdm import tqdm

    from plic.quality import ms_ssim, psnr

    from .. import api

    rows = []
    jobs = [("delta", d) for d in bin_widths] + [("target", t) for t in targets]
    bar = tqdm(total=len(images) * len(jobs), disable=not progress, desc=model.name,
               dynamic_ncols=True)
    for img_id, img in images:
        for kind, v in jobs:
            t0 = time.perf_counter()
            try:
                res = (api.encode(img, model, bin_width=v) if kind == "delta"
                       else api.encode(img, model, target_bpp=v))
            except api.RateControlError:
                rows.append({"image": img_id, kind: v, "reached": False})
                bar.update(1)
                continue
            rec = api.decompress(res.data, model)
            rows.append({"image": img_id, kind: v, "reached": True, "bpp": res.bpp,
                         "bin_width": float(res.bin_width), "psnr": psnr(img, rec),
                         "ms_ssim": ms_ssim(img, rec), "seconds": time.perf_counter() - t0})
            bar.update(1)
    bar.close()

    def mean_of(sel):
        ok = [r for r in sel if r["reached"]]
        out = {"images": len(sel), "reached": len(ok)}
        for k in ("bpp", "psnr", "ms_ssim", "bin_width"):
            out[k] = float(np.mean([r[k] for r in ok])) if ok else math.nan
        if ok:
            out["bpp_min"] = float(min(r["bpp"] for r in ok))
            out["bpp_max"] = float(max(r["bpp"] for r in ok))
        return out

    curve = [{"delta": d, **mean_of([r for r in rows if r.get("delta") == d])}
             for d in bin_widths]
    rate_control = [{"target": t, **mean_of([r for r in rows if r.get("target") == t])}
                    for t in targets]
    return {"rows": rows, "curve": curve, "rate_control": rate_control}


def compare(curve: list[dict], anchor_name: str) -> dict:
    """BD-rate (PSNR, MS-SSIM) and BD-PSNR of ``curve`` against a published anchor."""
    from plic.rd import bd_quality, bd_rate, load_anchor

    a = load_anchor(anchor_name)
    bpp = [p["bpp"] for p in curve]
    out = {"anchor": a.source, "anchor_psnr_range": [min(a.psnr), max(a.psnr)],
           "anchor_bpp_range": [min(a.bpp), max(a.bpp)],
           "bd_rate_psnr": bd_rate(a.bpp, a.psnr, bpp, [p["psnr"] for p in curve]),
           "bd_psnr_db": bd_quality(a.bpp, a.psnr, bpp, [p["psnr"] for p in curve])}
    if a.ms_ssim:
        out["bd_rate_ms_ssim"] = bd_rate(a.bpp, a.ms_ssim, bpp, [p["ms_ssim"] for p in curve])
    return out


def _fmt(v, spec=".3f"):
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def markdown(results: list[dict], meta: dict) -> str:
    lines = [f"# Rate-distortion on {meta['data']} ({meta['n_images']} images)", "",
             f"`{meta['command']}`", "",
             f"{meta['platform']}; {meta['seconds']:.0f} s; 1-minute load average "
             f"{meta['load_before']} before, {meta['load_after']} after (shared machine).", ""]
    for r in results:
        lines += [f"## {r['label']} (`{r['checkpoint']}`, {r['size_mb']:.2f} MB)", "",
                  "| bin width | bpp (mean) | bpp min-max | PSNR dB | MS-SSIM |",
                  "|---|---|---|---|---|"]
        for p in r["curve"]:
            lines.append(f"| {p['delta']:g} | {_fmt(p['bpp'], '.4f')} | "
                         f"{_fmt(p.get('bpp_min'))}-{_fmt(p.get('bpp_max'))} | "
                         f"{_fmt(p['psnr'], '.2f')} | {_fmt(p['ms_ssim'], '.4f')} |")
        if r["rate_control"]:
            lines += ["", "| target bpp | images reached | bpp (mean) | PSNR dB | MS-SSIM |",
                      "|---|---|---|---|---|"]
            for p in r["rate_control"]:
                lines.append(f"| {p['target']:g} | {p['reached']}/{p['images']} | "
                             f"{_fmt(p['bpp'], '.4f')} | {_fmt(p['psnr'], '.2f')} | "
                             f"{_fmt(p['ms_ssim'], '.4f')} |")
        for c in r["anchors"]:
            lines += ["", f"Against `{c['anchor']}` (PSNR {c['anchor_psnr_range'][0]:.2f}-"
                          f"{c['anchor_psnr_range'][1]:.2f} dB over "
                          f"{c['anchor_bpp_range'][0]:.3f}-{c['anchor_bpp_range'][1]:.3f} bpp): "
                          f"BD-rate (PSNR) {_fmt(c['bd_rate_psnr'], '+.1f')} %, BD-rate (MS-SSIM) "
                          f"{_fmt(c.get('bd_rate_ms_ssim'), '+.1f')} %, BD-PSNR "
                          f"{_fmt(c['bd_psnr_db'], '+.2f')} dB (n/a: no overlap)."]
        lines.append("")
    return "\n".join(lines) + "\n"


PROG = "python -m codec.train.rd"


def build_parser() -> argparse.ArgumentParser:
    from ..models import anchors

    floats = positive_numbers("values must be positive", finite=True, empty=True)
    p = parser(
        PROG, __doc__.split("\n\n")[0],
        epilog="example:\n  python -m codec.train.rd checkpoints/mbt2018-small-bsds500.pt "
               "--data kodak --target-bpp 0.075,0.6")
    p.add_argument("checkpoints", nargs="+", help="codec checkpoints (kind 'codec')")
    p.add_argument("--data", default="kodak", help="manifest name, manifest .csv or folder")
    p.add_argument("--data-root", default="", help="folder manifest paths resolve against")
    p.add_argument("--limit", type=int, default=0, help="first N images only (0: all)")
    p.add_argument("--bin-widths", type=floats, default=[0.25, 0.5, 1.0, 2.0, 4.0],
                   help="bin widths delta of the RD curve (default 0.25,0.5,1,2,4)")
    p.add_argument("--target-bpp", type=floats, default=[],
                   help="targets for the rate-control check (e.g. 0.075,0.6)")
    p.add_argument("--anchor", action="append", default=[], metavar="MODEL=ANCHOR",
                   help="anchor file stem per registry name (default: the one each model "
                        "declares: " + ", ".join(f"{k}={v}" for k, v in anchors().items()) + ")")
    p.add_argument("--out", default="", help="output folder (default runs/train/rd)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from plic.checkpoint import git_commit
    from plic.datasets import resolve_data
    from plic.image_io import read_image
    from plic.measurement import load_1min, machine, write_report
    from plic.paths import runs_dir
    from plic.rd import anchors_dir

    from .. import api
    from ..models import anchors as declared_anchors

    if args.threads:
        torch.set_num_threads(args.threads)
    anchors = declared_anchors()
    for a in args.anchor:
        k, sep, v = a.partition("=")
        if not sep:
            raise CliError(f"--anchor {a!r} is not MODEL=ANCHOR")
        anchors[k] = v
    records = resolve_data(args.data, args.data_root or None)
    models = [(c, api.load(c)) for c in args.checkpoints]
    records = records[:args.limit] if args.limit else records
    images = [(r.id, read_image(r.path)) for r in records]
    load_before = load_1min()
    t0 = time.time()
    results = []
    for path, model in models:
        m = measure(model, images, args.bin_widths, args.target_bpp, not args.no_progress)
        comp = []
        if model.name in anchors and anchors_dir() is not None:
            try:
                comp.append(compare(m["curve"], anchors[model.name]))
            except (FileNotFoundError, ValueError) as e:
                print(f"warning: no anchor comparison for {model.name}: {e}", file=sys.stderr)
        results.append({"label": model.name, "checkpoint": str(path),
                        "size_mb": Path(path).stat().st_size / 2 ** 20, **m, "anchors": comp})
    meta = {"data": args.data, "n_images": len(images), "seconds": time.time() - t0,
            "load_before": load_before, "load_after": load_1min(),
            "platform": f"{machine()}, torch "
                        f"{torch.__version__}, {torch.get_num_threads()} thread(s)",
            "git_commit": git_commit(),
            "command": "python -m codec.train.rd " + " ".join(argv if argv is not None
                                                              else sys.argv[1:])}
    out = Path(args.out) if args.out else runs_dir() / "train" / "rd"
    write_report(out, "rd", {"meta": meta, "results": results}, markdown(results, meta),
                 indent=1)
    print(f"wrote {out / 'rd.md'} and {out / 'rd.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
