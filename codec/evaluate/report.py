"""Outputs of an evaluation: results.csv, summary.csv, results.json, table.md, BD-rates, HTML."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from plic.fsio import atomic_write_text
from plic.tables import rel_path, write_table

RESULT_COLUMNS = [
    "row_id", "method", "kind", "codec", "checkpoint", "trained_with", "target_bpp", "image_id",
    "status", "bpp", "est_bpp", "param", "psnr", "ms_ssim", "ms_ssim_scales", "lpips_alex",
    "lpips_vgg", "lpips_squeeze", "dists", "metric_fitted", "encode_s", "decode_s",
    "bitstream_path", "decoded_path", "ref_path", "error"]
SUMMARY_COLUMNS = [
    "method", "kind", "codec", "trained_with", "target_bpp", "n_images", "n_set", "bpp",
    "est_bpp", "psnr", "ms_ssim", "ms_ssim_scales", "fid", "fid_patches", "kid", "kid_std",
    "lpips_alex", "lpips_vgg", "lpips_squeeze", "dists", "metric_fitted"]
HEVC = "hevc-bpgcfg"
BPG_ANCHOR = "bpg_444_x265_ycbcr"


def write_results(out: Path, rows: list[dict], summary: list[dict]) -> None:
    table = out / "results.csv"
    recs = []
    for r in rows:
        rec = {c: r.get(c) for c in RESULT_COLUMNS}
        rec["row_id"] = f"{r['method']}|{r['target_bpp']:g}|{r['image_id']}"
        for c in ("bitstream_path", "decoded_path", "ref_path", "checkpoint"):
            if rec[c]:
                rec[c] = rel_path(rec[c], table)
        recs.append(rec)
    write_table(table, recs, RESULT_COLUMNS, id_column="row_id")
    write_table(out / "summary.csv", [{c: s.get(c) for c in SUMMARY_COLUMNS} for s in summary],
                SUMMARY_COLUMNS)


def _curve(summary, method, col):
    pts = sorted((s["bpp"], s[col]) for s in summary
                 if s["method"] == method and s["bpp"] and s[col] is not None
                 and s["n_images"] == s["n_set"])
    return [p[0] for p in pts], [p[1] for p in pts]


def bd_rates(summary: list[dict], anchors: bool) -> list[dict]:
    """BD-rate (%) of every method with 2+ complete points against this run's HEVC curve and,
    on Kodak, against the published BPG curve; negative = fewer bits at equal quality."""
    from plic import rd

    refs = {}
    if any(s["method"] == HEVC for s in summary):
        refs[f"{HEVC} (this run)"] = {c: _curve(summary, HEVC, c) for c in ("psnr", "ms_ssim")}
    if anchors and rd.anchors_dir() is not None:
        a = rd.load_anchor(BPG_ANCHOR)
        refs[f"{a.name} (published)"] = {"psnr": (a.bpp, a.psnr), "ms_ssim": (a.bpp, a.ms_ssim)}
    out = []
    for method in dict.fromkeys(s["method"] for s in summary):
        for ref_name, ref in refs.items():
            if method == HEVC and "this run" in ref_name:
                continue
            rec = {"method": method, "anchor": ref_name}
            for col in ("psnr", "ms_ssim"):
                rate, q = _curve(summary, method, col)
                ra, qa = ref[col]
                val = None
                if len(rate) >= 2 and len(ra) >= 2:
                    try:
                        v = rd.bd_rate(ra, qa, rate, q)
                        val = None if math.isnan(v) else v
                    except ValueError:
                        val = None
                rec[f"bd_rate_{col}"] = val
            out.append(rec)
    return out


def _f(v, fmt):
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def kid_cell(s: dict) -> str:
    """KID x 1e3, with its std over subsets when there were several (under 1000 patches KID
    uses every patch once, so there is no spread to show)."""
    if s["kid"] is None:
        return "–"
    return f"{1e3 * s['kid']:.1f}" + (f" ± {1e3 * s['kid_std']:.1f}" if s["kid_std"] else "")


def fid_patch_count(summary: list[dict]) -> int | None:
    """The one patch count of every FID in the table (rows with FID share it by construction:
    only rows covering the whole set get FID); None when no row has FID."""
    counts = {s["fid_patches"] for s in summary if s.get("fid") is not None}
    if len(counts) > 1:
        raise ValueError(f"FIDs at different patch counts {sorted(counts)}: not comparable")
    return counts.pop() if counts else None


def trained_cell(s: dict) -> str:
    """What a learned codec was trained with; classic codecs: not applicable."""
    return s.get("trained_with") or ("–" if s["kind"] == "classic" else "unknown")


def metric_headers(names: dict, summary: list[dict] | None = None) -> list[tuple[str, str]]:
    """(column, header) of the full-reference perceptual metrics, in table order; with
    ``summary``, only the metrics this run measured (a value in some row)."""
    sq = names.get("lpips_squeeze", "lpips-squeeze").replace("lpips", "LPIPS")
    cols = [("lpips_alex", "LPIPS-Alex"), ("lpips_vgg", "LPIPS-VGG"), ("lpips_squeeze", sq),
            ("dists", "DISTS")]
    if names.get("metric_fitted"):
        cols.append(("metric_fitted", f"fitted ({names['metric_fitted']})"))
    if summary is not None:
        cols = [(c, h) for c, h in cols if any(s.get(c) is not None for s in summary)]
    return cols


def by_target(summary: list[dict]) -> list[dict]:
    """Table 1's row order: one block per target (methods in ``summary``'s order inside it), so
    that rows side by side are at the same rate."""
    return [s for t in sorted({s["target_bpp"] for s in summary}) for s in summary
            if s["target_bpp"] == t]


def markdown_table(summary: list[dict], names: dict, simulated_note: str = "") -> str:
    """HiFiC Table-1 layout: one block per target; rows are codecs and our tracks."""
    n_fid = fid_patch_count(summary)
    metrics = metric_headers(names, summary)
    head = ["method", "trained with", "target", "bpp", "PSNR", "MS-SSIM",
            f"FID ({n_fid} patches)" if n_fid else "FID", "KID x1e3", *(h for _, h in metrics)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in by_target(summary):
        short = "" if s["n_images"] == s["n_set"] else f" ({s['n_images']}/{s['n_set']} img)"
        name = f"**{s['method']}**" if s["kind"] == "ours" else s["method"]
        cells = [name + short, trained_cell(s), f"{s['target_bpp']:g}", _f(s["bpp"], ".3f"),
                 _f(s["psnr"], ".2f"), _f(s["ms_ssim"], ".4f"), _f(s["fid"], ".1f"),
                 kid_cell(s), *(_f(s.get(c), ".4f") for c, _ in metrics)]
        lines.append("| " + " | ".join(cells) + " |")
    notes = ["", "bpp: measured on the files (8 x bytes / pixels), mean over images; every file "
             "is at or under its target. PSNR: mean of per-image RGB PSNRs. LPIPS and DISTS: "
             "lower is better. FID/KID on 256x256 patches, the same patch count in every row "
             f"({n_fid or 0} per side): FID is biased by the count, so a row that did not code "
             "every image has none. \"trained with\": the perceptual metric in the codec's "
             "training loss (a codec is flattered by the metric it was trained on); DISTS is "
             "trained on by no codec here."]
    if simulated_note:
        notes.append(simulated_note)
    return "\n".join(lines + notes) + "\n"


BD_NOTE = ("Curves use only targets that every image reached. Against this run's HEVC both "
           "curves are averaged the same way (per image, the best file at or under each "
           "target); a published curve averages fixed encoder settings instead, so the BD-rate "
           "against it carries that difference too (rate-targeted means sit above a "
           "fixed-setting curve): read it as a rough reference, with few points rougher still.")


def bd_markdown(bd: list[dict]) -> str:
    if not bd:
        return "No BD-rates: a curve needs 2+ points at complete coverage (all images).\n"
    lines = ["| method | anchor | BD-rate PSNR | BD-rate MS-SSIM |", "|---|---|---|---|"]
    for r in bd:
        lines.append(f"| {r['method']} | {r['anchor']} | {_f(r['bd_rate_psnr'], '+.1f')}% | "
                     f"{_f(r['bd_rate_ms_ssim'], '+.1f')}% |")
    return "\n".join(lines + ["", BD_NOTE]) + "\n"


def clic_tables(clic_dir: Path | None, top: int = 5) -> list[dict]:
    """The CLIC 2021 image-track leaderboards (top ``top`` by PSNR), for reference only."""
    if clic_dir is None or not clic_dir.is_dir():
        return []
    out = []
    for p in sorted(clic_dir.glob("clic2021_image-*_test_leaderboard.csv")):
        with p.open(newline="") as f:
            recs = list(csv.DictReader(f))
        recs.sort(key=lambda r: -float(r.get("PSNR") or 0))
        track = p.stem.split("_")[1].replace("image-", "0.")
        out.append({"track": f"{float(track[2:]) / 1000:g} bpp" if track[2:].isdigit() else track,
                    "file": p.name, "rows": recs[:top], "n_teams": len(recs)})
    return out


def write_json(out: Path, rows, summary, bd, meta) -> None:
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, np.generic):
            return v.item()
        return v

    doc = {"meta": meta, "summary": [{k: clean(v) for k, v in s.items()} for s in summary],
           "bd_rate": bd,
           "per_image": [{k: clean(r.get(k)) for k in RESULT_COLUMNS if k != "row_id"}
                         for r in rows]}
    atomic_write_text(out / "results.json", json.dumps(doc, indent=1, default=str))
