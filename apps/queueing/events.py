"""Channel-layer group names and event types of queueing, in one place.

Fan-out (R2.4 at scale): a dequeue sends ONE message to the queue's group, not
one per waiting customer with a fresh position. Each customer's consumer keeps
its own entry's priority key and position and adjusts it from the event
("an entry ahead of you left": -1, "an entry was put ahead of you": +1), so
a dequeue costs O(waiting) deliveries and no database work per customer.
Consumers re-count from the database on ``queue.resync`` (sent periodically
by the dispatcher) so that any drift heals.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction


def queue_group(queue_id: int) -> str:
    return f"queue.{queue_id}"


def visit_group(visit_id: int) -> str:
    return f"visit.{visit_id}"


def agent_group(presence_id: int) -> str:
    return f"agent.{presence_id}"


FIGURES_GROUP = "queues.figures"

# Event "type" values; Channels maps "queue.changed" to a consumer's queue_changed().
QUEUE_CHANGED = "queue.changed"
QUEUE_RESYNC = "queue.resync"
VISIT_UPDATE = "visit.update"
AGENT_UPDATE = "agent.update"
FIGURES_UPDATE = "figures.update"


def broadcast_now(group: str, event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(group, event)


def broadcast_on_commit(group: str, event: dict[str, Any]) -> None:
    """Send after the surrounding transaction commits; a rollback sends nothing."""
    transaction.on_commit(lambda: broadcast_now(group, event))
