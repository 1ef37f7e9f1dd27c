"""Helpers for the export tests: run an export to the end, read its file back."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from apps.audit.actions import AuditAction
from apps.audit.models import AuditRecord
from apps.compliance.models import AuditExport
from apps.compliance.services import audit_export_request

COLUMN_COUNT = 11


@pytest.fixture
def run_export(django_capture_on_commit_callbacks: Callable[..., Any]) -> Callable[..., AuditExport]:
    """Request an export and let the (eager) Celery task run after commit; returns it re-read.

    In English unless told otherwise, so that tests can read the header labels
    whatever the translations say.
    """

    def run(
        actor: User,
        fmt: str = "csv",
        filters: dict[str, Any] | None = None,
        unmask: bool = False,
        language: str = "en",
    ) -> AuditExport:
        with django_capture_on_commit_callbacks(execute=True):
            export = audit_export_request(actor=actor, filters=filters or {}, fmt=fmt, unmask=unmask, language=language)
        return AuditExport.objects.get(pk=export.pk)

    return run


def file_bytes(export: AuditExport) -> bytes:
    with export.file.open("rb") as handle:
        return handle.read()


def csv_table(export: AuditExport) -> tuple[dict[str, str], list[list[str]]]:
    """(header lines as label → value, data rows) of a CSV export."""
    text = file_bytes(export).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    blank = rows.index([])
    header = {row[0]: row[1] for row in rows[1:blank]}
    assert len(rows[blank + 1]) == COLUMN_COUNT  # the column titles
    return header, rows[blank + 2 :]


def exported_sequences(export: AuditExport) -> list[int]:
    _header, rows = csv_table(export)
    return [int(row[0]) for row in rows]


def records_of(action: AuditAction | str) -> list[AuditRecord]:
    return list(AuditRecord.objects.filter(action=action).order_by("sequence"))
