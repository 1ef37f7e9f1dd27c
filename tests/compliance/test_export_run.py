"""Running an export: audited request and completion, file hash, progress, idempotence, failures."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile

from apps.audit.actions import AuditAction
from apps.audit.models import AuditRecord
from apps.audit.selectors import audit_chain_verify
from apps.common.errors import ValidationFailed
from apps.compliance import exporters, services
from apps.compliance.models import AuditExport, ExportState
from apps.compliance.services import audit_export_request, audit_export_run
from apps.compliance.tasks import compliance_export_run
from tests.compliance.auditgen import append_rows
from tests.compliance.conftest import file_bytes, records_of

pytestmark = pytest.mark.django_db

RunExport = Callable[..., AuditExport]


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "pdf"])
def test_an_export_is_audited_with_its_row_count_and_the_hash_of_its_file(
    fmt: str, compliance_officer: User, run_export: RunExport
) -> None:
    append_rows(300, start=datetime(2026, 2, 1, tzinfo=UTC))

    export = run_export(compliance_officer, fmt, {"action_prefix": "verification."})

    assert export.state == ExportState.DONE
    content = file_bytes(export)
    assert export.sha256 == hashlib.sha256(content).hexdigest()
    assert export.size_bytes == len(content)
    assert export.rows_written == export.rows_total == export.rows_matching == 120  # kinds 0 and 1 of 5
    (requested,) = records_of(AuditAction.COMPLIANCE_EXPORT_REQUESTED)
    assert requested.actor_label == compliance_officer.username
    assert requested.data == {"format": fmt, "filters": {"action_prefix": "verification."}, "unmasked": False}
    (completed,) = records_of(AuditAction.COMPLIANCE_EXPORT_COMPLETED)
    assert completed.target_id == str(export.pk)
    assert completed.data["rows"] == 120
    assert completed.data["sha256"] == hashlib.sha256(content).hexdigest()
    assert completed.data["requested_by"] == compliance_officer.username
    assert completed.data["up_to_sequence"] == export.up_to_sequence
    assert audit_chain_verify().intact


def test_the_request_and_its_audit_roll_back_together(
    compliance_officer: User, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    before = AuditRecord.objects.count()
    with django_capture_on_commit_callbacks() as scheduled, pytest.raises(ValidationFailed):
        audit_export_request(actor=compliance_officer, filters={"from": "never"}, fmt="csv")
    assert AuditRecord.objects.count() == before
    assert not AuditExport.objects.exists()
    assert scheduled == []


def test_the_task_is_enqueued_only_after_commit(
    compliance_officer: User, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as scheduled:
        export = audit_export_request(actor=compliance_officer, filters={}, fmt="csv")
    assert len(scheduled) == 1
    assert AuditExport.objects.get(pk=export.pk).state == ExportState.PENDING
    scheduled[0]()  # the commit happens: the (eager) task runs
    assert AuditExport.objects.get(pk=export.pk).state == ExportState.DONE


def test_progress_is_saved_as_rows_are_written_and_reaches_the_total(
    compliance_officer: User, run_export: RunExport, monkeypatch: pytest.MonkeyPatch
) -> None:
    append_rows(1000, start=datetime(2026, 2, 1, tzinfo=UTC))
    monkeypatch.setattr(exporters, "PROGRESS_EVERY", 150)
    seen: list[tuple[int, int]] = []
    save = services._export_progress_save

    def spy(*, export_id: int, attempt: int, rows_written: int) -> None:
        save(export_id=export_id, attempt=attempt, rows_written=rows_written)
        # What the status API would read at this moment.
        seen.append((rows_written, AuditExport.objects.get(pk=export_id).rows_written))

    monkeypatch.setattr(services, "_export_progress_save", spy)

    export = run_export(compliance_officer, "csv", {"action_prefix": "queueing."})

    assert export.rows_total == 400
    assert [written for written, _stored in seen] == [150, 300, 400]
    assert all(written == stored for written, stored in seen)
    assert export.rows_written == export.rows_total


def test_a_done_export_is_not_redone(compliance_officer: User, run_export: RunExport) -> None:
    export = run_export(compliance_officer, "csv")
    records = AuditRecord.objects.count()

    assert compliance_export_run.delay(export.pk).get() == ExportState.DONE
    again = audit_export_run(export_id=export.pk)

    assert (again.attempt, again.file.name, again.sha256) == (export.attempt, export.file.name, export.sha256)
    assert AuditRecord.objects.count() == records


def test_a_failure_is_recorded_and_audited_and_a_retry_completes_the_export(
    compliance_officer: User,
    django_capture_on_commit_callbacks: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        export = audit_export_request(actor=compliance_officer, filters={}, fmt="csv")

    def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("disk on fire")

    with monkeypatch.context() as patch:
        patch.setattr(exporters.CsvExporter, "write", broken)
        with pytest.raises(RuntimeError):
            audit_export_run(export_id=export.pk)
    failed = AuditExport.objects.get(pk=export.pk)
    assert failed.state == ExportState.FAILED
    assert failed.error == "RuntimeError: disk on fire"
    assert not failed.file
    (failure,) = records_of(AuditAction.COMPLIANCE_EXPORT_FAILED)
    assert failure.data["error"] == "RuntimeError: disk on fire"
    assert failure.data["attempt"] == 1

    done = audit_export_run(export_id=export.pk)  # what Celery's retry does

    assert done.state == ExportState.DONE
    assert done.attempt == 2
    assert done.error == ""
    assert len(records_of(AuditAction.COMPLIANCE_EXPORT_COMPLETED)) == 1


def test_only_the_newest_attempt_may_finish(
    compliance_officer: User, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        export = audit_export_request(actor=compliance_officer, filters={}, fmt="csv")
    # A first worker starts, then dies or stalls; the redelivered task starts attempt 2 and finishes.
    _stale, stale_attempt = services._export_start(export.pk)
    assert stale_attempt == 1
    done = audit_export_run(export_id=export.pk)
    assert (done.state, done.attempt) == (ExportState.DONE, 2)

    # The first worker wakes up and tries to finish with its own file.
    storage = AuditExport._meta.get_field("file").storage
    stale_name = storage.save("compliance/exports/stale.csv", ContentFile(b"stale"))
    after = services._export_finish(
        export.pk, stale_attempt, stored_name=stale_name, sha256="0" * 64, size_bytes=5, rows_written=1
    )

    assert (after.file.name, after.sha256) == (done.file.name, done.sha256)
    assert not storage.exists(stale_name)
    assert len(records_of(AuditAction.COMPLIANCE_EXPORT_COMPLETED)) == 1


def test_rows_appended_while_an_export_runs_are_not_in_it(
    compliance_officer: User,
    django_capture_on_commit_callbacks: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    append_rows(50, start=datetime(2026, 2, 1, tzinfo=UTC))
    with django_capture_on_commit_callbacks(execute=False):
        export = audit_export_request(actor=compliance_officer, filters={"action_prefix": "queueing."}, fmt="csv")
    formatter_call = exporters.RowFormatter.__call__
    appended: list[bool] = []

    def append_once(self: exporters.RowFormatter, record: tuple[Any, ...]) -> Any:
        if not appended:
            appended.append(True)
            append_rows(10, start=datetime(2026, 2, 2, tzinfo=UTC))
        return formatter_call(self, record)

    monkeypatch.setattr(exporters.RowFormatter, "__call__", append_once)

    done = audit_export_run(export_id=export.pk)

    assert appended
    assert done.rows_total == done.rows_written == 20
