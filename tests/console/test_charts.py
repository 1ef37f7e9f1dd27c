"""The supervisors' "waiting over the day" chart: SVG built from numbers only."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from decimal import Decimal
from typing import Any

import pytest

from apps.console.charts import waiting_chart_svg

SVG = "{http://www.w3.org/2000/svg}"


def _vertices(svg: str) -> list[tuple[float, float]]:
    polyline = ET.fromstring(svg).find(f"{SVG}polyline")
    assert polyline is not None
    return [(float(x), float(y)) for x, y in (pair.split(",") for pair in polyline.attrib["points"].split())]


def test_the_chart_has_one_vertex_per_snapshot() -> None:
    points = [(9 + minute / 60, minute % 4) for minute in range(37)]
    assert len(_vertices(waiting_chart_svg(points, width=480, height=140))) == 37


def test_the_chart_is_well_formed_svg_of_the_requested_size_made_only_of_its_own_elements() -> None:
    root = ET.fromstring(waiting_chart_svg([(8.0, 0), (9.5, 3), (11.0, 1)], width=300, height=120))
    assert root.tag == f"{SVG}svg"
    assert (root.attrib["width"], root.attrib["height"], root.attrib["viewBox"]) == ("300", "120", "0 0 300 120")
    assert {element.tag.removeprefix(SVG) for element in root.iter()} <= {
        "svg",
        "g",
        "line",
        "text",
        "polyline",
        "circle",
    }


def test_more_customers_waiting_are_drawn_higher_and_later_snapshots_further_right() -> None:
    vertices = _vertices(waiting_chart_svg([(9.0, 0), (10.0, 4), (11.0, 2)], width=480, height=140))
    xs, ys = [x for x, _y in vertices], [y for _x, y in vertices]
    assert xs == sorted(xs)
    assert len(set(xs)) == 3
    # SVG's y grows downwards: the peak is the smallest y, nobody waiting sits on the x axis.
    assert ys[1] < ys[2] < ys[0]
    assert ys[0] == 140 - 22


def test_the_hours_the_snapshots_cover_are_labelled() -> None:
    svg = waiting_chart_svg([(9.25, 1), (11.5, 2)], width=480, height=140)
    labels = re.findall(r">(\d\d:00)<", svg)
    assert labels == ["09:00", "10:00", "11:00", "12:00"]


def test_a_whole_day_is_labelled_every_three_hours() -> None:
    labels = re.findall(r">(\d\d:00)<", waiting_chart_svg([(0.0, 1), (23.9, 2)], width=480, height=140))
    assert labels == [f"{hour:02d}:00" for hour in range(0, 25, 3)]


def test_the_count_axis_goes_up_to_the_largest_number_waiting() -> None:
    svg = waiting_chart_svg([(9.0, 2), (10.0, 7.2)], width=480, height=140)
    assert re.findall(r'text-anchor="end"><text[^>]*>(\d+)</text><text[^>]*>(\d+)</text>', svg) == [("8", "0")]


def test_an_empty_chart_draws_its_axes_but_no_line() -> None:
    root = ET.fromstring(waiting_chart_svg([], width=480, height=140))
    assert root.find(f"{SVG}polyline") is None
    assert len(root.findall(f".//{SVG}line")) >= 2


@pytest.mark.parametrize(
    "bad_value",
    ['"/><script>alert(1)</script>', "3", None, True, Decimal("1.5"), [1], float("nan"), float("inf")],
)
def test_anything_but_a_finite_number_is_refused_not_written_into_the_markup(bad_value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        waiting_chart_svg([(9.0, 1), (9.5, bad_value)], width=480, height=140)
    with pytest.raises((TypeError, ValueError)):
        waiting_chart_svg([(bad_value, 1)], width=480, height=140)


def test_a_size_that_leaves_no_room_to_draw_is_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        waiting_chart_svg([(9.0, 1)], width=20, height=20)
