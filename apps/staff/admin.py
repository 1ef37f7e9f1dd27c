from __future__ import annotations

from django.contrib import admin

from apps.common.admin import ReadOnlyAdmin
from apps.staff.models import AgentSkill, StaffProfile


class AgentSkillInline(admin.TabularInline):
    model = AgentSkill
    fields = ("business_code", "proficiency")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(StaffProfile)
class StaffProfileAdmin(ReadOnlyAdmin):
    list_display = ("employee_number", "display_name", "role", "branch", "supervisor")
    list_filter = ("role", "branch")
    search_fields = ("employee_number", "display_name", "user__username")
    fields = ("employee_number", "display_name", "user", "role", "branch", "supervisor")
    readonly_fields = fields
    inlines = (AgentSkillInline,)
