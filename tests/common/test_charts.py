"""The numbers every server-side chart is drawn from: real numbers only, formatted one way."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from apps.common.charts import chart_number, svg_number


# Decimal is no numbers.Real (it does not mix with float), so it is refused too.
@pytest.mark.parametrize("value", ["3", b"3", None, True, [1], "1e3", Decimal("2.5")])
def test_anything_but_a_real_number_is_refused_rather_than_converted(value: object) -> None:
    with pytest.raises(TypeError, match="must be numbers"):
        chart_number(value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_number_that_cannot_be_drawn_is_refused(value: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        chart_number(value)


def test_negatives_are_drawn_unless_the_chart_refuses_them() -> None:
    assert chart_number(-2) == -2.0
    with pytest.raises(ValueError, match="not negative"):
        chart_number(-2, allow_negative=False)
    assert chart_number(0, allow_negative=False) == 0.0


def test_integers_floats_and_fractions_become_floats() -> None:
    assert [chart_number(value) for value in (3, 2.5, Fraction(1, 4))] == [3.0, 2.5, 0.25]


def test_coordinates_are_written_with_one_decimal() -> None:
    assert [svg_number(value) for value in (0, 12.345, 7.96, -1.04)] == ["0.0", "12.3", "8.0", "-1.0"]
