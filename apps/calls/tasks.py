from __future__ import annotations

from celery import shared_task

from apps.calls.integrations.janus import JanusError
from apps.calls.services import call_feed_kick, call_room_close, call_room_open


@shared_task(acks_late=True, autoretry_for=(ConnectionError, TimeoutError), max_retries=3, retry_backoff=True)
def call_room_open_task(call_id: int) -> None:
    """Open the call's room; a Janus refusal ends the call (in the service), a network blip retries."""
    call_room_open(call_id=call_id)


@shared_task(
    acks_late=True, autoretry_for=(JanusError, ConnectionError, TimeoutError), max_retries=5, retry_backoff=True
)
def call_room_close_task(call_id: int) -> None:
    call_room_close(call_id=call_id)


@shared_task(
    acks_late=True, autoretry_for=(JanusError, ConnectionError, TimeoutError), max_retries=5, retry_backoff=True
)
def call_feed_kick_task(call_id: int, feed_id: int) -> None:
    """Kick a feed that may not publish (a listening supervisor's); retried while Janus is unreachable."""
    call_feed_kick(call_id=call_id, feed_id=feed_id)
