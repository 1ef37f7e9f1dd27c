"""Audit-report exports: request, run (in Celery), download. Every step is audited.

Transactions. ``audit_export_request`` creates the export and its audit
records in one transaction and enqueues the task after commit.
``audit_export_run`` is deliberately *not* one transaction: it starts the
export (commit), streams the rows while committing progress so the status
API can show it, then finishes or fails the export in a short transaction of
its own under the row lock.

The services here are entry points: views and the export task call them, never
another transaction, and their audit records and progress must really be
committed when they return. So their transactions are ``durable``: called
inside an open transaction they fail at once instead of silently joining it.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files import File
from django.db import models, transaction
from django.db.models.fields.files import FieldFile
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.audit.actions import AuditAction
from apps.audit.services import Actor, audit_record
from apps.common.errors import NotAllowed, NotFound, PermissionDenied, ValidationFailed
from apps.common.hashing import sha256_of_file
from apps.common.locking import lock_object
from apps.common.transactions import enqueue_on_commit
from apps.compliance.exporters import ReportHeader, RowFormatter, exporter_for, pdf_max_rows
from apps.compliance.face_evidence import face_image_get_visible
from apps.compliance.models import AuditExport, ExportFormat, ExportState
from apps.compliance.selectors import (
    ExportFilter,
    ServiceRecord,
    audit_chain_head_sequence,
    audit_export_get_visible,
    audit_record_rows_stream,
    audit_records_for_export,
    service_get_visible,
    service_record_get,
    snapshot_get_visible,
)
from apps.compliance.summary import SummaryReport
from apps.recordings.models import Snapshot

logger = logging.getLogger(__name__)

EXPORT_PERMISSION = "compliance.export_audit_trail"
UNMASK_PERMISSION = "compliance.unmask_personal_data"
# Who the audit trail names for work the Celery worker does on someone's behalf.
EXPORT_WORKER = Actor.system("compliance export")
# Who fails an export whose worker is gone (audit_exports_expire).
EXPORT_DEADLINE = Actor.system("compliance export deadline")


def pdf_limit_note(*, shown: int, matching: int) -> str:
    return _(
        "A PDF holds at most %(limit)s records: this one shows the first %(shown)s of %(matching)s. "
        "Export CSV or XLSX for all of them."
    ) % {"limit": f"{pdf_max_rows():,}", "shown": f"{shown:,}", "matching": f"{matching:,}"}


@transaction.atomic(durable=True)
def audit_export_request(
    *, actor: User, filters: dict[str, Any] | None, fmt: str, unmask: bool = False, language: str | None = None
) -> AuditExport:
    """Record a request for an audit report and have a worker generate it after commit.

    ``unmask`` needs the permission ``compliance.unmask_personal_data``; the
    unmasking is audited as a record of its own, next to the request.
    """
    if not actor.has_perm(EXPORT_PERMISSION):
        raise PermissionDenied(gettext_lazy("Your role may not export the audit trail."), code="export_not_allowed")
    try:
        export_format = ExportFormat(fmt)
    except ValueError as exc:
        raise ValidationFailed(
            gettext_lazy("Choose one of the formats: csv, xlsx, pdf."),
            code="unknown_format",
            extra={"allowed": list(ExportFormat.values)},
        ) from exc
    export_filter = ExportFilter.from_json(filters)
    if unmask and not actor.has_perm(UNMASK_PERMISSION):
        raise PermissionDenied(
            gettext_lazy("Your role may only export masked personal data."), code="unmask_not_allowed"
        )
    export = AuditExport.objects.create(
        requested_by=actor,
        requested_at=timezone.now(),
        filters=export_filter.as_json(),
        format=export_format,
        unmasked=unmask,
        language=language or translation.get_language() or settings.LANGUAGE_CODE,
    )
    described = {"format": export_format.value, "filters": export.filters, "unmasked": unmask}
    audit_record(actor=actor, action=AuditAction.COMPLIANCE_EXPORT_REQUESTED, target=export, data=described)
    if unmask:
        audit_record(
            actor=actor,
            action=AuditAction.PERSONAL_DATA_UNMASKED,
            target=export,
            data={"purpose": "audit_export", **described},
        )
    from apps.compliance.tasks import compliance_export_run

    enqueue_on_commit(compliance_export_run, export.pk)
    return export


def audit_export_run(*, export_id: int) -> AuditExport:
    """Generate the file of one export. Safe to run twice: a done export is returned as it is.

    Each run is an *attempt*; if a redelivered task starts a new attempt
    while an older one is still writing, only the newest may finish.
    Failures mark the export failed, are audited, and are re-raised so that
    the task's retry policy sees them.
    """
    export, attempt = _export_start(export_id)
    if attempt is None:
        return export
    try:
        with (
            translation.override(export.language or settings.LANGUAGE_CODE),
            tempfile.TemporaryDirectory(prefix="audit-export-") as directory,
        ):
            path = Path(directory) / f"audit-export-{export.pk}.{exporter_for(export.format).extension}"
            rows_written = _write_file(export, attempt, path)
            digest, size = sha256_of_file(path)
            stored_name = _store(export, path)
        return _export_finish(
            export_id, attempt, stored_name=stored_name, sha256=digest, size_bytes=size, rows_written=rows_written
        )
    except Exception as exc:
        _export_fail(export_id, attempt, exc)
        raise


def _export_not_found() -> NotFound:
    return NotFound(gettext_lazy("This export does not exist."), code="export_not_found")


@transaction.atomic(durable=True)
def _export_start(export_id: int) -> tuple[AuditExport, int | None]:
    export = lock_object(AuditExport.objects, not_found=_export_not_found, pk=export_id)
    if export.state == ExportState.DONE:
        return export, None
    export_filter = ExportFilter.from_json(export.filters)
    up_to = audit_chain_head_sequence()
    matching = audit_records_for_export(export_filter=export_filter, up_to_sequence=up_to).count()
    total = min(matching, pdf_max_rows()) if export.format == ExportFormat.PDF else matching
    export.start(now=timezone.now(), up_to_sequence=up_to, rows_matching=matching, rows_total=total)
    export.save()
    return export, export.attempt


def _write_file(export: AuditExport, attempt: int, path: Path) -> int:
    export_filter = ExportFilter.from_json(export.filters)
    assert export.up_to_sequence is not None
    assert export.rows_total is not None
    assert export.rows_matching is not None
    up_to = export.up_to_sequence
    limit = export.rows_total if export.format == ExportFormat.PDF else None
    formatter = RowFormatter(unmask=export.unmasked)

    def rows() -> Any:
        return map(formatter, audit_record_rows_stream(export_filter=export_filter, up_to_sequence=up_to, limit=limit))

    def progress(count: int) -> None:
        _export_progress_save(export_id=export.pk, attempt=attempt, rows_written=count)

    notes: tuple[str, ...] = ()
    if export.format == ExportFormat.PDF and export.rows_total < export.rows_matching:
        notes = (pdf_limit_note(shown=export.rows_total, matching=export.rows_matching),)
    header = ReportHeader(
        export_id=export.pk,
        period=_describe_period(export_filter),
        filter_text=_describe_filter(export_filter),
        generated_by=export.requested_by.get_username(),
        generated_at=timezone.now(),
        rows_matching=export.rows_matching,
        rows_total=export.rows_total,
        unmasked=export.unmasked,
        up_to_sequence=up_to,
        notes=notes,
    )
    written = exporter_for(export.format).write(path, header=header, rows=rows, progress=progress)
    if written != export.rows_total:
        # Records are never deleted and the set is bounded by up_to_sequence,
        # so this means a bug, not a race: refuse to deliver a wrong report.
        raise RuntimeError(f"Wrote {written} rows where {export.rows_total} were counted.")
    return written


def _export_progress_save(*, export_id: int, attempt: int, rows_written: int) -> None:
    """Record progress. Committed at once (no transaction is open during a run), so
    the status API sees it; guarded by the attempt so a superseded run stops reporting."""
    AuditExport.objects.filter(pk=export_id, attempt=attempt, state=ExportState.RUNNING).update(
        rows_written=rows_written, progress_at=timezone.now()
    )


def _describe_period(export_filter: ExportFilter) -> str:
    if export_filter.date_from is None and export_filter.date_to is None:
        return _("Whole audit trail")
    start = export_filter.date_from.isoformat() if export_filter.date_from else "…"
    end = export_filter.date_to.isoformat() if export_filter.date_to else "…"
    return f"{start} – {end}"


def _describe_filter(export_filter: ExportFilter) -> str:
    parts = []
    if export_filter.actor:
        parts.append(_("actor: %(value)s") % {"value": export_filter.actor})
    if export_filter.action_prefix:
        parts.append(_("actions starting with: %(value)s") % {"value": export_filter.action_prefix})
    if export_filter.target_type:
        parts.append(_("target type: %(value)s") % {"value": export_filter.target_type})
    if export_filter.outcome:
        parts.append(_("outcome: %(value)s") % {"value": export_filter.outcome})
    if export_filter.blacklist_hits:
        parts.append(_("blacklist hits only"))
    return "; ".join(parts) or _("none")


def _file_field() -> models.FileField:
    file_field = AuditExport._meta.get_field("file")
    assert isinstance(file_field, models.FileField)
    return file_field


def _store(export: AuditExport, path: Path) -> str:
    file_field = _file_field()
    with path.open("rb") as handle:
        return file_field.storage.save(
            file_field.generate_filename(export, path.name),
            File(handle, name=path.name),
            max_length=file_field.max_length,
        )


@transaction.atomic(durable=True)
def _export_finish(
    export_id: int, attempt: int, *, stored_name: str, sha256: str, size_bytes: int, rows_written: int
) -> AuditExport:
    export = lock_object(AuditExport.objects, not_found=_export_not_found, related=("requested_by",), pk=export_id)
    if export.state != ExportState.RUNNING or export.attempt != attempt:
        # A newer attempt owns the export (or finished it): drop this file.
        _file_field().storage.delete(stored_name)
        return export
    export.finish(
        now=timezone.now(), file_name=stored_name, sha256=sha256, size_bytes=size_bytes, rows_written=rows_written
    )
    export.save()
    audit_record(
        actor=EXPORT_WORKER,
        action=AuditAction.COMPLIANCE_EXPORT_COMPLETED,
        target=export,
        data={
            "requested_by": export.requested_by.get_username(),
            "format": export.format,
            "filters": export.filters,
            "unmasked": export.unmasked,
            "rows": rows_written,
            "rows_matching": export.rows_matching,
            "up_to_sequence": export.up_to_sequence,
            "sha256": sha256,
            "bytes": size_bytes,
        },
    )
    return export


def _export_fail(export_id: int, attempt: int, exc: BaseException) -> None:
    error = f"{type(exc).__name__}: {exc}"[:2000]
    try:
        with transaction.atomic():
            export = lock_object(AuditExport.objects, not_found=_export_not_found, pk=export_id)
            if export.state != ExportState.RUNNING or export.attempt != attempt:
                return
            export.fail(now=timezone.now(), error=error)
            export.save()
            audit_record(
                actor=EXPORT_WORKER,
                action=AuditAction.COMPLIANCE_EXPORT_FAILED,
                target=export,
                data={"error": error, "attempt": attempt, "rows_written": export.rows_written},
            )
    except Exception:
        # The database itself may be what failed; the original error is re-raised by the caller.
        logger.exception("Could not record the failure of audit export %s", export_id)


def audit_exports_expire(*, now: datetime | None = None) -> int:
    """Fail the exports whose worker is gone, with the reason; returns how many.

    Running with no progress for COMPLIANCE_EXPORT_STALL_SECONDS (its worker
    died: the broker only hands the message on after its visibility timeout),
    or pending that long (the message was lost). The requester sees the
    reason on the export and may request it again; should the message be
    delivered after all, the task starts a new attempt and completes it.
    Called on every dispatcher round (``apps.common.signals.housekeeping_due``).
    """
    now = now or timezone.now()
    limit = now - timedelta(seconds=settings.COMPLIANCE_EXPORT_STALL_SECONDS)
    # progress_at is empty only on exports started before it existed.
    stalled = models.Q(state=ExportState.RUNNING) & (
        models.Q(progress_at__lt=limit) | models.Q(progress_at__isnull=True, started_at__lt=limit)
    )
    never_started = models.Q(state=ExportState.PENDING, requested_at__lt=limit)
    failed = 0
    for export_id in list(AuditExport.objects.filter(stalled | never_started).values_list("pk", flat=True)):
        with transaction.atomic(durable=True):
            export = (
                AuditExport.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(models.Q(pk=export_id) & (stalled | never_started))
                .first()
            )
            if export is None:
                continue  # progressed or finished meanwhile, or another dispatcher has it
            minutes = round(settings.COMPLIANCE_EXPORT_STALL_SECONDS / 60)
            with translation.override(export.language or settings.LANGUAGE_CODE):
                if export.state == ExportState.RUNNING:
                    reason = "stalled"
                    error = _(
                        "The export stopped: no progress for %(minutes)s minutes (its worker stopped). "
                        "Please request it again."
                    ) % {"minutes": minutes}
                else:
                    reason = "not_started"
                    error = _(
                        "The export did not start within %(minutes)s minutes (no worker took it). "
                        "Please request it again."
                    ) % {"minutes": minutes}
            export.fail(now=now, error=error)
            export.save()
            audit_record(
                actor=EXPORT_DEADLINE,
                action=AuditAction.COMPLIANCE_EXPORT_FAILED,
                target=export,
                data={"reason": reason, "attempt": export.attempt, "rows_written": export.rows_written},
            )
            failed += 1
    return failed


@transaction.atomic(durable=True)
def audit_export_download(*, actor: User, export_id: int) -> AuditExport:
    """Hand a finished export's file to ``actor`` (the requester or a compliance officer), audited."""
    if not actor.has_perm(EXPORT_PERMISSION):
        raise PermissionDenied(gettext_lazy("Your role may not export the audit trail."), code="export_not_allowed")
    export = audit_export_get_visible(user=actor, export_id=export_id)
    if export.state != ExportState.DONE:
        raise NotAllowed(
            gettext_lazy("This export is not ready: it is %(state)s.") % {"state": export.get_state_display()},
            code="export_not_ready",
            extra={"state": export.state},
        )
    if export.unmasked and not actor.has_perm(UNMASK_PERMISSION):
        raise PermissionDenied(
            gettext_lazy("This export holds unmasked personal data, which your role may not see."),
            code="unmask_not_allowed",
        )
    audit_record(
        actor=actor,
        action=AuditAction.COMPLIANCE_EXPORT_DOWNLOADED,
        target=export,
        data={
            "format": export.format,
            "rows": export.rows_written,
            "sha256": export.sha256,
            "unmasked": export.unmasked,
            "requested_by": export.requested_by.get_username(),
        },
    )
    return export


