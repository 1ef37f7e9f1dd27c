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
from django.db.models import Case, F, IntegerField, Min, Q, QuerySet, Value, When
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import TransitionNotAllowed

from apps.audit.actions import AuditAction
from apps.audit.services import Actor, AnyActor, audit_record
from apps.common.errors import NotAllowed, NotFound, PermissionDenied, ValidationFailed
from apps.queueing import events
from apps.queueing.models import (
    AgentPresence,
    AgentState,
    AgentStrategy,
    EndReason,
    EntryState,
    OverflowTarget,
    QueueEntry,
    QueueSnapshot,
    ServiceQueue,
)
from apps.queueing.signals import dispatcher_ticked, queue_entry_connected
from apps.staff.models import AgentSkill, StaffProfile
from apps.verification.selectors import verification_passed
from apps.visits.models import Visit, VisitOutcome
from apps.visits.services import visit_close, visit_lock

DISPATCHER = Actor.system("dispatcher")
LIVE_STATES = (EntryState.WAITING, EntryState.OFFERED, EntryState.CONNECTED)


def _apply(instance: Any, transition_name: str, *args: Any) -> None:
    try:
        getattr(instance, transition_name)(*args)
    except TransitionNotAllowed as exc:
        raise NotAllowed(
            _("This action is not possible in the current state."), code="out_of_order", extra={"state": instance.state}
        ) from exc


def _entry_event(entry: QueueEntry, kind: str, **extra: Any) -> None:
    events.broadcast_on_commit(
        events.visit_group(entry.visit_id), {"type": events.VISIT_UPDATE, "event": kind, "entry": entry.pk, **extra}
    )


def _agent_event(presence: AgentPresence, kind: str, **extra: Any) -> None:
    events.broadcast_on_commit(
        events.agent_group(presence.pk),
        {"type": events.AGENT_UPDATE, "event": kind, "state": presence.state, **extra},
    )


def _queue_event(queue_id: int, *, removed_key: float | None = None, inserted_key: float | None = None) -> None:
    events.broadcast_on_commit(
        events.queue_group(queue_id),
        {"type": events.QUEUE_CHANGED, "removed_key": removed_key, "inserted_key": inserted_key},
    )


def _schedule_dispatch(queue_id: int) -> None:
    """Ask for a dispatch once this transaction commits (a task; eager in the embedded default)."""
    from apps.queueing.tasks import dispatch_queue_task

    transaction.on_commit(lambda: dispatch_queue_task.delay(queue_id))


def _front_key(queue_id: int, fallback: float) -> float:
    """A key ahead of every entry waiting in the queue (R2.4: back to the FRONT)."""
    lowest = QueueEntry.objects.filter(queue_id=queue_id, state=EntryState.WAITING).aggregate(low=Min("priority_key"))[
        "low"
    ]
    return min(fallback, lowest - 1.0) if lowest is not None else fallback


def _key_for(queue: ServiceQueue, *, enqueued_at: datetime, level: str, business_code: str) -> float:
    return enqueued_at.timestamp() - queue.bonus_seconds(level=level, business_code=business_code)


# --- Configuration ------------------------------------------------------------


def queue_for_business(*, business_code: str) -> ServiceQueue:
    """The queue that takes customers of a business first (lowest code wins a tie)."""
    for queue in ServiceQueue.objects.order_by("code"):
        if business_code in queue.businesses:
            return queue
    raise NotFound(_("No queue serves this business at the moment."), code="no_queue")


@transaction.atomic
def service_queue_upsert(
    *, actor: AnyActor, code: str, name: str, businesses: list[str], **options: Any
) -> ServiceQueue:
    queue, created = ServiceQueue.objects.select_for_update().get_or_create(
        code=code, defaults={"name": name, "businesses": businesses, **options}
    )
    changed = {
        field: value
        for field, value in {"name": name, "businesses": businesses, **options}.items()
        if getattr(queue, field) != value
    }
    if not created and not changed:
        return queue
    for field, value in changed.items():
        setattr(queue, field, value)
    queue.full_clean()
    queue.save()
    audit_record(
        actor=actor,
        action=AuditAction.QUEUE_CONFIGURED,
        target=queue,
        data={"created": created, "changed": sorted(changed) if not created else []},
    )
    return queue


