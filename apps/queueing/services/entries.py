"""A customer's place in the queue (R2): join, queue again after a failed call, drop and come back, leave, move."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.audit.actions import AuditAction
from apps.audit.services import AnyActor, AuditEntry, audit_record, audit_record_many
from apps.common.errors import NotAllowed, NotFound, ValidationFailed
from apps.common.fsm import fsm_step
from apps.common.locking import lock_object
from apps.customers.models import Customer
from apps.queueing.models import (
    LIVE_ENTRY_STATES,
    AgentPresence,
    EndReason,
    EntryState,
    QueueEntry,
    ServiceQueue,
)
from apps.queueing.services._common import (
    DISPATCHER,
    _agent_event,
    _entry_event,
    _front_key,
    _key_for,
    _place,
    _queue_event,
    _queue_moved,
    _schedule_dispatch,
    _ticket_issue,
    entry_not_found,
    step_refused,
)
from apps.queueing.services.configuration import queue_for_business
from apps.verification.selectors import verification_passed
from apps.visits.models import Visit, VisitOutcome
from apps.visits.services import visit_close, visit_location_problem, visit_lock, visit_recording_consent_problem


# Not durable: calls' call_transfer queues the customer again inside its own transaction.
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
    _customer_lock(visit_id=visit_id)
    visit = visit_lock(visit_id=visit_id)
    existing = QueueEntry.objects.filter(visit=visit, state__in=LIVE_ENTRY_STATES).first()
    if existing is not None:
        return existing
    _refuse_closed(visit)
    if not verification_passed(visit=visit):
        raise NotAllowed(_("Please complete the checks before joining the queue."), code="out_of_order")
    # A transfer (``after_service``) moves a customer who already agreed and was served.
    if not after_service and (problem := visit_recording_consent_problem(visit=visit)) is not None:
        raise problem
    if not after_service and (problem := visit_location_problem(visit=visit)) is not None:
        raise problem
    if not after_service and _failed_call_entry(visit) is not None:
        return queue_entry_rejoin(visit_id=visit.pk, now=now)
    if not after_service and QueueEntry.objects.filter(visit=visit, state=EntryState.SERVED).exists():
        raise NotAllowed(_("This visit has already been served. Please start a new one."), code="already_served")
    assert visit.customer is not None
    queue = queue or queue_for_business(business_code=visit.business_code)
    if visit.business_code not in queue.businesses:
        raise ValidationFailed(_("That queue does not serve this customer's business."), code="business_not_served")
    _supersede_other_visits(visit, now=now)
    level = visit.customer.level
    entry = QueueEntry.objects.create(
        visit=visit,
        customer=visit.customer,
        queue=queue,
        business_code=visit.business_code,
        level=level,
        enqueued_at=now,
        priority_key=_key_for(queue, enqueued_at=now, level=level, business_code=visit.business_code),
        ticket=_ticket_issue(),
        last_seen_at=now,
    )
    audit_record(
        actor=visit.customer.as_audit_actor(),
        action=AuditAction.QUEUE_ENTERED,
        target=entry,
        data={"queue": queue.code, "level": level, "business": visit.business_code, "visit": str(visit.public_id)},
    )
    _queue_event(queue.pk, inserted=[_place(entry)])
    _schedule_dispatch(queue.pk)
    return entry


def _customer_lock(*, visit_id: int) -> None:
    """Lock the visit's customer (if Gate 1 named one) before the visit: one customer's enqueues run one at a time.

    Lock order: customer, this visit, then another visit's live entry and that
    visit (``_abandon``'s own order, entry before visit), so that two visits of
    one customer joining at once, or one joining while the other leaves,
    cannot wait on each other. The customer never changes once bound.
    """
    customer_id = Visit.objects.filter(pk=visit_id).values_list("customer_id", flat=True).first()
    if customer_id is not None:
        list(Customer.objects.select_for_update().filter(pk=customer_id).values_list("pk", flat=True))


def _refuse_closed(visit: Visit) -> None:
    """A closed visit never enters a queue (issue 16): the customer left, was refused, or was served."""
    if visit.outcome:
        raise NotAllowed(
            _("This visit has ended. Please start a new one."), code="visit_closed", extra={"outcome": visit.outcome}
        )


def _supersede_other_visits(visit: Visit, *, now: datetime) -> None:
    """A customer has one live visit and one live entry: a newer visit joining closes the older ones.

    An older visit still waiting (or ringing at an agent) leaves the queue
    ``superseded`` and closes as abandoned; an older visit with no live entry
    closes the same way. A visit in a live call is not touched: the joining
    one is refused (``customer_in_call``) until that call ends. An older visit
    joining while a newer one is open is refused (``visit_superseded``); the
    newer one closes it when it joins. "Older" is the visit's id (the order in
    which they were started). Called with the customer locked (``_customer_lock``).
    """
    assert visit.customer is not None
    actor = visit.customer.as_audit_actor()
    others = QueueEntry.objects.filter(visit__customer=visit.customer, state__in=LIVE_ENTRY_STATES).exclude(visit=visit)
    if others.filter(state=EntryState.CONNECTED).exists():
        raise NotAllowed(
            _("You are already in a video call with us. Please finish that call first."), code="customer_in_call"
        )
    if Visit.objects.filter(customer=visit.customer, outcome="", pk__gt=visit.pk).exists():
        raise NotAllowed(_("You have started a newer visit. Please continue there."), code="visit_superseded")
    for entry_id in others.order_by("pk").values_list("pk", flat=True):
        entry = lock_object(QueueEntry.objects, not_found=entry_not_found, related=("queue",), pk=entry_id)
        if entry.state in (EntryState.WAITING, EntryState.OFFERED):
            _abandon(entry, now=now, reason=EndReason.SUPERSEDED, actor=actor)
    for older_id in Visit.objects.filter(customer=visit.customer, outcome="", pk__lt=visit.pk).values_list(
        "pk", flat=True
    ):
        visit_close(visit_id=older_id, actor=actor, outcome=VisitOutcome.ABANDONED, reason=EndReason.SUPERSEDED.value)


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
    _customer_lock(visit_id=visit_id)
    visit = visit_lock(visit_id=visit_id)
    existing = QueueEntry.objects.filter(visit=visit, state__in=LIVE_ENTRY_STATES).first()
    if existing is not None:
        return existing
    previous = _failed_call_entry(visit)
    if previous is None or not verification_passed(visit=visit):
        raise NotAllowed(
            _("Only a visit whose call failed before it was concluded can queue again."), code="rejoin_not_allowed"
        )
    assert visit.customer is not None
    _supersede_other_visits(visit, now=now)
    queue = previous.queue
    first = QueueEntry.objects.filter(visit=visit).order_by("pk").first()
    enqueued_at = first.enqueued_at if first is not None else now
    key = _front_key(
        queue.pk, _key_for(queue, enqueued_at=enqueued_at, level=previous.level, business_code=previous.business_code)
    )
    entry = QueueEntry.objects.create(
        visit=visit,
        customer=visit.customer,
        queue=queue,
        business_code=previous.business_code,
        level=visit.customer.level,
        enqueued_at=enqueued_at,
        priority_key=key,
        ticket=_ticket_issue(),
        last_seen_at=now,
    )
    audit_record(
        actor=visit.customer.as_audit_actor(),
        action=AuditAction.QUEUE_REJOINED,
        target=entry,
        data={"queue": queue.code, "previous_entry": previous.pk, "reason": previous.end_reason},
    )
    _queue_event(queue.pk, inserted=[_place(entry)])
    _schedule_dispatch(queue.pk)
    return entry


@transaction.atomic
def queue_entry_disconnect(*, entry_id: int, now: datetime | None = None) -> QueueEntry:
    """The customer's page dropped: keep the place for the grace period (R2, abandon and reconnect)."""
    entry = lock_object(QueueEntry.objects, not_found=entry_not_found, related=("queue",), pk=entry_id)
    if entry.state in (EntryState.WAITING, EntryState.OFFERED) and entry.disconnected_at is None:
        entry.disconnected_at = now or timezone.now()
        entry.save(update_fields=["disconnected_at"])
        audit_record(actor=DISPATCHER, action=AuditAction.QUEUE_DISCONNECTED, target=entry)
    return entry


