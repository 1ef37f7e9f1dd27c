"""Channel-layer group names and event types of queueing, in one place.

Fan-out (R2.4 at scale, issue 18): a change of who waits sends ONE message to
the queue's group, encoded once (``text``): the queue's change version and the
places that left and joined. Consumers forward it untouched and each
customer's page computes its own place (``static/queueing/position.js``),
applying versions in order and asking for a snapshot on a gap. The
dispatcher's periodic ``queue.resync`` is the same message with no changes and
the latest version, so a page that missed one notices. No database work and no
per-customer encoding per change.
"""

from __future__ import annotations

import asyncio
import json
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


def queue_message(message: dict[str, Any], *, event_type: str = QUEUE_CHANGED) -> dict[str, Any]:
    """A queue change (or resync) as a channel-layer event: the page's message, JSON-encoded once."""
    return {"type": event_type, "text": json.dumps(message, separators=(",", ":"))}


def broadcast_now(group: str, event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(group, event)


async def _send_all(messages: list[tuple[str, dict[str, Any]]]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        # Concurrently on one event loop: the layer pipelines them over its pooled connections.
        await asyncio.gather(*(layer.group_send(group, event) for group, event in messages))


def broadcast_many_now(messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Send a batch of events with ONE hop into async code (not one ``async_to_sync`` per event)."""
    if messages:
        async_to_sync(_send_all)(messages)


def broadcast_many_on_commit(messages: list[tuple[str, dict[str, Any]]]) -> None:
    """``broadcast_many_now`` once the surrounding transaction commits: the batched dispatcher's one sender."""
    transaction.on_commit(lambda: broadcast_many_now(messages))


def broadcast_on_commit(group: str, event: dict[str, Any]) -> None:
    """Send after the surrounding transaction commits; a rollback sends nothing."""
    transaction.on_commit(lambda: broadcast_now(group, event))
