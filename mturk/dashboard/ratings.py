"""The results of an ACR or DSIS rating study for the dashboard: ``mturk.analysis.mos``'s own
screening and scores (``rating_results``, the code that writes ``mos.csv``), shown instead of
written. Rating studies are small (a few thousand ratings), so this runs on the ratings frame;
the 2AFC figures (``figures``) are the ones aggregated in SQL for large studies."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from ..analysis.mos import codec_table, rating_results
from .svg import line_chart


@dataclass
class RatingFigures:
    design: str
    summary: dict
    codecs: list[dict]
    stimuli: list[dict]
    workers: list[dict]
    chart: str
    simulated: bool


def rating_figures(db, include_unverified: bool = False) -> RatingFigures:
    df = db.ratings_frame()
    if df.empty:
        return RatingFigures("", dict(error="no ratings yet"), [], [], [], "", False)
    try:
        r = rating_results(df, include_unverified=include_unverified)
    except ValueError as e:
        return RatingFigures("", dict(error=str(e)), [], [], [], "", False)
    table = codec_table(r["mos"])
    series = []
    for codec, g in table.groupby("codec", sort=True):
        pts = []
        for row in g.itertuples():
            x = pd.to_numeric(row.target_bpp, errors="coerce")
            ci = row.ci if row.ci == row.ci else 0.0
            pts.append((float(x), row.mean, row.mean - ci, row.mean + ci))
        series.append((codec, pts))
    label = "DMOS" if r["design"] == "acr" else "MOS (DSIS impairment)"
    chart = line_chart(series, "target bpp (track)", label + ", 95% CI",
                       f"{r['design'].upper()} opinion scores against bpp")
    screen = r["screen"].reset_index()
    screen["inconsistent"] = screen.worker_id.isin(r["inconsistent"])
    screen["kept"] = ~screen.worker_id.isin(r["rejected"])
    noise = r["fit"].noise
    screen["noise"] = screen.worker_id.map(noise).fillna(screen.worker_id.map(r["first"].noise))
    pool = r["pool"]
    summary = dict(counted_ratings=int(len(pool)), kept_ratings=int(len(r["kept"])),
                   workers=int(len(screen)), bt500_rejected=sorted(r["bt500"]),
                   inconsistent_workers=sorted(r["inconsistent"]),
                   stimuli=int(len(r["mos"])))
    mos = r["mos"].drop(columns=["ref_path", "path"]).to_dict("records")
    for m in mos:
        for k, v in m.items():
            if isinstance(v, float) and math.isnan(v):
                m[k] = None
    return RatingFigures(r["design"], summary, table.to_dict("records"), mos,
                         screen.to_dict("records"), chart,
                         bool(pool.simulated.astype(int).any()))
