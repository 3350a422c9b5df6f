"""Small server-rendered SVG charts (no plotting library on the request path: a page stays
fast). Text is escaped; the markup goes into the page as it is."""

from __future__ import annotations

import math
from html import escape

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def line_chart(series: list[tuple[str, list[tuple[float, float, float, float]]]], xlabel: str,
               ylabel: str, title: str, width: int = 560, height: int = 320) -> str:
    """Lines with 95% error bars: ``series`` = [(name, [(x, y, lo, hi), ...]), ...]."""
    pts = [p for _, s in series for p in s if all(math.isfinite(v) for v in p[:2])]
    if not pts:
        return f'<p class="muted">{escape(title)}: no data yet</p>'
    xs = [p[0] for p in pts]
    ys = [v for p in pts for v in p[1:] if math.isfinite(v)]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    xpad = (x1 - x0) * 0.05
    x0, x1 = x0 - xpad, x1 + xpad
    pad = (y1 - y0) * 0.08 or 1.0
    y0, y1 = y0 - pad, y1 + pad
    left, right, top, bottom = 60, 150, 28, 44
    pw, ph = width - left - right, height - top - bottom

    def sx(x):
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y):
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{escape(title)}">',
           f'<text x="{left}" y="16" class="t">{escape(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="frame"/>']
    for t in _ticks(y0, y1):
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" '
                   f'class="grid"/><text x="{left - 6}" y="{sy(t) + 4:.1f}" class="yl">'
                   f'{_fmt(t)}</text>')
    for t in _ticks(x0, x1):
        out.append(f'<text x="{sx(t):.1f}" y="{top + ph + 16}" class="xl">{_fmt(t)}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 8}" class="xl">{escape(xlabel)}</text>')
    out.append(f'<text x="14" y="{top + ph / 2}" class="yl" transform="rotate(-90 14 '
               f'{top + ph / 2})">{escape(ylabel)}</text>')
    for i, (name, s) in enumerate(series):
        c = COLOURS[i % len(COLOURS)]
        s = sorted(p for p in s if math.isfinite(p[0]) and math.isfinite(p[1]))
        if not s:
            continue
        path = " ".join(f"{'M' if j == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}"
                        for j, (x, y, _, _) in enumerate(s))
        out.append(f'<path d="{path}" stroke="{c}" class="line"/>')
        for x, y, lo, hi in s:
            if math.isfinite(lo) and math.isfinite(hi):
                out.append(f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{sy(lo):.1f}" '
                           f'y2="{sy(hi):.1f}" stroke="{c}" class="err"/>')
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{c}">'
                       f'<title>{escape(name)}: {y:.4g} at {x:.4g}</title></circle>')
        ly = top + 14 + 18 * i
        out.append(f'<rect x="{left + pw + 12}" y="{ly - 9}" width="12" height="10" '
                   f'fill="{c}"/><text x="{left + pw + 30}" y="{ly}" class="lg">'
                   f'{escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def bar_chart(bars: list[tuple[str, float]], title: str, width: int = 560,
              height: int = 160) -> str:
    """Vertical bars (label, value), e.g. answers per hour; labels shown every few bars."""
    if not bars:
        return f'<p class="muted">{escape(title)}: no data yet</p>'
    left, top, bottom = 44, 24, 30
    pw, ph = width - left - 10, height - top - bottom
    vmax = max(v for _, v in bars) or 1
    bw = pw / len(bars)
    every = max(1, len(bars) // 8)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{escape(title)}"><text x="{left}" y="14" class="t">{escape(title)}'
           f'</text><text x="{left - 6}" y="{top + 8}" class="yl">{_fmt(vmax)}</text>']
    for i, (label, v) in enumerate(bars):
        h = v / vmax * ph
        x = left + i * bw
        out.append(f'<rect x="{x + 1:.1f}" y="{top + ph - h:.1f}" width="{max(1.0, bw - 2):.1f}" '
                   f'height="{h:.1f}" class="bar"><title>{escape(label)}: {v:g}</title></rect>')
        if i % every == 0:
            out.append(f'<text x="{x + bw / 2:.1f}" y="{top + ph + 14}" class="xl">'
                       f'{escape(label)}</text>')
    out.append("</svg>")
    return "".join(out)
