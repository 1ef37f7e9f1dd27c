from __future__ import annotations

from django.contrib import admin

from apps.common.admin import ReadOnlyAdmin
from apps.compliance.models import AuditExport


@admin.register(AuditExport)
class AuditExportAdmin(ReadOnlyAdmin):
    """Browse exports; files are downloaded through the audited API, never from here."""

    list_display = ("id", "requested_at", "requested_by", "format", "unmasked", "state", "rows_written", "rows_total")
    list_filter = ("state", "format", "unmasked")
    date_hierarchy = "requested_at"
    fields = (
        "requested_by",
        "requested_at",
        "filters",
        "format",
        "unmasked",
        "language",
        "state",
        "attempt",
        "up_to_sequence",
        "rows_matching",
        "rows_total",
        "rows_written",
        "sha256",
        "size_bytes",
        "error",
        "started_at",
        "finished_at",
    )
    readonly_fields = fields