@transaction.atomic
def overflow_target_set(*, actor: AnyActor, queue: ServiceQueue, target: ServiceQueue, position: int) -> OverflowTarget:
    """Make ``target`` the overflow destination of ``queue`` at ``position`` (1 = tried first)."""
    if queue.pk == target.pk:
        raise ValidationFailed(_("A queue cannot overflow into itself."), code="overflow_to_itself")
    link, created = OverflowTarget.objects.select_for_update().get_or_create(
        queue=queue, target=target, defaults={"position": position}
    )
    if not created and link.position == position:
        return link
    link.position = position
    link.save()
    audit_record(
        actor=actor,
        action=AuditAction.QUEUE_CONFIGURED,
        target=queue,
        data={"overflow_to": target.code, "position": position},
    )
    return link


@transaction.atomic
def overflow_target_remove(*, actor: AnyActor, link: OverflowTarget) -> None:
    queue = link.queue
    target_code = link.target.code
    OverflowTarget.objects.filter(pk=link.pk).delete()
    audit_record(actor=actor, action=AuditAction.QUEUE_CONFIGURED, target=queue, data={"overflow_removed": target_code})


# --- Customers --------------------------------------------------------------


@transaction.atomic
def queue_entry_enqueue(
    *, visit_id: int, now: datetime | None = None, queue: ServiceQueue | None = None, after_service: bool = False
) -> QueueEntry:
    """Put a visit that passed Gate 1 in a queue (its business's by default).

    Idempotent: a visit with a live entry gets that entry back. A visit that
    was already served may only queue again when ``after_service`` says so
    (a transfer to another queue keeps the gate results, R1.2).
    """
    now = now or timezone.now()
    visit = visit_lock(visit_id=visit_id)
    existing = QueueEntry.objects.filter(visit=visit, state__in=LIVE_STATES).first()
    if existing is not None:
        return existing
    if not verification_passed(visit=visit):
        raise NotAllowed(_("Please complete the checks before joining the queue."), code="out_of_order")
    if not after_service and _failed_call_entry(visit) is not None:
        return queue_entry_rejoin(visit_id=visit.pk, now=now)
    if not after_service and QueueEntry.objects.filter(visit=visit, state=EntryState.SERVED).exists():
        raise NotAllowed(_("This visit has already been served. Please start a new one."), code="already_served")
    assert visit.customer is not None
    queue = queue or queue_for_business(business_code=visit.business_code)
    if visit.business_code not in queue.businesses:
        raise ValidationFailed(_("That queue does not serve this customer's business."), code="business_not_served")
    level = visit.customer.level
    entry = QueueEntry.objects.create(
        visit=visit,
        queue=queue,
        business_code=visit.business_code,
        level=level,
        enqueued_at=now,
        priority_key=_key_for(queue, enqueued_at=now, level=level, business_code=visit.business_code),
    )
    audit_record(
        actor=visit.customer.as_audit_actor(),
        action=AuditAction.QUEUE_ENTERED,
        target=entry,
        data={"queue": queue.code, "level": level, "business": visit.business_code, "visit": str(visit.public_id)},
    )
    _queue_event(queue.pk, inserted_key=entry.priority_key)
    _schedule_dispatch(queue.pk)
    return entry


def _failed_call_entry(visit: Visit) -> QueueEntry | None:
    """The visit's last entry, if its call failed and the visit has no outcome yet (nothing was decided)."""
    last = QueueEntry.objects.filter(visit=visit).order_by("-pk").first()
    if last is None or last.state != EntryState.SERVED or last.end_reason != EndReason.CALL_FAILED:
        return None
    return last if not visit.outcome else None


