"""Queues are configured in the back office (R2); every save goes through the service."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.models import User
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from apps.businesses.registry import business_choices
from apps.common.admin import ReadOnlyAdmin
from apps.customers.models import CustomerLevel
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
    "target_waiting",
    "target_longest_wait_seconds",
    "target_service_level_percent",
    "target_abandon_rate_percent",
)


class ServiceQueueForm(forms.ModelForm):
    """Queue settings as a person fills them in: businesses ticked, one number per bonus (no JSON typed by hand).

    The JSON fields of the model are assembled from the per-level and
    per-business number fields; a blank business bonus means none.
    """

    businesses = forms.MultipleChoiceField(
        label=_("businesses served"), choices=business_choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = ServiceQueue
        fields = (
            "code",
            "name",
            "businesses",
            *(name for name in _QUEUE_OPTIONS if not name.endswith("bonus_seconds")),
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        queue = self.instance
        levels = queue.level_bonus_seconds if queue.pk else ServiceQueue().level_bonus_seconds
        for level in CustomerLevel:
            self.fields[f"level_bonus_{level.value}"] = forms.IntegerField(
                label=_("Bonus for %(level)s customers (seconds)") % {"level": level.label},
                min_value=0,
                initial=int(levels.get(level.value, 0)),
            )
        for code, name in business_choices():
            self.fields[f"business_bonus_{code}"] = forms.IntegerField(
                label=_("Bonus for %(business)s (seconds)") % {"business": name},
                min_value=0,
                required=False,
                initial=queue.business_bonus_seconds.get(code) if queue.pk else None,
            )

    def level_fields(self) -> list[str]:
        return [f"level_bonus_{level.value}" for level in CustomerLevel]

    def business_fields(self) -> list[str]:
        return [f"business_bonus_{code}" for code, _name in business_choices()]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        self.instance.level_bonus_seconds = {
            level.value: int(data.get(f"level_bonus_{level.value}") or 0) for level in CustomerLevel
        }
        self.instance.business_bonus_seconds = {
            code: int(data[f"business_bonus_{code}"])
            for code, _name in business_choices()
            if data.get(f"business_bonus_{code}")
        }
        return data


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
    form = ServiceQueueForm
    inlines = (OverflowTargetInline,)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        form = ServiceQueueForm()
        return (
            (None, {"fields": ("code", "name", "businesses", "agent_strategy", "paused")}),
            (_("Priority bonus per customer level"), {"fields": form.level_fields()}),
            (_("Priority bonus per business"), {"fields": form.business_fields()}),
            (
                _("Offers and reconnection"),
                {
                    "fields": (
                        "service_level_seconds",
                        "offer_timeout_seconds",
                        "wrap_up_seconds",
                        "max_missed_offers",
                        "reconnect_grace_seconds",
                    )
                },
            ),
            (_("Overflow"), {"fields": ("overflow_max_waiting", "overflow_max_wait_seconds")}),
            (
                _("Wallboard targets"),
                {
                    "fields": (
                        "target_waiting",
                        "target_longest_wait_seconds",
                        "target_service_level_percent",
                        "target_abandon_rate_percent",
                    )
                },
            ),
        )

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        # The extra number fields are the form's own, not the model's: no field list from the fieldsets.
        kwargs["fields"] = None
        return super().get_form(request, obj, change=change, **kwargs)

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
