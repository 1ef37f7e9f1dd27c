"""WebSockets of the queue: the waiting customer's and the agent's live view.

Consumers authenticate in ``connect``, only forward channel-layer events, and
reach the database through services/selectors via ``database_sync_to_async``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from datetime import datetime
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from apps.queueing import events
from apps.queueing.fanout import queue_fan_out
from apps.queueing.models import QueueEntry, ServiceQueue
from apps.queueing.selectors import agent_snapshot, entry_place_snapshot, seconds_per_position
from apps.queueing.services.agents import agent_presence_ensure
from apps.queueing.services.entries import (
    queue_entries_disconnect,
    queue_entry_disconnect,
    queue_entry_heartbeat,
    queue_entry_reconnect,
)
from apps.staff.selectors import staff_profile_for

logger = logging.getLogger(__name__)

# WebSocket close codes (4000–4999 are the application's).
CLOSE_NO_VISIT = 4401
CLOSE_NOT_ALLOWED = 4403


HEARTBEAT = {"type": "heartbeat"}


RESYNC_REQUEST = {"type": "resync"}


def _is_resync_request(text_data: str) -> bool:
    """Exactly ``{"type": "resync"}``: the page found a gap in the queue's versions."""
    try:
        return json.loads(text_data) == RESYNC_REQUEST
    except ValueError:
        return False


# Estimated seconds per place (an average over the last 12 hours and a count
# of agents): shown as a hint, so recomputed at most this often per queue and
# process instead of on every connect and snapshot.
_ESTIMATE_SECONDS = 5.0
_estimates: dict[int, tuple[float, float]] = {}


def _seconds_each(queue_id: int) -> float:
    checked_at, value = _estimates.get(queue_id, (-_ESTIMATE_SECONDS, 0.0))
    if time.monotonic() - checked_at < _ESTIMATE_SECONDS:
        return value
    value = seconds_per_position(queue=ServiceQueue.objects.get(pk=queue_id))
    _estimates[queue_id] = (time.monotonic(), value)
    return value


def _is_heartbeat(text_data: str) -> bool:
    """Exactly ``{"type": "heartbeat"}``: nothing else a page sends is taken."""
    try:
        return json.loads(text_data) == HEARTBEAT
    except ValueError:
        return False


class _Disconnects:
    """The entries of the pages that closed, marked disconnected a batch at a time (one per event loop).

    The first page that closes is written at once; pages that close while a
    batch is being written wait for the next one, so sockets that close
    together (thousands, when a network cut or a balancer drops them) cost a
    few transactions instead of one each on the consumers' one database
    thread (``services.entries.queue_entries_disconnect``). Each consumer
    still waits for its own entry's commit.
    """

    MAX_BATCH = 500

    def __init__(self) -> None:
        self.pending: list[tuple[int, asyncio.Future[None]]] = []
        self.writer: asyncio.Task[None] | None = None

    async def mark(self, entry_id: int) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((entry_id, done))
        if self.writer is None or self.writer.done():
            self.writer = asyncio.create_task(self._write(), name="queue disconnects")
        await done

    async def _write(self) -> None:
        while self.pending:
            batch, self.pending = self.pending[: self.MAX_BATCH], self.pending[self.MAX_BATCH :]
            failure: Exception | None = None
            try:
                await database_sync_to_async(queue_entries_disconnect)(entry_ids=[entry for entry, _ in batch])
            except Exception as error:
                failure = error
            for _, done in batch:
                if done.done():  # that consumer was cancelled meanwhile
                    continue
                if failure is None:
                    done.set_result(None)
                else:
                    done.set_exception(failure)


_disconnects: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Disconnects] = weakref.WeakKeyDictionary()


def _entry_disconnects() -> _Disconnects:
    loop = asyncio.get_running_loop()
    found = _disconnects.get(loop)
    if found is None:
        found = _disconnects[loop] = _Disconnects()
    return found


