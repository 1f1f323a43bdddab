"""Charts as inline SVG, drawn on the server in integer arithmetic (money stays in micros): the
balance at each day close (W13) as a line, spend per day as bars. No script, no CDN."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

from adledger_console.amounts import money

WIDTH, HEIGHT, PAD = 320, 120, 18


@dataclass(frozen=True)
class Point:
    day: date
    micros: int


def _scale(points: Sequence[Point]) -> tuple[int, int]:
    low = min(0, *(point.micros for point in points))
    high = max(0, *(point.micros for point in points))
    return low, max(high, low + 1)


def _y(micros: int, low: int, high: int) -> int:
    return PAD + (high - micros) * (HEIGHT - 2 * PAD) // (high - low)


def _frame(title: str, body: str, points: Sequence[Point], currency: str) -> str:
    first, last = points[0], points[-1]
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{body}'
        f'<text x="2" y="{HEIGHT - 3}" class="axis">{first.day.isoformat()}</text>'
        f'<text x="{WIDTH - 2}" y="{HEIGHT - 3}" class="axis" text-anchor="end">{last.day.isoformat()}</text>'
        f'<text x="2" y="12" class="axis">{escape(money(max(p.micros for p in points), currency))}</text></svg>'
    )


def line_chart(title: str, points: Sequence[Point], currency: str) -> str:
    if not points:
        return f'<p class="empty">{escape(title)}: no day closes yet.</p>'
    low, high = _scale(points)
    step = (WIDTH - 2 * PAD) // max(1, len(points) - 1)
    coordinates = " ".join(f"{PAD + index * step},{_y(point.micros, low, high)}" for index, point in enumerate(points))
    zero = _y(0, low, high)
    body = (
        f'<line x1="{PAD}" y1="{zero}" x2="{WIDTH - PAD}" y2="{zero}" class="zero"/>'
        f'<polyline points="{coordinates}" class="line" fill="none"/>'
    )
    return _frame(title, body, points, currency)


def bar_chart(title: str, points: Sequence[Point], currency: str) -> str:
    if not points:
        return f'<p class="empty">{escape(title)}: no spend yet.</p>'
    low, high = _scale(points)
    slot = (WIDTH - 2 * PAD) // len(points)
    zero = _y(0, low, high)
    bars = []
    for index, point in enumerate(points):
        top = _y(point.micros, low, high)
        bars.append(
            f'<rect x="{PAD + index * slot + 1}" y="{min(top, zero)}" width="{max(1, slot - 2)}" '
            f'height="{abs(zero - top)}" class="bar"><title>{point.day.isoformat()}: '
            f"{escape(money(point.micros, currency))}</title></rect>"
        )
    return _frame(title, "".join(bars), points, currency)
