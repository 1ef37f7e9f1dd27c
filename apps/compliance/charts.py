"""Server-side SVG charts of the daily summary report.

Like ``apps.console.charts``: numbers are checked and formatted by
``apps.common.charts`` (counts and rates refused when negative); the
only text that reaches the markup is the group labels (staff and branch
names come from the database), which are escaped.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape

from apps.common.charts import chart_number, svg_number

# Outcome colours, in the order the stacked bars draw them.
OUTCOME_COLOURS = ("#2e7d32", "#c62828", "#ef6c00", "#6d4c41", "#90a4ae")
_BAR, _GAP, _LABEL_WIDTH, _RIGHT, _TOP = 16, 6, 170, 48, 6


def _amount(value: object) -> float:
    """A rate or a count: a negative one is a bug upstream and is refused."""
    return chart_number(value, allow_negative=False)


def _short(label: str, limit: int = 26) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def rate_bars_svg(bars: Sequence[tuple[str, float | None]], width: int = 480) -> str:
    """Horizontal bars of rates (0–1) with their percentage; ``None`` (nothing counted) is drawn as "–"."""
    height = _TOP * 2 + len(bars) * (_BAR + _GAP)
    plot = width - _LABEL_WIDTH - _RIGHT
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="rate-chart" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img">'
    ]
    for index, (label, rate) in enumerate(bars):
        y = _TOP + index * (_BAR + _GAP)
        parts.append(
            f'<text x="{_LABEL_WIDTH - 6}" y="{y + _BAR - 4}" font-size="11" text-anchor="end" fill="#333">'
            f"{escape(_short(label))}</text>"
        )
        parts.append(f'<rect x="{_LABEL_WIDTH}" y="{y}" width="{plot}" height="{_BAR}" fill="#eceff1"/>')
        if rate is None:
            parts.append(f'<text x="{_LABEL_WIDTH + plot + 4}" y="{y + _BAR - 4}" font-size="11" fill="#555">–</text>')
            continue
        value = min(_amount(rate), 1.0)
        parts.append(
            f'<rect class="bar" x="{_LABEL_WIDTH}" y="{y}" width="{svg_number(value * plot)}" height="{_BAR}" fill="#417690"/>'
        )
        parts.append(
            f'<text x="{_LABEL_WIDTH + plot + 4}" y="{y + _BAR - 4}" font-size="11" fill="#333">{value * 100:.1f}%</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def stacked_bars_svg(bars: Sequence[tuple[str, Sequence[float]]], width: int = 480) -> str:
    """One horizontal bar per group, split into its parts (counts), scaled to the largest total."""
    height = _TOP * 2 + len(bars) * (_BAR + _GAP)
    plot = width - _LABEL_WIDTH - _RIGHT
    largest = max((sum(_amount(part) for part in parts) for _label, parts in bars), default=0.0) or 1.0
    markup = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="stacked-chart" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img">'
    ]
    for index, (label, parts) in enumerate(bars):
        y = _TOP + index * (_BAR + _GAP)
        markup.append(
            f'<text x="{_LABEL_WIDTH - 6}" y="{y + _BAR - 4}" font-size="11" text-anchor="end" fill="#333">'
            f"{escape(_short(label))}</text>"
        )
        x = float(_LABEL_WIDTH)
        for part, colour in zip(parts, OUTCOME_COLOURS, strict=False):
            length = _amount(part) / largest * plot
            if length > 0:
                markup.append(
                    f'<rect class="part" x="{svg_number(x)}" y="{y}" width="{svg_number(length)}" height="{_BAR}" fill="{colour}"/>'
                )
            x += length
        total = sum(_amount(part) for part in parts)
        markup.append(f'<text x="{svg_number(x + 4)}" y="{y + _BAR - 4}" font-size="11" fill="#333">{total:.0f}</text>')
    markup.append("</svg>")
    return "".join(markup)