@transaction.atomic
def queue_entry_rejoin(*, visit_id: int, now: datetime | None = None) -> QueueEntry:
    """A customer whose call failed (video server down, grace expired) queues again, at the FRONT.

    Allowed while the visit has no outcome (the service was not concluded).
    The new entry keeps the first entry's enqueue time (the waited time is the
    customer's, R2) and goes ahead of everyone waiting, as a declined offer
    does (R2.4). Idempotent: a visit with a live entry gets it back.
    """
    now = now or timezone.now()
    visit = visit_lock(visit_id=visit_id)
    existing = QueueEntry.objects.filter(visit=visit, state__in=LIVE_STATES).first()
    if existing is not None:
        return existing
    previous = _failed_call_entry(visit)
    if previous is None or not verification_passed(visit=visit):
        raise NotAllowed(
            _("Only a visit whose call failed before it was concluded can queue again."), code="rejoin_not_allowed"
        )
    assert visit.customer is not None
    queue = previous.queue
    first = QueueEntry.objects.filter(visit=visit).order_by("pk").first()
    enqueued_at = first.enqueued_at if first is not None else now
    key = _front_key(
        queue.pk, _key_for(queue, enqueued_at=enqueued_at, level=previous.level, business_code=previous.business_code)
    )
    entry = QueueEntry.objects.create(
        visit=visit,
        queue=queue,
        business_code=previous.business_code,
        level=visit.customer.level,
        enqueued_at=enqueued_at,
        priority_key=key,
    )
    audit_record(
        actor=visit.customer.as_audit_actor(),
        action=AuditAction.QUEUE_REJOINED,
        target=entry,
        data={"queue": queue.code, "previous_entry": previous.pk, "reason": previous.end_reason},
    )
    _queue_event(queue.pk, inserted_key=entry.priority_key)
    _schedule_dispatch(queue.pk)
    return entry


def _locked_entry(entry_id: int) -> QueueEntry:
    try:
        return QueueEntry.objects.select_for_update(of=("self",)).select_related("queue").get(pk=entry_id)
    except QueueEntry.DoesNotExist as exc:
        raise NotFound(_("This queue entry does not exist."), code="entry_not_found") from exc


@transaction.atomic
def queue_entry_disconnect(*, entry_id: int, now: datetime | None = None) -> QueueEntry:
    """The customer's page dropped: keep the place for the grace period (R2, abandon and reconnect)."""
    entry = _locked_entry(entry_id)
    if entry.state in (EntryState.WAITING, EntryState.OFFERED) and entry.disconnected_at is None:
        entry.disconnected_at = now or timezone.now()
        entry.save(update_fields=["disconnected_at"])
        audit_record(actor=DISPATCHER, action=AuditAction.QUEUE_DISCONNECTED, target=entry)
    return entry


@transaction.atomic
def queue_entry_reconnect(*, entry_id: int) -> QueueEntry:
    entry = _locked_entry(entry_id)
    if entry.disconnected_at is not None and entry.state in (EntryState.WAITING, EntryState.OFFERED):
        entry.disconnected_at = None
        entry.save(update_fields=["disconnected_at"])
        audit_record(actor=DISPATCHER, action=AuditAction.QUEUE_RECONNECTED, target=entry)
        _schedule_dispatch(entry.queue_id)
    return entry


def _abandon(entry: QueueEntry, *, now: datetime, reason: EndReason, actor: AnyActor) -> None:
    # Lock order is entry, then presence, everywhere; agent_service_end locks
    # presence then a CONNECTED entry. Checking the state before locking the
    # presence keeps the two from ever waiting on each other (deadlock).
    if entry.state not in (EntryState.WAITING, EntryState.OFFERED):
        _apply(entry, "abandon", now, reason)  # raises out_of_order
    was_waiting = entry.state == EntryState.WAITING
    presence = AgentPresence.objects.select_for_update().get(pk=entry.agent_id) if entry.agent_id else None
    _apply(entry, "abandon", now, reason)
    entry.save()
    if presence is not None:
        _apply(presence, "offer_declined", now)
        presence.save()
        _agent_event(presence, "offer_withdrawn", entry=entry.pk)
        _schedule_dispatch(entry.queue_id)
    audit_record(actor=actor, action=AuditAction.QUEUE_ABANDONED, target=entry, data={"reason": reason.value})
    if was_waiting:
        _queue_event(entry.queue_id, removed_key=entry.priority_key)
    # Leaving the queue ends the service (R4: every service leaves a record
    # with its outcome); coming back is a new visit.
    visit_close(visit_id=entry.visit_id, actor=actor, outcome=VisitOutcome.ABANDONED, reason=reason.value)


