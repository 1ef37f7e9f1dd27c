from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from apps.audit.models import AuditRecord
from apps.common.admin import ReadOnlyAdmin


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdmin):
    list_display = (
        "sequence",
        "created_at",
        "action_name",
        "actor_kind",
        "actor_label",
        "target_type",
        "target_label",
    )
    list_filter = ("action", "actor_kind", "target_type")
    search_fields = ("actor_label", "target_id", "target_label")
    date_hierarchy = "created_at"
    fields = (
        "sequence",
        "created_at",
        "action",
        "actor_kind",
        "actor_id",
        "actor_label",
        "target_type",
        "target_id",
        "target_label",
        "data",
        "previous_hash",
        "record_hash",
    )
    readonly_fields = fields

    @admin.display(description=_("action name"))
    def action_name(self, record: AuditRecord) -> str:
        return record.action_label
