"""Queueing and routing (R2): every write of the remote counter's queues.

Locking. The dispatcher takes the head waiting entry and an available agent
with ``SELECT … FOR UPDATE SKIP LOCKED``: several dispatchers (processes,
Celery workers, Daphne threads) each take different rows and never wait on
each other; a row another dispatcher holds is simply skipped. The partial
unique index on ``QueueEntry.agent`` backs this up in the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Case, F, IntegerField, QuerySet, Value, When
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.audit.actions import AuditAction
from apps.audit.services import AnyActor, audit_record
from apps.common.errors import NotAllowed, PermissionDenied, ValidationFailed
from apps.common.fsm import fsm_step
from apps.common.locking import lock_object
from apps.queueing.models import (
    AgentPresence,
    AgentState,
    AgentStrategy,
    EntryState,
    QueueEntry,
    ServiceQueue,
)
from apps.queueing.services._common import (
    DISPATCHER,
    _agent_event,
    _entry_event,
    _front_key,
    _place,
    _queue_event,
    _schedule_dispatch,
    entry_not_found,
    step_refused,
)
from apps.queueing.signals import queue_entry_connected
from apps.staff.models import AgentSkill, StaffProfile


def _offered_entry_for(user_staff: StaffProfile, entry_id: int) -> tuple[QueueEntry, AgentPresence]:
    entry = lock_object(QueueEntry.objects, not_found=entry_not_found, related=("queue",), pk=entry_id)
    # Only an offered entry may lock its agent's presence (lock order: see _abandon).
    if entry.state != EntryState.OFFERED:
        raise PermissionDenied(_("This offer is not yours, or it has been withdrawn."), code="not_your_offer")
    presence = AgentPresence.objects.select_for_update().filter(staff=user_staff).first()
    if presence is None or entry.agent_id != presence.pk:
        raise PermissionDenied(_("This offer is not yours, or it has been withdrawn."), code="not_your_offer")
    return entry, presence


@transaction.atomic(durable=True)
def offer_accept(*, actor: AnyActor, staff: StaffProfile, entry_id: int, now: datetime | None = None) -> QueueEntry:
    now = now or timezone.now()
    entry, presence = _offered_entry_for(staff, entry_id)
    if entry.offer_expires_at is not None and entry.offer_expires_at < now:
        raise NotAllowed(_("This offer has expired."), code="offer_expired")
    fsm_step(entry.connect, now, error=step_refused)
    fsm_step(presence.answer, now, error=step_refused)
    entry.save()
    presence.save()
    audit_record(
        actor=actor,
        action=AuditAction.QUEUE_OFFER_ACCEPTED,
        target=entry,
        data={"agent": staff.employee_number, "waited_seconds": round((now - entry.enqueued_at).total_seconds(), 1)},
    )
    _entry_event(entry, "connected", agent=staff.display_name)
    _agent_event(presence, "connected", entry=entry.pk)
    queue_entry_connected.send(sender=QueueEntry, entry=entry, staff=staff)
    return entry


def _return_offer(entry: QueueEntry, presence: AgentPresence, *, now: datetime, missed: bool) -> None:
    front = _front_key(entry.queue_id, entry.priority_key)
    fsm_step(entry.back_to_front, front, error=step_refused)
    if not missed:
        fsm_step(presence.offer_declined, now, error=step_refused)
    elif presence.missed_offers_in_row + 1 >= entry.queue.max_missed_offers:
        fsm_step(presence.offer_missed_too_often, now, error=step_refused)
    else:
        fsm_step(presence.offer_missed, now, error=step_refused)
    entry.save()
    presence.save()
    # The caller audits, then calls _queue_event (lock order: _common._queue_event).
    _entry_event(entry, "back_in_queue")
    _agent_event(presence, "offer_missed" if missed else "offer_declined", entry=entry.pk)
    _schedule_dispatch(entry.queue_id)


@transaction.atomic(durable=True)
def offer_decline(*, actor: AnyActor, staff: StaffProfile, entry_id: int, now: datetime | None = None) -> QueueEntry:
    now = now or timezone.now()
    entry, presence = _offered_entry_for(staff, entry_id)
    _return_offer(entry, presence, now=now, missed=False)
    audit_record(
        actor=actor, action=AuditAction.QUEUE_OFFER_DECLINED, target=entry, data={"agent": staff.employee_number}
    )
    _queue_event(entry.queue_id, inserted=[_place(entry)])
    return entry


@transaction.atomic
def queue_entry_offer_to(
    *, actor: AnyActor, entry_id: int, staff: StaffProfile, now: datetime | None = None, transferred_by: str = ""
) -> QueueEntry:
    """Ring one named agent with a waiting entry (a transfer to a named colleague, R1.2).

    The agent must be available and skilled for the business; otherwise 409
    ``transfer_target_unavailable`` or 400 ``transfer_target_not_skilled``.
    Declining or missing it puts the customer back at the FRONT of the queue,
    as any offer. Lock order as the dispatcher's: entry, then presence.
    """
    now = now or timezone.now()
    entry = lock_object(QueueEntry.objects, not_found=entry_not_found, related=("queue",), pk=entry_id)
    presence = AgentPresence.objects.select_for_update().filter(staff=staff).first()
    if presence is None or presence.state != AgentState.AVAILABLE:
        raise NotAllowed(
            _("This colleague is not available right now."),
            code="transfer_target_unavailable",
            extra={"state": presence.state if presence else AgentState.OFFLINE},
        )
    if not AgentSkill.objects.filter(staff=staff, business_code=entry.business_code).exists():
        raise ValidationFailed(
            _("This colleague is not skilled for the customer's business."), code="transfer_target_not_skilled"
        )
    _ring(entry, presence, now=now, actor=actor, audit_data={"transferred_by": transferred_by})
    return entry


def _ring(
    entry: QueueEntry, presence: AgentPresence, *, now: datetime, actor: AnyActor, audit_data: dict[str, Any]
) -> None:
    """Offer ``entry`` to ``presence`` (both locked by the caller): steps, saves, audit and after-commit events."""
    expires = now + timedelta(seconds=entry.queue.offer_timeout_seconds)
    fsm_step(entry.offer, presence, expires, error=step_refused)
    fsm_step(presence.ring, now, error=step_refused)
    entry.save()
    presence.save()
    audit_record(
        actor=actor,
        action=AuditAction.QUEUE_OFFERED,
        target=entry,
        data={"agent": presence.staff.employee_number, "offer": entry.offers_made, **audit_data},
    )
    _queue_event(entry.queue_id, removed=[_place(entry)])
    _entry_event(entry, "offered")
    _agent_event(presence, "offer", entry=entry.pk, expires_at=expires.isoformat(), business=entry.business_code)


# --- The dispatcher ----------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    entry_id: int
    agent_id: int
    queue_id: int


def _eligible_agents(queue: ServiceQueue, business_code: str, now: datetime) -> QuerySet[AgentPresence]:
    agents = AgentPresence.objects.filter(state=AgentState.AVAILABLE, staff__skills__business_code=business_code)
    if queue.agent_strategy == AgentStrategy.FEWEST_SERVICES:
        services = Case(
            When(services_date=now.date(), then=F("services_today")), default=Value(0), output_field=IntegerField()
        )
        agents = agents.annotate(services=services).order_by("services", "idle_since", "pk")
    elif queue.agent_strategy == AgentStrategy.HIGHEST_PROFICIENCY:
        agents = agents.order_by("-staff__skills__proficiency", "idle_since", "pk")
    else:
        agents = agents.order_by("idle_since", "pk")
    return agents


def dispatch_queue(*, queue_id: int, now: datetime | None = None) -> Offer | None:
    """Offer the best waiting customer of one queue to the best available agent, if any.

    Returns the offer made, or None when nobody can be matched right now.
    """
    now = now or timezone.now()
    # Not durable: the WebSocket bench wraps a dispatch in its own transaction to time its commit.
    with transaction.atomic():
        queue = ServiceQueue.objects.get(pk=queue_id)
        if queue.paused:
            return None
        # Businesses someone can serve right now: the head entry may be for a
        # business no available agent has, and must not block the others.
        servable = set(
            AgentSkill.objects.filter(staff__presence__state=AgentState.AVAILABLE, business_code__in=queue.businesses)
            .order_by()
            .values_list("business_code", flat=True)
            .distinct()
        )
        if not servable:
            return None
        entry = (
            QueueEntry.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(queue=queue, state=EntryState.WAITING, disconnected_at__isnull=True, business_code__in=servable)
            .order_by("priority_key", "ticket", "pk")
            .first()
        )
        if entry is None:
            return None
        entry.queue = queue  # already loaded; spares a query for the audit label
        agent = (
            _eligible_agents(queue, entry.business_code, now)
            .select_related("staff")
            .select_for_update(skip_locked=True, of=("self",))
            .first()
        )
        if agent is None:
            return None
        _ring(entry, agent, now=now, actor=DISPATCHER, audit_data={"strategy": queue.agent_strategy})
        return Offer(entry.pk, agent.pk, queue.pk)


def dispatch_all(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Dispatch every queue until no more matches; returns the number of offers made."""
    made = 0
    for queue_id in ServiceQueue.objects.filter(paused=False).values_list("pk", flat=True):
        while made < limit and dispatch_queue(queue_id=queue_id, now=now) is not None:
            made += 1
    return made