@transaction.atomic
def queue_entry_leave(*, entry_id: int, now: datetime | None = None) -> QueueEntry:
    """The customer hangs up while waiting."""
    entry = _locked_entry(entry_id)
    _abandon(entry, now=now or timezone.now(), reason=EndReason.CUSTOMER_LEFT, actor=entry.visit.customer or DISPATCHER)
    return entry


@transaction.atomic
def queue_entry_move(*, actor: AnyActor, entry_id: int, queue_id: int) -> QueueEntry:
    """A supervisor moves a waiting customer to another queue, keeping the time waited (R2.6)."""
    entry = _locked_entry(entry_id)
    target = ServiceQueue.objects.filter(pk=queue_id).first()
    if target is None:
        raise NotFound(_("This queue does not exist."), code="queue_not_found")
    if entry.business_code not in target.businesses:
        raise ValidationFailed(_("That queue does not serve this customer's business."), code="business_not_served")
    if target.pk == entry.queue_id:
        return entry
    source = entry.queue
    old_key = entry.priority_key
    new_key = _key_for(target, enqueued_at=entry.enqueued_at, level=entry.level, business_code=entry.business_code)
    _apply(entry, "move", target, new_key, False)
    entry.save()
    audit_record(
        actor=actor, action=AuditAction.QUEUE_MOVED, target=entry, data={"from": source.code, "to": target.code}
    )
    _queue_event(source.pk, removed_key=old_key)
    _queue_event(target.pk, inserted_key=new_key)
    _entry_event(entry, "moved", queue=target.pk)
    _schedule_dispatch(target.pk)
    return entry


# --- Agents ---------------------------------------------------------------------


def _presence_for(staff: StaffProfile, now: datetime) -> AgentPresence:
    presence, _created = AgentPresence.objects.get_or_create(staff=staff, defaults={"state_since": now})
    return AgentPresence.objects.select_for_update().get(pk=presence.pk)


_STATE_TRANSITIONS = {
    AgentState.AVAILABLE: "go_available",
    AgentState.AWAY: "go_away",
    AgentState.OFFLINE: "go_offline",
}


@transaction.atomic
def agent_state_set(
    *, actor: AnyActor, staff: StaffProfile, state: AgentState, now: datetime | None = None
) -> AgentPresence:
    """An agent (or their supervisor) sets available, away or offline (R2.6)."""
    now = now or timezone.now()
    if state not in _STATE_TRANSITIONS:
        raise ValidationFailed(_("An agent can only be set available, away or offline."), code="invalid_state")
    presence = _presence_for(staff, now)
    if presence.state == state:
        return presence
    previous = presence.state
    _apply(presence, _STATE_TRANSITIONS[state], now)
    presence.save()
    audit_record(
        actor=actor, action=AuditAction.AGENT_STATE_CHANGED, target=presence, data={"from": previous, "to": state.value}
    )
    _agent_event(presence, "state")
    if state == AgentState.AVAILABLE:
        for queue_id in _queues_for_agent(presence):
            _schedule_dispatch(queue_id)
    return presence


def _queues_for_agent(presence: AgentPresence) -> list[int]:
    businesses = set(AgentSkill.objects.filter(staff_id=presence.staff_id).values_list("business_code", flat=True))
    return [queue.pk for queue in ServiceQueue.objects.all() if businesses & set(queue.businesses)]


def _offered_entry_for(user_staff: StaffProfile, entry_id: int) -> tuple[QueueEntry, AgentPresence]:
    entry = _locked_entry(entry_id)
    # Only an offered entry may lock its agent's presence (lock order: see _abandon).
    if entry.state != EntryState.OFFERED:
        raise PermissionDenied(_("This offer is not yours, or it has been withdrawn."), code="not_your_offer")
    presence = AgentPresence.objects.select_for_update().filter(staff=user_staff).first()
    if presence is None or entry.agent_id != presence.pk:
        raise PermissionDenied(_("This offer is not yours, or it has been withdrawn."), code="not_your_offer")
    return entry, presence