class _ListenOnlyConsumer(AsyncJsonWebsocketConsumer):
    """A socket that only sends updates: whatever the client sends is answered, never trusted.

    Decoding is ours, so a frame that is not JSON (or binary) gets the same
    error reply instead of killing the consumer (which would skip
    ``disconnect`` and leave a gone customer looking connected).
    """

    refusal = "This socket only sends updates."
    # Channel-layer events whose handlers only pass the message on and touch
    # no database: they skip channels' trip to the sync thread (to close old
    # database connections) that AsyncConsumer.dispatch makes before every
    # handler (it was half of Daphne's CPU per queue update before the fan-out).
    forward_only: frozenset[str] = frozenset()

    async def dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") in self.forward_only:
            await getattr(self, get_handler_name(message))(message)
            return
        await super().dispatch(message)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        await self.send_json({"type": "error", "code": "not_accepted", "message": self.refusal})


class VisitConsumer(_ListenOnlyConsumer):
    """``/ws/visit/``: the waiting customer's place, estimated wait and offers.

    Positions are computed on the page (issue 18, O(1) fan-out): this socket
    sends a snapshot of the customer's place on connect, after a move or a
    declined offer and when the page asks (``{"type": "resync"}``, at most
    once per ``RESYNC_MIN_SECONDS``); each queue change, the one pre-encoded
    message the whole queue gets, is written to it by the process's fan-out
    (``fanout.py``; counted on the page, ``static/queueing/position.js``).

    The page may also send ``{"type": "heartbeat"}``, every
    ``VISIT_HEARTBEAT_SECONDS``; anything else is refused. Heartbeats are not
    answered, and reach the database at most once per interval (checked here
    in memory first, then by the service's conditional UPDATE).
    """

    entry_id: int
    queue_id: int
    visit_id: int
    # time.monotonic() of the last heartbeat passed on to the service, and of the last snapshot asked for.
    heard_at: float = 0.0
    resynced_at: float = 0.0
    RESYNC_MIN_SECONDS = 1.0

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        if text_data is not None and hasattr(self, "entry_id") and _is_resync_request(text_data):
            monotonic_now = time.monotonic()
            if monotonic_now - self.resynced_at >= self.RESYNC_MIN_SECONDS:
                self.resynced_at = monotonic_now
                await self._recount()
            return
        if text_data is None or not hasattr(self, "entry_id") or not _is_heartbeat(text_data):
            await super().receive(text_data=text_data, bytes_data=bytes_data, **kwargs)
            return
        monotonic_now = time.monotonic()
        if monotonic_now - self.heard_at < settings.VISIT_HEARTBEAT_SECONDS:
            return
        self.heard_at = monotonic_now
        await database_sync_to_async(queue_entry_heartbeat)(entry_id=self.entry_id)

    async def connect(self) -> None:
        # The session's visit, put on the scope by apps.visits.authentication.VisitSessionMiddleware.
        visit_id = self.scope.get("visit_id")
        # One database trip before the handshake is answered, one after.
        entry = await database_sync_to_async(self._open)(visit_id)
        if entry is None:
            await self.close(code=CLOSE_NO_VISIT)
            return
        self.visit_id = visit_id
        self.entry_id = entry.pk
        self.heard_at = time.monotonic()
        await self.accept()
        await self.channel_layer.group_add(events.visit_group(visit_id), self.channel_name)
        await self._follow_queue(entry.queue_id)

    @staticmethod
    def _open(visit_id: int | None) -> QueueEntry | None:
        """The visit's latest entry, back from a disconnection if it was marked so, and heard from now."""
        if not visit_id:
            return None
        entry = QueueEntry.objects.filter(visit_id=visit_id).order_by("-pk").first()
        if entry is None:
            return None
        if entry.disconnected_at is not None:
            queue_entry_reconnect(entry_id=entry.pk)  # locks and checks again
        # Connecting is hearing from the customer too (a reload after a
        # silence); a sweep that marked it disconnected since the read above
        # is undone here (the heartbeat reconnects).
        queue_entry_heartbeat(entry_id=entry.pk)
        return entry

    async def _follow_queue(self, queue_id: int) -> None:
        fan_out = queue_fan_out()
        if getattr(self, "queue_id", None) not in (None, queue_id):
            fan_out.unfollow(self.queue_id, self)
        self.queue_id = queue_id
        # Follow first, then read: a change committed in between has a higher
        # version than the snapshot and is applied on the page; one before it is ignored there.
        await fan_out.follow(queue_id, self)
        await self._recount()

    def _snapshot(self) -> dict[str, Any] | None:
        snapshot = entry_place_snapshot(entry_id=self.entry_id)
        if snapshot is None:
            return None
        seconds_each = _seconds_each(snapshot["queue"])
        return snapshot | {
            "estimated_wait_seconds": round(snapshot["position"] * seconds_each),
            "seconds_each": seconds_each,
        }

    async def _recount(self) -> None:
        snapshot = await database_sync_to_async(self._snapshot)()
        if snapshot is not None:
            await self.send_json(snapshot)

    async def disconnect(self, code: int) -> None:
        if not hasattr(self, "entry_id"):
            return
        # The entry first: if the channel layer fails below, the customer must
        # still be known as gone (grace period, not offered meanwhile).
        if hasattr(self, "queue_id"):  # unset when the socket failed before following its queue
            queue_fan_out().unfollow(self.queue_id, self)
        try:
            await _entry_disconnects().mark(self.entry_id)
        except Exception:
            # The batch failed as a whole (a deadlock, a lost connection): this entry on its own.
            logger.warning(
                "Marking a batch of entries disconnected failed; marking %s alone", self.entry_id, exc_info=True
            )
            await database_sync_to_async(queue_entry_disconnect)(entry_id=self.entry_id)
        try:
            await self.channel_layer.group_discard(events.visit_group(self.visit_id), self.channel_name)
        except Exception:
            logger.warning("Could not leave the visit's group on disconnect", exc_info=True)

    # Channel-layer events.

    async def visit_update(self, event: dict[str, Any]) -> None:
        if event.get("event") == "moved":
            await self._follow_queue(int(event["queue"]))
            return
        if event.get("event") == "back_in_queue":
            await self._recount()
            return
        message = {"type": "visit", "event": event.get("event"), "agent": event.get("agent")}
        if isinstance(event.get("gate"), str):
            # Which gate moved: the page asks for Gate 4's questions on that gate's events only.
            message["gate"] = event["gate"]
        await self.send_json(message)