@transaction.atomic
def queue_entries_disconnect(*, entry_ids: list[int], now: datetime | None = None) -> list[int]:
    """``queue_entry_disconnect`` for many pages that dropped together, in ONE transaction; returns the ids marked.

    A Daphne whose thousands of sockets close at once (a network cut, a load
    balancer's restart) would otherwise write them one by one on its one
    database thread, and Daphne cancels a consumer still busy 10 s after its
    socket closed: at 5,000 pages most were never marked (left to the silence
    sweeper). Rows are locked in id order; one that has moved on (offered
    and connected, ended, already marked) is left as it is, as the
    one-at-a-time service does.
    """
    now = now or timezone.now()
    entries = list(
        QueueEntry.objects.select_for_update(of=("self",))
        .select_related("queue")
        .filter(pk__in=entry_ids, state__in=(EntryState.WAITING, EntryState.OFFERED), disconnected_at__isnull=True)
        .order_by("pk")
    )
    if not entries:
        return []
    QueueEntry.objects.filter(pk__in=[entry.pk for entry in entries]).update(disconnected_at=now)
    for entry in entries:
        entry.disconnected_at = now
    audit_record_many(
        entries=[AuditEntry(actor=DISPATCHER, action=AuditAction.QUEUE_DISCONNECTED, target=entry) for entry in entries]
    )
    return [entry.pk for entry in entries]