@transaction.atomic
def offer_accept(*, actor: AnyActor, staff: StaffProfile, entry_id: int, now: datetime | None = None) -> QueueEntry:
    now = now or timezone.now()
    entry, presence = _offered_entry_for(staff, entry_id)
    if entry.offer_expires_at is not None and entry.offer_expires_at < now:
        raise NotAllowed(_("This offer has expired."), code="offer_expired")
    _apply(entry, "connect", now)
    _apply(presence, "answer", now)
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
    _apply(entry, "back_to_front", front)
    if not missed:
        _apply(presence, "offer_declined", now)
    elif presence.missed_offers_in_row + 1 >= entry.queue.max_missed_offers:
        _apply(presence, "offer_missed_too_often", now)
    else:
        _apply(presence, "offer_missed", now)
    entry.save()
    presence.save()
    _queue_event(entry.queue_id, inserted_key=entry.priority_key)
    _entry_event(entry, "back_in_queue")
    _agent_event(presence, "offer_missed" if missed else "offer_declined", entry=entry.pk)
    _schedule_dispatch(entry.queue_id)


@transaction.atomic
def offer_decline(*, actor: AnyActor, staff: StaffProfile, entry_id: int, now: datetime | None = None) -> QueueEntry:
    now = now or timezone.now()
    entry, presence = _offered_entry_for(staff, entry_id)
    _return_offer(entry, presence, now=now, missed=False)
    audit_record(
        actor=actor, action=AuditAction.QUEUE_OFFER_DECLINED, target=entry, data={"agent": staff.employee_number}
    )
    return entry


@transaction.atomic
def agent_assist_start(*, actor: AnyActor, staff: StaffProfile, now: datetime | None = None) -> AgentPresence:
    """An available expert or agent joins someone else's call (R1.2): busy until it ends.

    Someone not available (offline, away, ringing, busy) keeps their state.
    """
    now = now or timezone.now()
    presence = _presence_for(staff, now)
    if presence.state != AgentState.AVAILABLE:
        return presence
    _apply(presence, "assist", now)
    presence.save()
    audit_record(
        actor=actor, action=AuditAction.AGENT_STATE_CHANGED, target=presence, data={"to": "busy", "assisting": True}
    )
    _agent_event(presence, "state")
    return presence


@transaction.atomic
def agent_service_end(
    *, actor: AnyActor, staff: StaffProfile, now: datetime | None = None, call_failed: bool = False
) -> AgentPresence:
    """The agent's service ended: wrap-up (after-call work) for the queue's configured time.

    ``call_failed``: the call broke down (video server failed, a participant
    never came back) rather than ended; the customer may queue again with
    priority (``queue_entry_rejoin``).
    """
    now = now or timezone.now()
    presence = _presence_for(staff, now)
    entry = (
        QueueEntry.objects.select_for_update(of=("self",))
        .select_related("queue")
        .filter(agent=presence, state=EntryState.CONNECTED)
        .first()
    )
    wrap_up = timedelta(seconds=entry.queue.wrap_up_seconds if entry else 0)
    _apply(presence, "service_ended", now, now + wrap_up)
    presence.save()
    if entry is not None:
        # The entry leaves the live set, which frees the agent in the unique
        # index; the call and service records (later apps) carry the service on.
        _apply(entry, "finish", now, EndReason.CALL_FAILED if call_failed else EndReason.ANSWERED)
        entry.save()
    audit_record(actor=actor, action=AuditAction.AGENT_STATE_CHANGED, target=presence, data={"to": "wrap_up"})
    _agent_event(presence, "wrap_up")
    return presence


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
            .order_by("priority_key", "pk")
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
        expires = now + timedelta(seconds=queue.offer_timeout_seconds)
        _apply(entry, "offer", agent, expires)
        _apply(agent, "ring", now)
        entry.save()
        agent.save()
        audit_record(
            actor=DISPATCHER,
            action=AuditAction.QUEUE_OFFERED,
            target=entry,
            data={"agent": agent.staff.employee_number, "strategy": queue.agent_strategy, "offer": entry.offers_made},
        )
        _queue_event(queue.pk, removed_key=entry.priority_key)
        _entry_event(entry, "offered")
        _agent_event(agent, "offer", entry=entry.pk, expires_at=expires.isoformat(), business=entry.business_code)
        return Offer(entry.pk, agent.pk, queue.pk)


