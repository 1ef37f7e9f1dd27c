"""The streamed export's memory bound: the peak does not grow with the number of rows.

Each export runs under tracemalloc (Python allocations: rows, formatting,
writers). Doubling the rows must leave the peak about where it was, below a
fixed bound, and far below the size of the file: an export that kept its
rows (or its file) in memory would fail all three. The 1,000,000-row run on
PostgreSQL, with RSS, is bench/export_bench.py.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import override_settings

from apps.audit.selectors import audit_chain_verify
from apps.compliance import services
from apps.compliance.models import AuditExport, ExportState
from apps.compliance.services import audit_export_request, audit_export_run
from tests.compliance.auditgen import append_rows

pytestmark = pytest.mark.django_db

FIXED_BOUND_BYTES = 10 * 1024 * 1024


def _peak_of_export(
    actor: User, fmt: str, capture: Callable[..., Any], filters: dict[str, Any]
) -> tuple[int, AuditExport]:
    with capture(execute=False):
        export = audit_export_request(actor=actor, filters=filters, fmt=fmt)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        done = audit_export_run(export_id=export.pk)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert done.state == ExportState.DONE
    return peak, done


@pytest.fixture
def files_on_disk(tmp_path: Path) -> Iterator[None]:
    """Store files as in production: the test settings' in-memory storage would count the file itself."""
    with override_settings(
        STORAGES={**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}},
        MEDIA_ROOT=str(tmp_path),
    ):
        yield


@pytest.mark.parametrize(("fmt", "rows"), [("csv", 20_000), ("xlsx", 5_000)])
def test_doubling_the_rows_does_not_raise_the_peak(
    fmt: str,
    rows: int,
    compliance_officer: User,
    django_capture_on_commit_callbacks: Callable[..., Any],
    files_on_disk: None,
) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    # Warm up: the first export imports the writer's modules, which tracemalloc would count.
    _peak_of_export(compliance_officer, fmt, django_capture_on_commit_callbacks, {"to": "2025-12-31"})
    append_rows(rows, start=start)
    # Only the generated rows (they are all dated January), not the requests' own records.
    january = {"from": "2026-01-01T00:00:00+00:00", "to": "2026-02-01T00:00:00+00:00"}
    peak_small, small = _peak_of_export(compliance_officer, fmt, django_capture_on_commit_callbacks, january)
    append_rows(rows, start=start)
    peak_large, large = _peak_of_export(compliance_officer, fmt, django_capture_on_commit_callbacks, january)

    print(f"{fmt}: peak {peak_small / 1e6:.2f} MB for {rows} rows, {peak_large / 1e6:.2f} MB for {2 * rows}")
    assert (small.rows_written, large.rows_written) == (rows, 2 * rows)
    assert large.size_bytes is not None and small.size_bytes is not None
    assert large.size_bytes > 1.8 * small.size_bytes
    # Flat: twice the rows, about the same peak (chunks of 2,000 rows, not the whole result).
    assert peak_large < 1.25 * peak_small + 1024 * 1024, (peak_small, peak_large)
    assert peak_large < FIXED_BOUND_BYTES, peak_large
    if fmt == "csv":
        # Well below the file itself (an XLSX is compressed, so only CSV compares). The
        # peak is the fixed cost of one 2,000-row chunk and the writer (about 3.5 MB),
        # the file of 40,000 rows about 10.5 MB; the flatness check above is what
        # catches an export that holds the whole result.
        assert peak_large < large.size_bytes / 2, (peak_large, large.size_bytes)
    assert audit_chain_verify().intact


def test_the_measurement_catches_an_export_that_keeps_its_rows(
    compliance_officer: User,
    django_capture_on_commit_callbacks: Callable[..., Any],
    files_on_disk: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same measurement, on an export made to load every row first, sees the peak double."""
    streamed = services.audit_record_rows_stream
    monkeypatch.setattr(services, "audit_record_rows_stream", lambda **kwargs: iter(list(streamed(**kwargs))))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    january = {"from": "2026-01-01T00:00:00+00:00", "to": "2026-02-01T00:00:00+00:00"}
    _peak_of_export(compliance_officer, "csv", django_capture_on_commit_callbacks, {"to": "2025-12-31"})
    append_rows(10_000, start=start)
    peak_small, _small = _peak_of_export(compliance_officer, "csv", django_capture_on_commit_callbacks, january)
    append_rows(10_000, start=start)
    peak_large, _large = _peak_of_export(compliance_officer, "csv", django_capture_on_commit_callbacks, january)

    assert peak_large > 1.6 * peak_small, (peak_small, peak_large)
