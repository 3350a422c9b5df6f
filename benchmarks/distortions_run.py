"""``python -m benchmarks.distortions_run``: wall time and images/s of a distortions run, and the
HEVC curve's BD-rate against the published BPG anchor.

Default: the 24 Kodak images x every classic codec and every learned codec (one per codec
checkpoint in ``checkpoints/``, as ``python -m distortions`` finds them) x the 4 default targets,
from a cold output folder (``runs/bench/distortions-work``), written to
``runs/bench/distortions.md`` and ``.json``. The machine's load average is recorded with the
timing: on a shared CPU the wall time says as much about the neighbours as about the code.

Each codec's curve is the rate-targeted one the index holds: for each target every image
reached, the mean bpp and the mean per-image PSNR / MS-SSIM over all images. The BD-rate of
``hevc-bpgcfg`` against the published BPG curve (the check that it stands in for BPG) is taken
from a fixed-QP sweep over the same images, the anchor's own averaging; it is only meaningful
on all 24 Kodak images (the anchor is their mean), so a ``--limit`` run says so beside it.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path

from distortions import store as st
from distortions.backends import BackendOptions, classic_names, names
from distortions.checkpoints import CheckpointChoiceError, read_inputs, select_codecs
from distortions.run import DEFAULT_TARGETS, DistortionsConfig, run
from distortions.schema import INDEX_COLUMNS, INDEX_ID
from plic.cli import CliError, command, parser
from plic.datasets import DataError, add_data_args
from plic.measurement import load_averages, write_report
from plic.paths import runs_dir
from plic.tables import read_table

ANCHOR = "bpg_444_x265_ycbcr"


def codec_curve(points, codec: str) -> dict | None:
    """Mean (bpp, PSNR, MS-SSIM) per target of one codec, over all images, at the targets every
    image reached (a target one image cannot reach drops out of the curve)."""
    df = points[points["codec"] == codec]
    if df.empty:
        return None
    refs = df["ref_id"].nunique()
    ok = df[df["status"] == st.STATUS_OK]
    reached = ok.groupby("target_bpp")["ref_id"].nunique()
    targets = sorted(t for t, n in reached.items() if n == refs)
    if not targets:
        return None
    g = ok[ok["target_bpp"].isin(targets)].groupby("target_bpp")
    return {"codec": codec, "images": int(refs), "targets": targets,
            "bpp": list(g["bpp"].mean()), "psnr": list(g["psnr"].mean()),
            "ms_ssim": list(g["ms_ssim"].mean()),
            "unreached": sorted(set(df["target_bpp"]) - set(targets))}


def read_points(out: Path):
    """One row per (codec, image, target) search, with the index row it landed on."""
    store = st.Store(out)
    index = read_table(store.index_path, INDEX_COLUMNS, INDEX_ID)
    searches = read_table(store.search_path, st.SEARCH_COLUMNS, st.SEARCH_ID)
    df = searches[["ref_id", "codec", "target_bpp", "status", "dist_id"]].merge(
        index[["dist_id", "bpp", "psnr", "ms_ssim"]], on="dist_id", how="left")
    df["target_bpp"] = df["target_bpp"].astype(float)
    for c in ("bpp", "psnr", "ms_ssim"):
        df[c] = df[c].replace("", "nan").astype(float)
    return df


def all_curves(out: Path) -> dict:
    """Every codec's curve from a run's ``index.csv`` and ``searches.csv``."""
    if not (out / "index.csv").is_file() or not (out / "searches.csv").is_file():
        return {}
    df = read_points(out)
    curves = {c: codec_curve(df, c) for c in sorted(df["codec"].unique())}
    return {c: v for c, v in curves.items() if v is not None}


def bd_against_anchor(curve: dict, anchor: str = ANCHOR) -> dict:
    from plic.rd import bd_quality, bd_rate, load_anchor

    try:
        a = load_anchor(anchor)
    except FileNotFoundError as e:
        return {"anchor": anchor, "error": str(e)}
    out = {"anchor": anchor,
           "bd_rate_psnr_pct": bd_rate(a.bpp, a.psnr, curve["bpp"], curve["psnr"]),
           "bd_psnr_db": bd_quality(a.bpp, a.psnr, curve["bpp"], curve["psnr"])}
    if a.ms_ssim:
        out["bd_rate_msssim_pct"] = bd_rate(a.bpp, a.ms_ssim, curve["bpp"], curve["ms_ssim"])
    return out


SWEEP_QPS = (32, 37, 42, 47)  # BPG q = QP - 1; spans the anchor's 0.07 .. 0.7 bpp


def _sweep_one(path: str, qps: tuple, preset: str, ffmpeg: str, crop: int | None) -> list:
    """Worker: one image coded by hevc-bpgcfg at each QP -> [(qp, bpp, psnr, ms_ssim)]."""
    from distortions.backends import HevcBpgcfgBackend
    from plic.image_io import center_crop, read_image
    from plic.quality import bpp, ms_ssim, psnr

    img = read_image(path)
    if crop:
        img = center_crop(img, crop).copy()
    b = HevcBpgcfgBackend(ffmpeg=ffmpeg, preset=preset)
    h, w = img.shape[:2]
    out = []
    for qp in qps:
        data = b.encode(img, qp)
        dec = b.decode(data)
        out.append((qp, bpp(len(data), h, w), psnr(img, dec), ms_ssim(img, dec)))
    return out


def hevc_qp_sweep(records, qps=SWEEP_QPS, preset: str = "slow", ffmpeg: str = "ffmpeg",
                  crop: int | None = None, jobs: int = 1, progress: bool = True) -> dict:
    """The anchor's own averaging: at each fixed QP, mean bpp and mean per-image PSNR and
    MS-SSIM over all images. A rate-targeted curve (one QP per image) is not comparable with a
    fixed-QP anchor: averaging over images at equal rate and at equal QP are different curves
    (per-image rate targeting moves the mean PSNR at a given mean bpp)."""
    import concurrent.futures as cf
    import multiprocessing as mp

    from tqdm import tqdm

    per_image = []
    bar = tqdm(total=len(records), desc="hevc QP sweep", unit="img", disable=not progress,
               file=sys.stderr)
    with cf.ProcessPoolExecutor(max_workers=max(1, jobs),
                                mp_context=mp.get_context("spawn")) as ex:
        futs = [ex.submit(_sweep_one, str(r.path), tuple(qps), preset, ffmpeg, crop)
                for r in records]
        for f in cf.as_completed(futs):
            per_image.append(f.result())
            bar.update(1)
    bar.close()
    n = len(per_image)
    cols = list(zip(*[list(zip(*rows)) for rows in per_image]))  # (qp, bpp, psnr, msssim)
    return {"codec": "hevc-bpgcfg", "images": n, "qps": list(qps),
            "bpp": [sum(v) / n for v in zip(*cols[1])],
            "psnr": [sum(v) / n for v in zip(*cols[2])],
            "ms_ssim": [sum(v) / n for v in zip(*cols[3])]}


def _md(res: dict) -> str:
    t = res["timing"]
    crop = f", crop {res['crop']}" if res["crop"] else ""
    lines = [
        "# distortions benchmark", "",
        f"command: `{res['command']}`", "",
        f"- images: {t['images']} ({res['data']}{crop}), codecs: {', '.join(res['codecs'])}, "
        f"targets: {', '.join(map(str, res['targets']))}",
        f"- wall time: {t['wall_s']:.1f} s, {t['images_per_s']:.4f} images/s, "
        f"{t['encodes']} encodes, {t['rows']} index rows, {t['unreachable']} unreachable",
        f"- machine: {res['machine']['cpus']} CPUs, {res['jobs']} workers, load average "
        f"before/after {res['machine']['load_before']} / {res['machine']['load_after']} "
        f"(shared CPU: other work was running)", ""]
    c, bd = res.get("hevc_curve"), res.get("bd")
    if c is None:
        bd = None
    curves = res.get("curves") or {}
    if curves:
        lines += ["## every codec's rate-targeted curve (means over all images; a target "
                  "some image cannot reach is left out)", "",
                  "| codec | target bpp | mean bpp | mean PSNR (dB) | mean MS-SSIM |",
                  "|---|---|---|---|---|"]
        for name, cc in curves.items():
            lines += [f"| {name} | {t} | {b:.4f} | {p:.3f} | {m:.4f} |"
                      for t, b, p, m in zip(cc["targets"], cc["bpp"], cc["psnr"], cc["ms_ssim"])]
            if cc["unreached"]:
                lines.append(f"| {name} | {', '.join(map(str, cc['unreached']))} | not reached "
                             f"on every image | | |")
        lines.append("")
    sw = res.get("hevc_sweep")
    if sw:
        lines += [f"## hevc-bpgcfg at fixed QPs ({sw['images']} images, preset "
                  f"{res['x265_preset']}; the anchor's averaging)", "",
                  "| QP | mean bpp | mean PSNR (dB) | mean MS-SSIM |", "|---|---|---|---|"]
        lines += [f"| {q} | {b:.4f} | {p:.3f} | {m:.4f} |"
                  for q, b, p, m in zip(sw["qps"], sw["bpp"], sw["psnr"], sw["ms_ssim"])]
        lines.append("")
        c = sw
    if c:
        lines += [f"## hevc-bpgcfg against BPG ({c['images']} images, "
                  + ("fixed-QP curve above" if sw else "rate-targeted curve: not comparable "
                     "with the fixed-QP anchor, see --no-sweep") + ")", ""]
    if bd:
        if "error" in bd:
            lines.append(f"BD-rate: anchor missing ({bd['error']})")
        else:
            lines.append(f"BD-rate vs `{bd['anchor']}`: {bd['bd_rate_psnr_pct']:+.2f}% (PSNR), "
                         f"{bd.get('bd_rate_msssim_pct', math.nan):+.2f}% (MS-SSIM); "
                         f"BD-PSNR {bd['bd_psnr_db']:+.3f} dB")
            if c["images"] != 24 or res["data"] != "kodak" or res["crop"]:
                lines.append("(not the 24 full Kodak images: the anchor is their mean, so this "
                             "BD-rate is not a like-for-like comparison)")
    return "\n".join(lines) + "\n"


PROG = "python -m benchmarks.distortions_run"


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    add_data_args(p, default="kodak")
    p.add_argument("--codecs", default=None,
                   help=f"comma-separated codecs (default: {','.join(classic_names())} and every "
                        f"learned codec; known: {','.join(names())}, learned-NAME)")
    p.add_argument("--checkpoint", action="append", default=None, metavar="[NAME=]PATH",
                   help="codec checkpoint of a learned codec (repeatable; replaces the "
                        "checkpoints found in --checkpoint-dir)")
    p.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                   help="folder of codec checkpoints (default: checkpoints/ of the repository)")
    p.add_argument("--targets", default=",".join(map(str, DEFAULT_TARGETS)))
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--crop", type=int, default=None)
    p.add_argument("--jobs", type=int, default=0, help="workers (default: all cores)")
    p.add_argument("--x265-preset", default="slow")
    p.add_argument("--work", default=None,
                   help="output folder of the run (default runs/bench/distortions-work)")
    p.add_argument("--keep", action="store_true",
                   help="reuse the work folder (resume) instead of starting cold")
    p.add_argument("--name", default="distortions", help="report name under runs/bench/")
    p.add_argument("--no-sweep", action="store_true",
                   help="skip the fixed-QP hevc-bpgcfg sweep (QPs "
                        f"{','.join(map(str, SWEEP_QPS))}) the BD-rate against BPG is taken "
                        "from; the BD-rate then uses the rate-targeted curve, which is not "
                        "comparable with the anchor")
    args = p.parse_args(argv)
    try:
        records, learned = read_inputs(args)
    except (DataError, CheckpointChoiceError) as e:
        raise CliError(e) from None
    requested = None if args.codecs is None else tuple(c for c in args.codecs.split(",") if c)
    codecs, choice_errors = select_codecs(requested, learned.codecs, classic_names())
    print(learned.summary())
    for msg in choice_errors:
        print(f"error: {msg}", file=sys.stderr)
    if not codecs:
        return 2
    if args.limit:
        records = records[:args.limit]
    bench_dir = runs_dir() / "bench"
    work = Path(args.work) if args.work else bench_dir / "distortions-work"
    if work.exists() and not args.keep:
        shutil.rmtree(work)
    targets = tuple(float(t) for t in args.targets.split(","))
    jobs = args.jobs or os.cpu_count() or 1
    cfg = DistortionsConfig(out=str(work), codecs=codecs, targets=targets, crop=args.crop,
                            jobs=jobs,
                            backend=BackendOptions(x265_preset=args.x265_preset,
                                                   learned=tuple(learned.codecs.items())))
    load_before = load_averages()
    t0 = time.perf_counter()
    report = run(records, cfg)
    wall = time.perf_counter() - t0
    res = {
        "command": "python -m benchmarks.distortions_run " + " ".join(argv if argv is not None
                                                              else sys.argv[1:]),
        "data": args.data, "crop": args.crop, "codecs": list(codecs), "targets": list(targets),
        "jobs": jobs, "x265_preset": args.x265_preset, "learned": learned.codecs,
        "timing": {"images": len(records), "wall_s": wall,
                   "images_per_s": len(records) / wall if wall else math.nan,
                   "encodes": report.encodes, "rows": report.new_rows + report.reused_rows,
                   "unreachable": report.unreachable, "errors": len(report.errors)},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_before": load_before,
                    "load_after": load_averages()},
    }
    curves = all_curves(work)
    res["curves"] = curves
    curve = curves.get("hevc-bpgcfg")
    if curve:
        res["hevc_curve"] = curve
        if not args.no_sweep:
            t1 = time.perf_counter()
            curve = res["hevc_sweep"] = hevc_qp_sweep(records, preset=args.x265_preset,
                                                      crop=args.crop, jobs=jobs)
            res["hevc_sweep"]["wall_s"] = time.perf_counter() - t1
        if curve["images"] and len(curve["bpp"]) >= 2:
            res["bd"] = bd_against_anchor(curve)
    write_report(bench_dir, args.name, res, _md(res), json_end="\n")
    for where, msg in report.errors:
        print(f"error: {where}: {msg}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