class AgentConsumer(_ListenOnlyConsumer):
    """``/ws/agent/``: everything the agent's page shows, pushed; the page never polls.

    The first message is a full snapshot (``selectors.agent_snapshot``): state,
    the entry ringing or in the call, the call (added by the console) and the
    queue figures, so a reload shows exactly what the server holds. Each
    agent event is forwarded (the page's notices) and followed by a fresh
    snapshot, except the service panel's events (a gate's or the business's
    progress: ``PANEL_EVENTS``), which change nothing a snapshot holds; the
    page asks for the panel itself. Figures also come every 2 s from the dispatcher.

    The dispatcher ends wrap-ups and takes unanswered offers back from its
    own process; with the embedded default's in-memory channel layer its
    events never reach this one. So a snapshot with a deadline (wrap-up end,
    offer expiry) is taken again, here, just after it (then every few seconds
    while the dispatcher has not acted, for at most ``DEADLINE_FOLLOW_SECONDS``).
    """

    presence_id: int
    last_snapshot: dict[str, Any] | None = None
    deadline_check: asyncio.Task[None] | None = None
    # The queue figures every 2 s to every agent; agent events re-read the desk, so they are not here.
    forward_only = frozenset({events.FIGURES_UPDATE})
    # The call's service panel: about nine per service, and a snapshot costs a desk read each.
    PANEL_EVENTS = frozenset({"call_gates", "call_operation", "call_liveness"})

    # After a deadline, how soon to look, how often to look again, and for how long.
    DEADLINE_MARGIN_SECONDS = 0.5
    DEADLINE_RECHECK_SECONDS = 2.0
    DEADLINE_FOLLOW_SECONDS = 30.0

    async def connect(self) -> None:
        user = self.scope.get("user")
        allowed = bool(user and user.is_authenticated and user.is_staff) and await database_sync_to_async(
            user.has_perm
        )("queueing.serve_customers")
        if not allowed:
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        presence_id = await database_sync_to_async(self._presence_for)(user)
        if presence_id is None:
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        self.presence_id = presence_id
        await self.accept()
        # Join first, then read: an event committed in between is followed by
        # a snapshot of its own, so nothing falls between the two.
        await self.channel_layer.group_add(events.agent_group(presence_id), self.channel_name)
        await self.channel_layer.group_add(events.FIGURES_GROUP, self.channel_name)
        await self._push_snapshot()

    @staticmethod
    def _presence_for(user: Any) -> int | None:
        """The id of the agent's presence (created, audited, on their first connection); None if not staff."""
        staff = staff_profile_for(user)
        if staff is None:
            return None
        return agent_presence_ensure(staff=staff, actor=user).pk

    refusal = "Use the HTTP API to act."

    async def disconnect(self, code: int) -> None:
        if self.deadline_check is not None:
            self.deadline_check.cancel()
        if hasattr(self, "presence_id"):
            await self.channel_layer.group_discard(events.agent_group(self.presence_id), self.channel_name)
            await self.channel_layer.group_discard(events.FIGURES_GROUP, self.channel_name)

    async def _push_snapshot(self, *, only_if_changed: bool = False) -> dict[str, Any]:
        snapshot = await database_sync_to_async(agent_snapshot)(presence_id=self.presence_id)
        if not (only_if_changed and _desk(snapshot) == _desk(self.last_snapshot)):
            await self.send_json(snapshot)
        self.last_snapshot = snapshot
        self._follow_deadline(snapshot)
        return snapshot

    def _follow_deadline(self, snapshot: dict[str, Any]) -> None:
        checking = self.deadline_check
        if checking is not None and checking is not asyncio.current_task():
            checking.cancel()
        self.deadline_check = None
        entry = snapshot.get("entry") or {}
        deadline = snapshot.get("wrap_up_until") or (
            entry.get("expires_at") if entry.get("state") == "offered" else None
        )
        if deadline is not None:
            self.deadline_check = asyncio.create_task(self._check_after(datetime.fromisoformat(deadline)))

    async def _check_after(self, deadline: datetime) -> None:
        wait = (deadline - timezone.now()).total_seconds() + self.DEADLINE_MARGIN_SECONDS
        if wait < -self.DEADLINE_FOLLOW_SECONDS:
            return  # the dispatcher is not running; the snapshot already says so
        # Past the deadline already (the dispatcher has not acted yet): look again a little later.
        await asyncio.sleep(wait if wait > 0 else self.DEADLINE_RECHECK_SECONDS)
        try:
            await self._push_snapshot(only_if_changed=True)
        except Exception:
            logger.warning("Could not re-read the agent's desk after a deadline", exc_info=True)

    async def agent_update(self, event: dict[str, Any]) -> None:
        await self.send_json({key: value for key, value in event.items() if key != "type"} | {"type": "agent"})
        if event.get("event") not in self.PANEL_EVENTS:
            await self._push_snapshot()

    async def figures_update(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "figures", "queues": event["queues"]})


def _desk(snapshot: dict[str, Any] | None) -> dict[str, Any] | None:
    """A snapshot without its figures (which change every second): what a deadline check compares."""
    return None if snapshot is None else {key: value for key, value in snapshot.items() if key != "queues"}
