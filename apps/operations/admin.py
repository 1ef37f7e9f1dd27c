from __future__ import annotations

from django.contrib import admin

from apps.common.admin import ReadOnlyAdmin
from apps.operations.models import Operation


@admin.register(Operation)
class OperationAdmin(ReadOnlyAdmin):
    """Operations are evidence of what was done for a customer: read-only."""

    list_display = ("public_id", "business_code", "state", "result_code", "created_at", "finished_at")
    list_filter = ("business_code", "state")
    fields = (
        "public_id",
        "visit",
        "call",
        "business_code",
        "state",
        "confirm_by",
        "before",
        "after",
        "details",
        "core_attempts",
        "result_code",
        "certificate_sha256",
        "created_at",
        "confirmed_at",
        "finished_at",
    )
    readonly_fields = fields
