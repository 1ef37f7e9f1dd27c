"""What only time triggers (the ``run_dispatcher`` loop): offer timeouts, wrap-up ends, silent pages,
reconnect grace, overflow, one dispatcher round, and the minute snapshots of the figures."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit.actions import AuditAction
from apps.audit.services import audit_record
from apps.common.fsm import fsm_step
from apps.common.signals import housekeeping_due
from apps.queueing.models import (
    AgentPresence,
    AgentState,
    EndReason,
    EntryState,
    QueueEntry,
    QueueSnapshot,
    ServiceQueue,
)
from apps.queueing.services._common import (
    DISPATCHER,
    _agent_event,
    _entry_event,
    _key_for,
    _place,
    _queue_event,
    _queue_moved,
    _schedule_dispatch,
    _ticket_issue,
    step_refused,
)
from apps.queueing.services.entries import _abandon
from apps.queueing.services.offers import _return_offer, dispatch_all
from apps.staff.models import AgentSkill

logger = logging.getLogger(__name__)


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
            _queue_event(entry.queue_id, inserted=[_place(entry)])
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
            fsm_step(presence.go_available, now, error=step_refused)
            presence.save()
            audit_record(
                actor=DISPATCHER, action=AuditAction.AGENT_STATE_CHANGED, target=presence, data={"to": "available"}
            )
            _agent_event(presence, "state")
            count += 1
    return count


def entries_silence_expire(*, now: datetime | None = None) -> int:
    """Customers whose page went silent (no heartbeat) are marked disconnected; the grace period then applies.

    The page's WebSocket refreshes ``last_seen_at`` (``queue_entry_heartbeat``).
    A Daphne that dies (SIGKILL, a lost machine) runs no ``disconnect``, so
    without this its customers would stay waiting, and be offered, for good.
    The grace runs from now, when the silence was noticed: a customer whose
    page comes back meanwhile keeps the place (the heartbeat or the socket's
    ``connect`` reconnects them).
    """
    now = now or timezone.now()
    silent_before = now - timedelta(seconds=settings.VISIT_HEARTBEAT_SILENCE_SECONDS)
    silent = QueueEntry.objects.filter(
        state__in=(EntryState.WAITING, EntryState.OFFERED), disconnected_at__isnull=True, last_seen_at__lt=silent_before
    )
    count = 0
    for entry_id in silent.values_list("pk", flat=True):
        with transaction.atomic():
            # Checked again under the lock: a heartbeat may have come in since.
            entry = silent.select_for_update(skip_locked=True, of=("self",)).filter(pk=entry_id).first()
            if entry is None:
                continue
            entry.disconnected_at = now
            entry.save(update_fields=["disconnected_at"])
            audit_record(
                actor=DISPATCHER,
                action=AuditAction.QUEUE_DISCONNECTED,
                target=entry,
                data={
                    "reason": "silent",
                    "last_seen_at": entry.last_seen_at.isoformat(),
                    "silent_seconds": round((now - entry.last_seen_at).total_seconds()),
                },
            )
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
    target must serve the business and have a skilled agent logged in, and is
    never the queue the entry overflowed from (no ping-pong between queues that
    are each other's targets).
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
            # Never back to the queue the customer overflowed from: two queues
            # that are each other's targets would otherwise pass them to and fro.
            target = next(
                (t for t in targets if t.pk != entry.overflowed_from_id and _can_take(t, entry.business_code)), None
            )
            if target is None:
                continue
            old_place = _place(entry)
            new_key = _key_for(
                target, enqueued_at=entry.enqueued_at, level=entry.level, business_code=entry.business_code
            )
            fsm_step(entry.move, target, new_key, True, _ticket_issue(), error=step_refused)
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
            _queue_moved(source_id=queue.pk, old_place=old_place, entry=entry)
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
        "silent": entries_silence_expire(now=now),
        "grace_expired": entries_grace_expire(now=now),
        "overflowed": sum(
            queue_overflow(queue_id=queue_id, now=now)
            for queue_id in ServiceQueue.objects.filter(
                Q(overflow_max_waiting__isnull=False) | Q(overflow_max_wait_seconds__isnull=False)
            ).values_list("pk", flat=True)
        ),
    }
    done["offers"] = dispatch_all(now=now)
    housekeeping_send(now=now)
    return done


def housekeeping_send(*, now: datetime) -> None:
    """Let every app's sweepers move on what is past its deadline (``apps.common.signals.housekeeping_due``).

    One app's failure must stop neither the other apps' sweepers nor the
    dispatcher loop: it is logged with its traceback. A lost database
    connection is raised again once every receiver has run, so that the loop
    reconnects (``run_dispatcher``).
    """
    lost: Exception | None = None
    for receiver, result in housekeeping_due.send_robust(sender=ServiceQueue, now=now):
        if isinstance(result, OperationalError | InterfaceError):
            lost = lost or result
        elif isinstance(result, Exception):
            logger.error("Housekeeping receiver %s failed", receiver, exc_info=result)
    if lost is not None:
        raise lost


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