@transaction.atomic(durable=True)
def service_evidence_open(*, actor: User, public_id: Any, unmask: bool = False) -> ServiceRecord:
    """Open a service's evidence for ``actor`` (visibility checked), audited.

    ``unmask`` needs ``compliance.unmask_personal_data``; showing personal
    data in clear is audited as a record of its own, next to the opening.
    """
    if unmask and not actor.has_perm(UNMASK_PERMISSION):
        raise PermissionDenied(gettext_lazy("Your role may only see masked personal data."), code="unmask_not_allowed")
    record = service_record_get(user=actor, public_id=public_id, unmask=unmask)
    described = {"service": str(record.visit.public_id), "unmasked": unmask}
    audit_record(actor=actor, action=AuditAction.COMPLIANCE_EVIDENCE_VIEWED, target=record.visit, data=described)
    if unmask:
        audit_record(
            actor=actor,
            action=AuditAction.PERSONAL_DATA_UNMASKED,
            target=record.visit,
            data={"purpose": "service_evidence", **described},
        )
    return record


@transaction.atomic(durable=True)
def service_snapshot_open(*, actor: User, public_id: Any) -> Snapshot:
    """Hand a snapshot's image to ``actor`` if they may see its service; audited (it shows the customer's face)."""
    snapshot = snapshot_get_visible(user=actor, public_id=public_id)
    audit_record(
        actor=actor,
        action=AuditAction.COMPLIANCE_SNAPSHOT_VIEWED,
        target=snapshot,
        data={"service": str(snapshot.call.visit.public_id), "sha256": snapshot.sha256},
    )
    return snapshot


