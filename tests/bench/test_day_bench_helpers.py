"""The day bench's pure helpers (bench/day_bench.py is run on demand, never by the suite)."""

from __future__ import annotations

import importlib.util
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "day_bench.py"


@pytest.fixture(scope="module")
def day_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("day_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up in sys.modules while being defined.
    sys.modules["day_bench"] = module
    spec.loader.exec_module(module)
    return module


def test_percentiles_are_nearest_rank(day_bench: ModuleType) -> None:
    values = [float(n) for n in range(1, 101)]
    assert day_bench.percentile(values, 0.5) == 50.0
    assert day_bench.percentile(values, 0.95) == 95.0
    assert day_bench.percentile([3.0], 0.95) == 3.0
    assert day_bench.percentile([], 0.5) == 0.0


def test_a_rate_is_extrapolated_to_a_24_hour_day(day_bench: ModuleType) -> None:
    assert day_bench.per_day(10, 60) == 14_400
    assert day_bench.per_day(5, 0) == 0.0


def test_customer_numbers_map_to_the_chosen_people_of_the_face_set(day_bench: ModuleType) -> None:
    people = ["alex", "biden", "kit", "lin", "obama", "rose"]
    numbers = day_bench.eligible_customer_numbers(people, ("kit", "obama"), 4)
    # The registry sandbox gives customer n person (n - 1) mod 6.
    assert numbers == [3, 5, 9, 11]
    assert {people[(n - 1) % len(people)] for n in numbers} == {"kit", "obama"}
    with pytest.raises(ValueError, match="none of"):
        day_bench.eligible_customer_numbers(people, ("nobody",), 1)


def test_decision_latency_counts_from_when_both_sides_were_ready(day_bench: ModuleType) -> None:
    t0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    offers = [
        (t0 + timedelta(seconds=2), t0, t0 + timedelta(seconds=1.5)),  # agent freed last: 0.5 s
        (t0 + timedelta(seconds=3), t0 + timedelta(seconds=1), None),  # no availability seen: since enqueue
        (t0, t0 + timedelta(seconds=1), None),  # clock skew never gives a negative latency
    ]
    assert day_bench.decision_latencies(offers) == [0.5, 2.0, 0.0]


def test_stage_table_shows_every_stage_with_its_share(day_bench: ModuleType) -> None:
    lines = day_bench.stage_table({"ocr": [1.0, 3.0], "face": [6.0]}, 60.0, 2)
    assert len(lines) == len(day_bench.STAGES)
    ocr = next(line for line in lines if "OCR" in line)
    assert "n=2" in ocr and "25.0 %" in ocr  # mean 2 s of 8 s
    assert any("(none)" in line for line in lines)


def test_cpu_seconds_are_read_from_proc_stat(day_bench: ModuleType) -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    line = f"123 (celery worker) S 1 2 3 4 5 6 7 8 9 10 {3 * ticks} {ticks} 0 0 20 0 1 0"
    assert day_bench.cpu_seconds_of(line) == 4.0
