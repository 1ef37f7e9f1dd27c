"""An export whose worker died does not stay "being generated" for ever: the sweeper fails it with the reason."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User

from apps.audit.actions import AuditAction
from apps.compliance import services
from apps.compliance.models import AuditExport, ExportState
from apps.compliance.services import audit_export_request, audit_export_run, audit_exports_expire
from apps.queueing.services.housekeeping import dispatcher_tick
from tests.compliance.conftest import records_of

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _deadline(settings: Any) -> None:
    settings.COMPLIANCE_EXPORT_STALL_SECONDS = 900


def _requested(officer: User, capture: Callable[..., Any], language: str = "en") -> AuditExport:
    with capture(execute=False):  # the message is taken by a worker that then dies
        return audit_export_request(actor=officer, filters={}, fmt="csv", language=language)


def test_a_running_export_whose_worker_died_is_failed_with_the_reason_after_its_deadline(
    compliance_officer: User, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    export = _requested(compliance_officer, django_capture_on_commit_callbacks)
    running, attempt = services._export_start(export.pk)
    assert running.started_at is not None

    assert audit_exports_expire(now=running.started_at + timedelta(seconds=899)) == 0
    dispatcher_tick(now=running.started_at + timedelta(seconds=901))

    export.refresh_from_db()
    assert export.state == ExportState.FAILED
    assert "no progress for 15 minutes" in export.error
    (failed,) = records_of(AuditAction.COMPLIANCE_EXPORT_FAILED)
    assert failed.data["reason"] == "stalled"
    assert failed.data["attempt"] == attempt

    # Should the broker hand the message to another worker after all, it still completes.
    assert audit_export_run(export_id=export.pk).state == ExportState.DONE


def test_progress_moves_the_deadline_of_a_long_export(
    compliance_officer: User, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    export = _requested(compliance_officer, django_capture_on_commit_callbacks)
    running, attempt = services._export_start(export.pk)
    assert running.started_at is not None
    services._export_progress_save(export_id=export.pk, attempt=attempt, rows_written=10_000)
    progressed_at = AuditExport.objects.get(pk=export.pk).progress_at
    assert progressed_at is not None

    assert audit_exports_expire(now=progressed_at + timedelta(seconds=899)) == 0
    assert AuditExport.objects.get(pk=export.pk).state == ExportState.RUNNING
    assert audit_exports_expire(now=progressed_at + timedelta(seconds=901)) == 1


def test_an_export_whose_message_was_lost_is_failed_in_the_requesters_language(
    compliance_officer: User, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    export = _requested(compliance_officer, django_capture_on_commit_callbacks, language="zh-hans")
    assert audit_exports_expire(now=export.requested_at + timedelta(seconds=901)) == 1
    export.refresh_from_db()
    assert export.state == ExportState.FAILED
    assert "重新申请" in export.error
    (failed,) = records_of(AuditAction.COMPLIANCE_EXPORT_FAILED)
    assert failed.data["reason"] == "not_started"
