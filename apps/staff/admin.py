from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.models import Group, User

from apps.common.admin import ReadOnlyAdmin
from apps.staff.models import AgentSkill, ElevationGrant, StaffProfile


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


# Users, groups and permissions change only through audited services
# (staff_member_upsert, role_permissions_sync, manage.py break_glass): the
# stock user admin would let anyone holding auth.change_user tick
# is_superuser or grant themselves permissions, written only to the
# editable django_admin_log. The back office shows users read-only.
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class UserReadOnlyAdmin(ReadOnlyAdmin):
    list_display = ("username", "is_active", "is_staff", "is_superuser", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser", "groups")
    search_fields = ("username",)
    fields = ("username", "is_active", "is_staff", "is_superuser", "groups", "last_login", "date_joined")
    readonly_fields = fields


@admin.register(Group)
class GroupReadOnlyAdmin(ReadOnlyAdmin):
    list_display = ("name",)
    fields = ("name", "permissions")
    readonly_fields = fields


@admin.register(ElevationGrant)
class ElevationGrantAdmin(ReadOnlyAdmin):
    list_display = ("user", "requested_by", "approved_by", "granted_at", "expires_at", "ended_at", "end_reason")
    fields = ("user", "requested_by", "approved_by", "reason", "granted_at", "expires_at", "ended_at", "end_reason")
    readonly_fields = fields
