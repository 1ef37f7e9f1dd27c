"""What the queueing services share: the dispatcher actor, the error of an illegal step, events and keys."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import connection
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


def _entry_message(entry: QueueEntry, kind: str, **extra: Any) -> tuple[str, dict[str, Any]]:
    return events.visit_group(entry.visit_id), {"type": events.VISIT_UPDATE, "event": kind, "entry": entry.pk, **extra}


def _agent_message(presence: AgentPresence, kind: str, **extra: Any) -> tuple[str, dict[str, Any]]:
    return events.agent_group(presence.pk), {
        "type": events.AGENT_UPDATE,
        "event": kind,
        "state": presence.state,
        **extra,
    }


def _entry_event(entry: QueueEntry, kind: str, **extra: Any) -> None:
    events.broadcast_on_commit(*_entry_message(entry, kind, **extra))


def _agent_event(presence: AgentPresence, kind: str, **extra: Any) -> None:
    events.broadcast_on_commit(*_agent_message(presence, kind, **extra))


EntryKey = tuple[float, int]  # (priority_key, ticket): an entry's place, comparable on the customer's page


def _place(entry: QueueEntry) -> EntryKey:
    return (entry.priority_key, entry.ticket)


TICKET_SEQUENCE = "queueing_queueentry_ticket_seq"


def _ticket_issue() -> int:
    """The next ticket: a PostgreSQL sequence (no lock: it never waits on anyone; gaps are harmless).

    SQLite (a local run) serializes writers already (BEGIN IMMEDIATE), so the highest ticket + 1 is safe there.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT nextval(%s)", [TICKET_SEQUENCE])
        else:
            cursor.execute(f"SELECT coalesce(max(ticket), 0) + 1 FROM {QueueEntry._meta.db_table}")  # noqa: S608
        row = cursor.fetchone()
    return int(row[0]) if row else 1


def _queue_event(
    queue_id: int, *, removed: Iterable[EntryKey] = (), inserted: Iterable[EntryKey] = (), broadcast: bool = True
) -> dict[str, Any]:
    """Record one change of who waits in a queue and broadcast it, after commit, as ONE small message.

    The change bumps the queue's ``change_version`` in this transaction: the
    row lock is held until COMMIT, so a later change gets a higher version
    only after this one is visible, and versions are in commit order. The
    message carries the version, the places (key, ticket) that left or
    joined the waiting line, and the line's size after it; each
    customer's page (``static/queueing/position.js``) counts what changed
    ahead of its own place, in version order, and asks for a snapshot when a
    version is missing. Called late in the transaction (after the rows have
    changed) so that the lock is short. Returns the message; with
    ``broadcast=False`` the caller sends it with its own batch of events.

    The size is the queue's ``waiting_count``, moved here by what joined
    and left, under the same lock (issue 18: O(1) per change). Counting the
    line instead took p50 1.16 ms at 2,500 waiting and 3.13 ms at 10,000
    while holding the lock; the column, 0.34–0.38 ms at either (2026-12-04).
    Every change of who waits comes here (the pages' places depend on it
    as much as the count does: tests/queueing/test_position.py); a write
    that bypasses the services leaves both wrong until a snapshot.
    """
    removed_places = sorted(removed)
    inserted_places = sorted(inserted)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {ServiceQueue._meta.db_table}
            SET change_version = change_version + 1, waiting_count = waiting_count + %s WHERE id = %s
            RETURNING change_version, waiting_count
            """,  # noqa: S608 - table names are ours, values are parameters
            [len(inserted_places) - len(removed_places), queue_id],
        )
        row = cursor.fetchone()
    version, waiting = (int(row[0]), int(row[1])) if row else (0, 0)
    message: dict[str, Any] = {
        "type": "queue",
        "queue": queue_id,
        "version": version,
        "waiting": waiting,
        "removed": [list(place) for place in removed_places],
        "inserted": [list(place) for place in inserted_places],
    }
    if broadcast:
        events.broadcast_on_commit(events.queue_group(queue_id), events.queue_message(message))
    return message


def _queue_moved(*, source_id: int, old_place: EntryKey, entry: QueueEntry) -> None:
    """An entry moved from one queue to another: one change of each, bumped in queue-id order.

    Two moves in opposite directions lock the two queue rows in the same
    order, so they never wait on each other (deadlock).
    """
    changes: dict[int, tuple[list[EntryKey], list[EntryKey]]] = {
        source_id: ([old_place], []),
        entry.queue_id: ([], [_place(entry)]),
    }
    for queue_id in sorted(changes):
        removed, inserted = changes[queue_id]
        _queue_event(queue_id, removed=removed, inserted=inserted)


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
