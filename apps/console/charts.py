"""Small server-side charts for the console, drawn as inline SVG.

The markup is built only from numbers checked and formatted by
``apps.common.charts`` and from fixed strings: nothing a user typed can reach
it, which is why the view may mark it safe without escaping. Anything that is
not a real number is refused rather than converted (a string would be a way in).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from apps.common.charts import chart_number, svg_number

HOURS_IN_DAY = 24

# Room for the count labels on the left and the hour labels underneath.
_LEFT, _RIGHT, _TOP, _BOTTOM = 34, 10, 10, 22


def _hour_range(hours: list[float]) -> tuple[int, int]:
    """Whole hours around the data, at least one hour wide, within the day."""
    if not hours:
        return 0, HOURS_IN_DAY
    start = math.floor(min(hours))
    end = max(math.ceil(max(hours)), start + 1)
    if end > HOURS_IN_DAY:
        end, start = HOURS_IN_DAY, min(start, HOURS_IN_DAY - 1)
    return start, end


def _label_step(span: int) -> int:
    if span <= 8:
        return 1
    if span <= 16:
        return 2
    return 3


def waiting_chart_svg(points: Sequence[tuple[float, float]], width: int = 480, height: int = 140) -> str:
    """A line chart of customers waiting over the day, as SVG markup.

    ``points`` are ``(hour of the day, customers waiting)`` pairs in time
    order; the hour is local time with fractions (9.5 is 09:30) and is kept
    within 0–24, a negative count is drawn as 0. The x axis spans the whole
    hours the points cover and is labelled in hours; the y axis goes from 0 to
    the largest count. Every point becomes one vertex of the polyline.
    """
    width, height = int(chart_number(width)), int(chart_number(height))
    if width <= _LEFT + _RIGHT or height <= _TOP + _BOTTOM:
        raise ValueError("chart too small")
    cleaned = [
        (min(max(chart_number(hour), 0.0), float(HOURS_IN_DAY)), max(chart_number(waiting), 0.0))
        for hour, waiting in points
    ]
    start, end = _hour_range([hour for hour, _waiting in cleaned])
    top_count = max(1, math.ceil(max((waiting for _hour, waiting in cleaned), default=0.0)))
    left, right, top, bottom = _LEFT, width - _RIGHT, _TOP, height - _BOTTOM

    def x_of(hour: float) -> float:
        return left + (hour - start) / (end - start) * (right - left)

    def y_of(waiting: float) -> float:
        return bottom - waiting / top_count * (bottom - top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="waiting-chart" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" aria-hidden="true">',
        '<g class="axes" stroke="#8a949e" stroke-width="1" fill="none">',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}"/>',
        f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}"/>',
    ]
    step = _label_step(end - start)
    hours = range(start, end + 1, step)
    parts.extend(
        f'<line x1="{svg_number(x_of(h))}" y1="{bottom}" x2="{svg_number(x_of(h))}" y2="{bottom + 4}"/>' for h in hours
    )
    parts.append("</g>")
    parts.append('<g class="labels" fill="#5b6774" font-size="10" text-anchor="middle">')
    parts.extend(f'<text x="{svg_number(x_of(h))}" y="{height - 6}">{h:02d}:00</text>' for h in hours)
    parts.append("</g>")
    parts.append('<g class="labels" fill="#5b6774" font-size="10" text-anchor="end">')
    parts.append(f'<text x="{left - 4}" y="{top + 4}">{top_count}</text>')
    parts.append(f'<text x="{left - 4}" y="{bottom}">0</text>')
    parts.append("</g>")
    if cleaned:
        vertices = " ".join(f"{svg_number(x_of(hour))},{svg_number(y_of(waiting))}" for hour, waiting in cleaned)
        parts.append(f'<polyline class="line" fill="none" stroke="#417690" stroke-width="2" points="{vertices}"/>')
        # A lone point draws no line; mark the latest one so it is always visible.
        last_hour, last_waiting = cleaned[-1]
        parts.append(
            f'<circle class="last" r="3" fill="#417690" cx="{svg_number(x_of(last_hour))}" cy="{svg_number(y_of(last_waiting))}"/>'
        )
    parts.append("</svg>")
    return "".join(parts)
