"""Write every output of an evaluation into one folder; returns the HTML report's path."""

from __future__ import annotations

import math
from pathlib import Path

from plic.fsio import atomic_write_text

from . import plots, report


def _fmt(v, spec):
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def write_all(out: Path, rows, summary, records, meta: dict, anchors: bool,
              crop_images: int = 2, crop_size: int = 256) -> Path:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from plic.rd import anchors_dir

    out = Path(out)
    report.write_results(out, rows, summary)
    bd = report.bd_rates(summary, anchors)
    names = meta.get("metric_names", {})
    banner = f"SIMULATED: {meta['simulated']}" if meta.get("simulated") else ""
    atomic_write_text(out / "table.md", report.markdown_table(summary, names, banner))
    atomic_write_text(out / "bd_rate.md", report.bd_markdown(bd))
    title = f"{meta['data']} ({meta['n_images']} images)" + (" — SIMULATED labels"
                                                              if banner else "")
    plot_paths = plots.rd_plots(summary, out, anchors, title)
    figs = plots.crops(rows, records, out, n_images=crop_images, size=crop_size)
    ad = anchors_dir()
    clic = report.clic_tables(ad.parent / "clic" if ad is not None else None)
    scales = sorted({s["ms_ssim_scales"] for s in summary if s.get("ms_ssim_scales")})
    meta = {**meta, "ms_ssim_scales": "/".join(str(s) for s in scales) or "5"}
    report.write_json(out, rows, summary, bd, meta)
    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                      autoescape=select_autoescape(["html", "j2"]))
    html = env.get_template("report.html.j2").render(
        meta=meta, summary=summary, rows1=report.by_target(summary), names=names,
        plots=[p.name for p in plot_paths],
        metrics=report.metric_headers(names, summary), n_fid=report.fid_patch_count(summary),
        trained_cell=report.trained_cell,
        anchors=anchors and ad is not None, bd=bd, bd_note=report.BD_NOTE, kid_cell=report.kid_cell,
        figs=figs, clic=clic,
        notes=meta.get("notes", []), fmt=_fmt)
    return atomic_write_text(out / "report.html", html)
