"""What the queueing services share: the dispatcher actor, the error of an illegal step, events and keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Min
from django.utils.translation import gettext_lazy as _

from apps.audit.services import Actor
from apps.common.errors import ApplicationError, NotAllowed, NotFound
from apps.common.transactions import enqueue_on_commit
from apps.queueing import events
from apps.queueing.models import (
    AgentPresence,
    EntryState,
    QueueEntry,
    ServiceQueue,
)

DISPATCHER = Actor.system("dispatcher")


def step_refused(instance: Any) -> ApplicationError:
    """The queueing answer to an illegal FSM step (``fsm_step(..., error=step_refused)``): 409 naming the state."""
    return NotAllowed(
        _("This action is not possible in the current state."), code="out_of_order", extra={"state": instance.state}
    )


def entry_not_found() -> ApplicationError:
    """``lock_object(QueueEntry.objects, not_found=entry_not_found, ...)``: the entry id names no entry."""
    return NotFound(_("This queue entry does not exist."), code="entry_not_found")


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

    enqueue_on_commit(dispatch_queue_task, queue_id)


def _front_key(queue_id: int, fallback: float) -> float:
    """A key ahead of every entry waiting in the queue (R2.4: back to the FRONT)."""
    lowest = QueueEntry.objects.filter(queue_id=queue_id, state=EntryState.WAITING).aggregate(low=Min("priority_key"))[
        "low"
    ]
    return min(fallback, lowest - 1.0) if lowest is not None else fallback


def _key_for(queue: ServiceQueue, *, enqueued_at: datetime, level: str, business_code: str) -> float:
    return enqueued_at.timestamp() - queue.bonus_seconds(level=level, business_code=business_code)