@transaction.atomic
def queue_entry_reconnect(*, entry_id: int) -> QueueEntry:
    entry = lock_object(QueueEntry.objects, not_found=entry_not_found, related=("queue",), pk=entry_id)
    if entry.disconnected_at is not None and entry.state in (EntryState.WAITING, EntryState.OFFERED):
        entry.disconnected_at = None
        entry.save(update_fields=["disconnected_at"])
        audit_record(actor=DISPATCHER, action=AuditAction.QUEUE_RECONNECTED, target=entry)
        _schedule_dispatch(entry.queue_id)
    return entry


def queue_entry_heartbeat(*, entry_id: int, now: datetime | None = None) -> bool:
    """The customer's page is still there (its WebSocket's heartbeat). Returns whether it wrote anything.

    Cheap on purpose, since every waiting page sends one every
    ``VISIT_HEARTBEAT_SECONDS``: one conditional UPDATE, which writes only when
    the stored time is older than that interval; no row lock and no audit (it
    changes no state). The silence sweeper
    (``housekeeping.entries_silence_expire``) re-checks the time under its
    lock, so a heartbeat racing it is never lost. A page that the sweeper
    marked disconnected and that turns out to be alive is reconnected (audited).
    """
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.VISIT_HEARTBEAT_SECONDS)
    written = QueueEntry.objects.filter(pk=entry_id, state__in=LIVE_ENTRY_STATES, last_seen_at__lt=stale_before).update(
        last_seen_at=now
    )
    if written and QueueEntry.objects.filter(pk=entry_id, disconnected_at__isnull=False).exists():
        queue_entry_reconnect(entry_id=entry_id)
    return bool(written)


def _abandon(entry: QueueEntry, *, now: datetime, reason: EndReason, actor: AnyActor) -> None:
    # Lock order is entry, then presence, everywhere; agent_service_end locks
    # presence then a CONNECTED entry. Checking the state before locking the
    # presence keeps the two from ever waiting on each other (deadlock).
    if entry.state not in (EntryState.WAITING, EntryState.OFFERED):
        fsm_step(entry.abandon, now, reason, error=step_refused)  # raises out_of_order
    was_waiting = entry.state == EntryState.WAITING
    presence = AgentPresence.objects.select_for_update().get(pk=entry.agent_id) if entry.agent_id else None
    fsm_step(entry.abandon, now, reason, error=step_refused)
    entry.save()
    if presence is not None:
        fsm_step(presence.offer_declined, now, error=step_refused)
        presence.save()
        _agent_event(presence, "offer_withdrawn", entry=entry.pk)
        _schedule_dispatch(entry.queue_id)
    audit_record(actor=actor, action=AuditAction.QUEUE_ABANDONED, target=entry, data={"reason": reason.value})
    if was_waiting:
        _queue_event(entry.queue_id, removed=[_place(entry)])
    # Leaving the queue ends the service (R4: every service leaves a record
    # with its outcome); coming back is a new visit.
    visit_close(visit_id=entry.visit_id, actor=actor, outcome=VisitOutcome.ABANDONED, reason=reason.value)


@transaction.atomic(durable=True)
def queue_entry_leave(*, entry_id: int, now: datetime | None = None) -> QueueEntry:
    """The customer hangs up while waiting."""
    entry = lock_object(QueueEntry.objects, not_found=entry_not_found, related=("queue",), pk=entry_id)
    _abandon(entry, now=now or timezone.now(), reason=EndReason.CUSTOMER_LEFT, actor=entry.visit.customer or DISPATCHER)
    return entry


@transaction.atomic(durable=True)
def queue_entry_move(*, actor: AnyActor, entry_id: int, queue_id: int) -> QueueEntry:
    """A supervisor moves a waiting customer to another queue, keeping the time waited (R2.6)."""
    entry = lock_object(QueueEntry.objects, not_found=entry_not_found, related=("queue",), pk=entry_id)
    target = ServiceQueue.objects.filter(pk=queue_id).first()
    if target is None:
        raise NotFound(_("This queue does not exist."), code="queue_not_found")
    if entry.business_code not in target.businesses:
        raise ValidationFailed(_("That queue does not serve this customer's business."), code="business_not_served")
    if target.pk == entry.queue_id:
        return entry
    source = entry.queue
    old_place = _place(entry)
    new_key = _key_for(target, enqueued_at=entry.enqueued_at, level=entry.level, business_code=entry.business_code)
    fsm_step(entry.move, target, new_key, False, _ticket_issue(), error=step_refused)
    entry.save()
    audit_record(
        actor=actor, action=AuditAction.QUEUE_MOVED, target=entry, data={"from": source.code, "to": target.code}
    )
    _queue_moved(source_id=source.pk, old_place=old_place, entry=entry)
    _entry_event(entry, "moved", queue=target.pk)
    _schedule_dispatch(target.pk)
    return entry