def dispatch_all(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Dispatch every queue until no more matches; returns the number of offers made."""
    made = 0
    for queue_id in ServiceQueue.objects.filter(paused=False).values_list("pk", flat=True):
        while made < limit and dispatch_queue(queue_id=queue_id, now=now) is not None:
            made += 1
    return made


def offers_expire(*, now: datetime | None = None) -> int:
    """Unanswered offers go back to the FRONT; agents who miss too many are set away."""
    now = now or timezone.now()
    count = 0
    expired_ids = list(
        QueueEntry.objects.filter(state=EntryState.OFFERED, offer_expires_at__lt=now).values_list("pk", flat=True)
    )
    for entry_id in expired_ids:
        with transaction.atomic():
            entry = (
                QueueEntry.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("queue")
                .filter(pk=entry_id, state=EntryState.OFFERED, offer_expires_at__lt=now)
                .first()
            )
            if entry is None:
                continue
            presence = AgentPresence.objects.select_for_update().get(pk=entry.agent_id)
            agent_number = presence.staff.employee_number
            _return_offer(entry, presence, now=now, missed=True)
            audit_record(
                actor=DISPATCHER,
                action=AuditAction.QUEUE_OFFER_TIMED_OUT,
                target=entry,
                data={"agent": agent_number, "agent_state": presence.state},
            )
            count += 1
    return count


def wrap_ups_finish(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    count = 0
    for presence_id in AgentPresence.objects.filter(state=AgentState.WRAP_UP, wrap_up_until__lte=now).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            presence = (
                AgentPresence.objects.select_for_update(skip_locked=True)
                .filter(pk=presence_id, state=AgentState.WRAP_UP)
                .first()
            )
            if presence is None:
                continue
            _apply(presence, "go_available", now)
            presence.save()
            audit_record(
                actor=DISPATCHER, action=AuditAction.AGENT_STATE_CHANGED, target=presence, data={"to": "available"}
            )
            _agent_event(presence, "state")
            count += 1
    return count


def entries_grace_expire(*, now: datetime | None = None) -> int:
    """Customers whose page stayed away past the grace period leave the queue."""
    now = now or timezone.now()
    count = 0
    candidates = QueueEntry.objects.filter(
        state__in=(EntryState.WAITING, EntryState.OFFERED), disconnected_at__isnull=False
    ).select_related("queue")
    for entry in candidates:
        if entry.disconnected_at and now - entry.disconnected_at < timedelta(
            seconds=entry.queue.reconnect_grace_seconds
        ):
            continue
        with transaction.atomic():
            locked = (
                QueueEntry.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(pk=entry.pk, disconnected_at=entry.disconnected_at)
                .first()
            )
            if locked is None or locked.state not in (EntryState.WAITING, EntryState.OFFERED):
                continue
            _abandon(locked, now=now, reason=EndReason.GRACE_EXPIRED, actor=DISPATCHER)
            count += 1
    return count


def queue_overflow(*, queue_id: int, now: datetime | None = None) -> int:
    """Move customers beyond the queue's threshold to its overflow targets, in order (R2.3).

    By length: the newest entries beyond ``overflow_max_waiting`` move. By
    wait: entries waiting longer than ``overflow_max_wait_seconds`` move. A
    target must serve the business and have a skilled agent logged in.
    """
    now = now or timezone.now()
    queue = ServiceQueue.objects.get(pk=queue_id)
    targets = [t.target for t in queue.overflow_targets.select_related("target").order_by("position")]
    if not targets or (queue.overflow_max_waiting is None and queue.overflow_max_wait_seconds is None):
        return 0
    waiting = QueueEntry.objects.filter(queue=queue, state=EntryState.WAITING).order_by("priority_key", "pk")
    chosen: list[int] = []
    if queue.overflow_max_wait_seconds is not None:
        limit = now - timedelta(seconds=queue.overflow_max_wait_seconds)
        chosen += list(waiting.filter(enqueued_at__lte=limit).values_list("pk", flat=True))
    if queue.overflow_max_waiting is not None:
        chosen += list(waiting.values_list("pk", flat=True)[queue.overflow_max_waiting :])
    moved = 0
    for entry_id in dict.fromkeys(chosen):
        with transaction.atomic():
            entry = (
                QueueEntry.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(pk=entry_id, queue=queue, state=EntryState.WAITING)
                .first()
            )
            if entry is None:
                continue
            target = next((t for t in targets if _can_take(t, entry.business_code)), None)
            if target is None:
                continue
            old_key = entry.priority_key
            new_key = _key_for(
                target, enqueued_at=entry.enqueued_at, level=entry.level, business_code=entry.business_code
            )
            _apply(entry, "move", target, new_key, True)
            entry.save()
            audit_record(
                actor=DISPATCHER,
                action=AuditAction.QUEUE_OVERFLOWED,
                target=entry,
                data={
                    "from": queue.code,
                    "to": target.code,
                    "waited_seconds": round((now - entry.enqueued_at).total_seconds(), 1),
                },
            )
            _queue_event(queue.pk, removed_key=old_key)
            _queue_event(target.pk, inserted_key=new_key)
            _entry_event(entry, "moved", queue=target.pk)
            _schedule_dispatch(target.pk)
            moved += 1
    return moved


def _can_take(queue: ServiceQueue, business_code: str) -> bool:
    if business_code not in queue.businesses or queue.paused:
        return False
    logged_in = (AgentState.AVAILABLE, AgentState.OFFERED, AgentState.BUSY, AgentState.WRAP_UP)
    return AgentSkill.objects.filter(business_code=business_code, staff__presence__state__in=logged_in).exists()


def dispatcher_tick(*, now: datetime | None = None) -> dict[str, int]:
    """One round of the dispatcher loop: housekeeping, overflow, then matching."""
    now = now or timezone.now()
    done = {
        "expired_offers": offers_expire(now=now),
        "wrap_ups_finished": wrap_ups_finish(now=now),
        "grace_expired": entries_grace_expire(now=now),
        "overflowed": sum(
            queue_overflow(queue_id=queue_id, now=now)
            for queue_id in ServiceQueue.objects.filter(
                Q(overflow_max_waiting__isnull=False) | Q(overflow_max_wait_seconds__isnull=False)
            ).values_list("pk", flat=True)
        ),
    }
    done["offers"] = dispatch_all(now=now)
    dispatcher_ticked.send(sender=ServiceQueue, now=now)
    return done


def queue_snapshots_take(*, now: datetime | None = None) -> int:
    """Record every queue's figures for the current minute (idempotent per minute)."""
    from apps.queueing.selectors import queue_figures

    now = now or timezone.now()
    minute = now.replace(second=0, microsecond=0)
    taken = 0
    for figures in queue_figures(now=now):
        skilled = AgentPresence.objects.filter(
            staff__skills__business_code__in=ServiceQueue.objects.get(pk=figures.queue_id).businesses
        ).distinct()
        _snapshot, created = QueueSnapshot.objects.get_or_create(
            queue_id=figures.queue_id,
            taken_at=minute,
            defaults={
                "waiting": figures.waiting,
                "longest_wait_seconds": figures.longest_wait_seconds,
                "agents_available": skilled.filter(state=AgentState.AVAILABLE).count(),
                "agents_busy": skilled.filter(
                    state__in=(AgentState.OFFERED, AgentState.BUSY, AgentState.WRAP_UP)
                ).count(),
            },
        )
        taken += int(created)
    return taken
