from __future__ import annotations

from django.contrib import admin

from apps.common.admin import ReadOnlyAdmin
from apps.gates.models import GateAttempt, GateProgress


class GateAttemptInline(admin.TabularInline):
    """Results are evidence: shown, never editable (R6.2: "cannot be edited by anyone")."""

    model = GateAttempt
    fields = ("gate", "number", "status", "result_code", "scores", "reference", "started_at", "finished_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(GateProgress)
class GateProgressAdmin(ReadOnlyAdmin):
    list_display = ("visit", "state", "failed_gate", "failure_reason", "started_at")
    list_filter = ("state", "failed_gate")
    fields = (
        "visit",
        "state",
        "started_at",
        "identity_passed_at",
        "face_passed_at",
        "questions_passed_at",
        "failed_gate",
        "failure_reason",
        "failed_at",
    )
    readonly_fields = fields
    inlines = (GateAttemptInline,)
