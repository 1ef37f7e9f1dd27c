from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.models import User
from django.http import HttpRequest

from apps.businesses.registry import business_choices
from apps.common.admin import ReadOnlyAdmin
from apps.gates.models import GateAttempt, GateProgress, QuestionPolicy, QuestionTemplate
from apps.gates.services import question_policy_set, question_template_save


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


def _staff_user(request: HttpRequest) -> User:
    # The admin only lets logged-in staff this far.
    assert isinstance(request.user, User)
    return request.user


@admin.register(QuestionTemplate)
class QuestionTemplateAdmin(admin.ModelAdmin):
    """The bank's Gate 4 questions: added, changed and retired here, through the audited service.

    Rows are never deleted (draws snapshot what they asked, and the audit
    trail names the template): a question is retired by clearing "active".
    """

    list_display = ("code", "text", "answer_source", "weight", "active", "updated_at")
    list_filter = ("active", "answer_source")
    search_fields = ("code", "text", "text_en")
    fields = ("code", "text", "text_en", "answer_source", "weight", "active")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("code",) if obj is not None else ()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: QuestionTemplate, form: Any, change: bool) -> None:
        saved = question_template_save(
            actor=_staff_user(request),
            code=obj.code,
            text=obj.text,
            text_en=obj.text_en,
            answer_source=obj.answer_source,
            weight=obj.weight,
            active=obj.active,
        )
        obj.pk = saved.pk


@admin.register(QuestionPolicy)
class QuestionPolicyAdmin(admin.ModelAdmin):
    list_display = ("business_code", "count", "max_wrong")
    fields = ("business_code", "count", "max_wrong")

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "business_code":
            return forms.ChoiceField(choices=business_choices(), label=db_field.verbose_name)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("business_code",) if obj is not None else ()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: QuestionPolicy, form: Any, change: bool) -> None:
        saved = question_policy_set(
            actor=_staff_user(request), business_code=obj.business_code, count=obj.count, max_wrong=obj.max_wrong
        )
        obj.pk = saved.pk
