"""The report's score chart: best-so-far and the median of each iteration's children, as inline SVG.

It is drawn twice, for a wide screen (640 units wide) and for a phone (360 units, legend on two lines,
larger text, fewer axis labels when there are many iterations); the style sheet shows one of them. An
SVG scales as a whole, so one picture shrunk to a phone's width would shrink its text to about 6 px.
"""

from __future__ import annotations

import html
import math
from typing import Any

SERIES = ((1, "#c98a00", "best so far"), (2, "#2a5bd7", "median of the iteration's children"))


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _band(values: list[float]) -> tuple[float, float, float]:
    """(low, high, tick) of the y axis: round numbers around the values, within 0-100."""
    spread = max(values) - min(values)
    tick = 5 if spread <= 20 else 10 if spread <= 50 else 20
    low = max(0.0, (min(values) // tick) * tick)
    high = min(100.0, -(-max(values) // tick) * tick)
    if high - low < tick:  # one flat line: give it a band of its own
        low, high = (high - tick, high) if high >= tick else (low, low + tick)
    return low, high, tick


def chart_svg(iterations: list[dict[str, Any]], width: int = 640, height: int = 260, narrow: bool = False) -> str:
    """Best-so-far and median of each iteration's children, as an inline SVG line chart."""
    points = [(it["iteration"], it.get("best_total"), it.get("children_median")) for it in iterations]
    values = [v for _, b, m in points for v in (b, m) if isinstance(v, int | float)]
    if not values:
        return '<p class="muted">No iteration was ranked yet.</p>'
    low, high, tick = _band(values)
    font = 13 if narrow else 11
    left, right, top, bottom = 40 if narrow else 48, 14, (52 if narrow else 34), 40
    plot_w, plot_h = width - left - right, height - top - bottom
    count = len(points)
    label_every = max(1, math.ceil(count / max(1, plot_w // (font * 2.4))))

    def x(i: int) -> float:
        return left + (plot_w * i / (count - 1) if count > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - low) / (high - low))

    parts = [f'<svg class="{"narrow" if narrow else "wide"}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'style="max-width:{width * (1.1 if narrow else 1.4):.0f}px" role="img" '
             f'aria-label="best and median score per iteration" font-family="system-ui, sans-serif" font-size="{font}">']
    for s in range(round((high - low) / tick) + 1):
        v = low + tick * s
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e3e7ed"/>'
                     f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#5f6b7a">{v:.0f}</text>')
    for i, (k, _, _) in enumerate(points):
        if i % label_every == 0 or i == count - 1:
            parts.append(f'<text x="{x(i):.1f}" y="{height - bottom + 16}" text-anchor="middle" fill="#5f6b7a">{int(k)}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" fill="#5f6b7a">iteration</text>')
    for index, colour, label in SERIES:
        series = [(x(i), y(p[index])) for i, p in enumerate(points) if isinstance(p[index], int | float)]
        if len(series) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in series)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.5"/>')
        for i, p in enumerate(points):
            if isinstance(p[index], int | float):
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(p[index]):.1f}" r="4" fill="{colour}">'
                             f'<title>iteration {int(p[0])}: {_esc(label)} {p[index]:.1f}</title></circle>')
        legend_x, legend_y = (left, 8 + 20 * (index - 1)) if narrow else (left + 10 + 130 * (index - 1), 10)
        parts.append(f'<rect x="{legend_x}" y="{legend_y}" width="14" height="4" fill="{colour}"/>'
                     f'<text x="{legend_x + 20}" y="{legend_y + 6}" fill="#1d2330">{_esc(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def chart(iterations: list[dict[str, Any]]) -> str:
    """The wide and the narrow drawing; the style sheet shows the one that fits the screen."""
    wide = chart_svg(iterations)
    if not wide.startswith("<svg"):
        return wide
    return wide + chart_svg(iterations, width=360, height=240, narrow=True)
