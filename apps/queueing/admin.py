"""Queues are configured in the back office (R2); every save goes through the service."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.models import User
from django.http import HttpRequest

from apps.common.admin import ReadOnlyAdmin
from apps.queueing.models import AgentPresence, OverflowTarget, QueueEntry, ServiceQueue
from apps.queueing.services.configuration import overflow_target_remove, overflow_target_set, service_queue_upsert

_QUEUE_OPTIONS = (
    "level_bonus_seconds",
    "business_bonus_seconds",
    "agent_strategy",
    "service_level_seconds",
    "offer_timeout_seconds",
    "wrap_up_seconds",
    "max_missed_offers",
    "reconnect_grace_seconds",
    "overflow_max_waiting",
    "overflow_max_wait_seconds",
    "paused",
)


def _staff_user(request: HttpRequest) -> User:
    # The admin only lets logged-in staff this far.
    assert isinstance(request.user, User)
    return request.user


class OverflowTargetInline(admin.TabularInline):
    model = OverflowTarget
    fk_name = "queue"
    fields = ("target", "position")
    extra = 0


@admin.register(ServiceQueue)
class ServiceQueueAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "name",
        "businesses",
        "agent_strategy",
        "overflow_max_waiting",
        "overflow_max_wait_seconds",
        "paused",
    )
    list_filter = ("agent_strategy", "paused")
    fields = ("code", "name", "businesses", *_QUEUE_OPTIONS)
    inlines = (OverflowTargetInline,)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Entries keep pointing at their queue: a queue is paused, not deleted.
        return False

    def save_model(self, request: HttpRequest, obj: ServiceQueue, form: Any, change: bool) -> None:
        saved = service_queue_upsert(
            actor=_staff_user(request),
            code=obj.code,
            name=obj.name,
            businesses=list(obj.businesses),
            **{field: getattr(obj, field) for field in _QUEUE_OPTIONS},
        )
        obj.pk = saved.pk

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        actor = _staff_user(request)
        for link in formset.save(commit=False):
            overflow_target_set(actor=actor, queue=form.instance, target=link.target, position=link.position)
        for removed in formset.deleted_objects:
            overflow_target_remove(actor=actor, link=removed)


@admin.register(QueueEntry)
class QueueEntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "queue", "business_code", "level", "state", "enqueued_at", "agent", "end_reason")
    list_filter = ("queue", "state", "business_code", "level")
    date_hierarchy = "enqueued_at"


@admin.register(AgentPresence)
class AgentPresenceAdmin(ReadOnlyAdmin):
    list_display = ("staff", "state", "state_since", "idle_since", "services_today", "missed_offers_in_row")
    list_filter = ("state",)