@transaction.atomic(durable=True)
def service_face_image_open(*, actor: User, public_id: Any, attempt_id: int, kind: str) -> FieldFile:
    """Hand one of a Gate 3 attempt's three faces to ``actor`` (compliance role only); audited as personal data shown.

    The live frame, the ID-card portrait (decrypted from its sealed file) and
    the registry photo are the customer's biometric data: each image sent is
    its own record (``PERSONAL_DATA_UNMASKED``, purpose ``gate3_face_image``).
    """
    visit = service_get_visible(user=actor, public_id=public_id)
    attempt, stored, sha256 = face_image_get_visible(user=actor, visit=visit, attempt_id=attempt_id, kind=kind)
    audit_record(
        actor=actor,
        action=AuditAction.PERSONAL_DATA_UNMASKED,
        target=visit,
        data={
            "purpose": "gate3_face_image",
            "service": str(visit.public_id),
            "attempt": attempt.pk,
            "image": kind,
            "sha256": sha256,
        },
    )
    return stored


@transaction.atomic(durable=True)
def summary_export_record(*, actor: User, report: SummaryReport, content: bytes) -> None:
    """Audit a download of the daily summary report: who, which days and grouping, how many rows, the file's hash."""
    audit_record(
        actor=actor,
        action=AuditAction.COMPLIANCE_SUMMARY_EXPORTED,
        data={
            "from": report.date_from.isoformat(),
            "to": report.date_to.isoformat(),
            "group": report.grouping,
            "rows": len(report.rows),
            "sha256": hashlib.sha256(content).hexdigest(),
            "bytes": len(content),
        },
    )
