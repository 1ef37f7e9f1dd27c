"""The numbers of server-side SVG charts (the console's live charts, the compliance report's bars).

Chart markup is built only from numbers checked and formatted here and from
fixed (or escaped) strings, which is why a view may mark it safe. Anything
that is not a real number is refused rather than converted: a string would
be a way into the markup.
"""

from __future__ import annotations

import math
from numbers import Real


def chart_number(value: object, *, allow_negative: bool = True) -> float:
    """``value`` as a float if it is a finite real number (and, unless ``allow_negative``, not below 0).

    Raises TypeError for anything else that is not a number, ValueError for NaN,
    infinities and refused negatives.
    """
    # bool is a Real in Python; a True on a chart is a bug upstream.
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"chart values must be numbers, not {type(value).__name__}")
    number = float(value)
    if allow_negative:
        if not math.isfinite(number):
            raise ValueError("chart values must be finite")
    elif not math.isfinite(number) or number < 0:
        raise ValueError("chart values must be finite and not negative")
    return number


def svg_number(value: float) -> str:
    """A coordinate or length as written into the markup: one decimal, finer than a pixel."""
    return f"{value:.1f}"
