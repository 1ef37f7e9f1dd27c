"""Exports of the audit trail for compliance officers (R8.2).

An ``AuditExport`` is one requested report: who asked, for which filter and
format, masked or not, and, once the Celery task has run, the stored file,
its SHA-256 and how many rows it holds. Its ``state`` moves
pending → running → done (or failed); transitions only change fields, the
services in ``apps.compliance.services`` lock, save and audit.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin, FSMField, transition


class ExportFormat(models.TextChoices):
    CSV = "csv", _("CSV")
    XLSX = "xlsx", _("Excel workbook (XLSX)")
    PDF = "pdf", _("PDF")


class ExportState(models.TextChoices):
    PENDING = "pending", _("Waiting to start")
    RUNNING = "running", _("Being generated")
    DONE = "done", _("Ready")
    FAILED = "failed", _("Failed")


class AuditExport(ConcurrentTransitionMixin, models.Model):
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("requested by")
    )
    requested_at = models.DateTimeField(_("requested at"))
    # The validated filter as the requester gave it (selectors.ExportFilter.as_json).
    filters = models.JSONField(_("filter"), default=dict, blank=True)
    format = models.CharField(_("format"), max_length=8, choices=ExportFormat.choices)
    unmasked = models.BooleanField(_("personal data unmasked"), default=False)
    # The language of the requester, so that the file (column titles, action
    # labels) reads as the page they asked from.
    language = models.CharField(_("language"), max_length=16, blank=True)
    state = FSMField(_("state"), default=ExportState.PENDING, choices=ExportState.choices, protected=True)
    # Incremented each time a task (re)starts the export: a redelivered task
    # may run while an older one is still going, and only the newest attempt
    # may write progress or finish (compare-and-set on this number).
    attempt = models.PositiveIntegerField(verbose_name=_("attempt"), default=0)
    # The newest audit record when the run started. Sequences are assigned in
    # commit order under the chain lock, so "sequence <= this" is a stable set:
    # the count and the rows written agree, and a rerun writes the same rows.
    up_to_sequence = models.PositiveBigIntegerField(_("up to audit record"), null=True, blank=True)
    rows_matching = models.PositiveIntegerField(_("matching records"), null=True, blank=True)
    rows_total = models.PositiveIntegerField(_("rows to write"), null=True, blank=True)
    rows_written = models.PositiveIntegerField(_("rows written"), default=0)
    file = models.FileField(_("file"), upload_to="compliance/exports/%Y/%m/", blank=True)
    sha256 = models.CharField(_("SHA-256 of the file"), max_length=64, blank=True)
    size_bytes = models.PositiveBigIntegerField(_("size (bytes)"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    # When the running attempt last wrote rows: an export without progress for
    # COMPLIANCE_EXPORT_STALL_SECONDS lost its worker (audit_exports_expire).
    progress_at = models.DateTimeField(_("progress at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        ordering = ("-requested_at", "-pk")
        verbose_name = _("audit export")
        verbose_name_plural = _("audit exports")
        permissions = (
            ("export_audit_trail", _("Can export audit reports")),
            ("unmask_personal_data", _("Can see personal data unmasked in exports")),
        )
        indexes = (models.Index(fields=("requested_by", "requested_at")),)

    def __str__(self) -> str:
        return f"audit export #{self.pk} ({self.format})"

    @property
    def truncated(self) -> bool:
        """True when the file holds fewer rows than matched (the PDF row limit)."""
        return self.rows_matching is not None and self.rows_total is not None and self.rows_total < self.rows_matching

    # Transitions only change fields; the services lock, save and audit.

    # From running too: a worker that died mid-export leaves the row running
    # and the broker redelivers the task. From failed: Celery's retry.
    @transition(
        field=state, source=[ExportState.PENDING, ExportState.RUNNING, ExportState.FAILED], target=ExportState.RUNNING
    )
    def start(self, *, now: Any, up_to_sequence: int, rows_matching: int, rows_total: int) -> None:
        self.attempt += 1
        self.started_at = now
        self.progress_at = now
        self.up_to_sequence = up_to_sequence
        self.rows_matching = rows_matching
        self.rows_total = rows_total
        self.rows_written = 0
        self.error = ""
        self.finished_at = None

    @transition(field=state, source=ExportState.RUNNING, target=ExportState.DONE)
    def finish(self, *, now: Any, file_name: str, sha256: str, size_bytes: int, rows_written: int) -> None:
        self.file.name = file_name
        self.sha256 = sha256
        self.size_bytes = size_bytes
        self.rows_written = rows_written
        self.finished_at = now

    @transition(field=state, source=[ExportState.PENDING, ExportState.RUNNING], target=ExportState.FAILED)
    def fail(self, *, now: Any, error: str) -> None:
        self.error = error
        self.finished_at = now
