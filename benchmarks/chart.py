"""The chart in docs/benchmarks.md: CPU per message and RSS per connection against N.

Owns: a dependency-free SVG of two log-log panels, one line per server.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from xml.sax.saxutils import escape

__all__ = ["render_chart"]

COLOURS = {"sysstream": "#1f77b4", "floor": "#2ca02c", "naive": "#d62728"}
PANEL_W, PANEL_H, MARGIN = 380, 260, 60
Series = dict[str, list[tuple[float, float]]]


def _ticks(low: float, high: float) -> list[float]:
    ticks = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for mantissa in (1, 2, 5):
            value = mantissa * 10.0**exponent
            if low <= value <= high:
                ticks.append(value)
    return ticks


def _label(value: float) -> str:
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def _panel(x0: float, title: str, unit: str, series: Series) -> list[str]:
    points = [point for line in series.values() for point in line if point[1] > 0]
    if not points:
        return []
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    x_lo, x_hi = min(xs) / 1.3, max(xs) * 1.3
    y_lo, y_hi = min(ys) / 1.5, max(ys) * 1.5

    def px(x: float) -> float:
        return x0 + MARGIN + (math.log(x / x_lo) / math.log(x_hi / x_lo)) * PANEL_W

    def py(y: float) -> float:
        return 30 + PANEL_H - (math.log(y / y_lo) / math.log(y_hi / y_lo)) * PANEL_H

    out = [
        f'<text x="{x0 + MARGIN + PANEL_W / 2}" y="18" text-anchor="middle" '
        f'font-weight="bold">{escape(title)}</text>',
        f'<rect x="{x0 + MARGIN}" y="30" width="{PANEL_W}" height="{PANEL_H}" '
        'fill="none" stroke="#888"/>',
        f'<text x="{x0 + MARGIN + PANEL_W / 2}" y="{PANEL_H + 70}" text-anchor="middle">'
        "clients (N, log scale)</text>",
        f'<text x="{x0 + 14}" y="{30 + PANEL_H / 2}" text-anchor="middle" '
        f'transform="rotate(-90 {x0 + 14} {30 + PANEL_H / 2})">{escape(unit)}</text>',
    ]
    for x in sorted(set(xs)):
        out.append(
            f'<text x="{px(x):.1f}" y="{PANEL_H + 48}" text-anchor="middle">{_label(x)}</text>'
        )
    for y in _ticks(y_lo, y_hi):
        out.append(
            f'<line x1="{x0 + MARGIN}" x2="{x0 + MARGIN + PANEL_W}" y1="{py(y):.1f}" '
            f'y2="{py(y):.1f}" stroke="#eee"/>'
            f'<text x="{x0 + MARGIN - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{_label(y)}</text>'
        )
    for name, line in series.items():
        line = [(x, y) for x, y in line if y > 0]
        colour = COLOURS.get(name, "#555")
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in line)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out += [
            f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{colour}"/>' for x, y in line
        ]
    return out


def render_chart(cpu: Series, rss: Series, names: Sequence[str]) -> str:
    """SVG text: left panel CPU µs per message, right panel RSS KB per connection."""
    width = 2 * (PANEL_W + MARGIN + 30)
    height = PANEL_H + 110
    body = _panel(0, "Server CPU per delivered message", "µs / message", cpu)
    body += _panel(PANEL_W + MARGIN + 30, "Server RSS per connection", "KB / connection", rss)
    for i, name in enumerate(names):
        x = MARGIN + i * 150
        body.append(
            f'<rect x="{x}" y="{height - 22}" width="14" height="4" fill="{COLOURS.get(name)}"/>'
            f'<text x="{x + 20}" y="{height - 16}">{escape(name)}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">'
        f'<rect width="100%" height="100%" fill="white"/>{"".join(body)}</svg>\n'
    )
