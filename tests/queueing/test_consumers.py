"""The queue's WebSockets, end to end through the ASGI application (R2.4, R2.6).

Transactional tests: services commit for real, so their after-commit
broadcasts reach the sockets, and the dispatch they schedule runs at once
(eager Celery under the test settings). A test that must choose the moment of
an offer pauses the queue while it makes agents available, then unpauses it
and calls ``dispatch_queue`` itself. Every database call goes through
``database_sync_to_async``, as the consumers' own do. The same tests run on
the in-memory channel layer and, under CI, on Redis.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any
from unittest.mock import ANY

import pytest
from channels.db import database_sync_to_async
from channels.layers import BaseChannelLayer, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django.db import connections
from django.test import Client
from django.utils import timezone

from apps.audit.actions import AuditAction
from apps.audit.models import AuditRecord
from apps.customers.models import CustomerLevel
from apps.queueing import consumers, events
from apps.queueing.consumers import CLOSE_NO_VISIT, CLOSE_NOT_ALLOWED
from apps.queueing.models import AgentPresence, AgentState, EntryState, QueueEntry, ServiceQueue
from apps.queueing.position import Tracker, position_step, position_view
from apps.queueing.selectors import DEFAULT_HANDLE_SECONDS
from apps.queueing.services.agents import agent_service_end, agent_state_set
from apps.queueing.services.configuration import service_queue_upsert
from apps.queueing.services.housekeeping import wrap_ups_finish
from apps.queueing.services.offers import dispatch_queue, offer_accept
from apps.queueing.signals import queue_entry_connected
from apps.staff.models import StaffProfile
from apps.staff.roles import Role
from apps.verification.models import VerificationState
from apps.visits.authentication import SESSION_KEY
from remotebank.asgi import application
from tests.conftest import SYSTEM
from tests.factories import visit_with_gate1

pytestmark = pytest.mark.django_db(transaction=True)

# Long enough for a loaded machine; the one promise about speed has its own, shorter wait.
WAIT = 5
# How long "nothing else arrives" is watched for (Redis delivers a little later than memory).
QUIET = 0.5

# Services and queries run in Channels' database thread, as the consumers' own do.
db = database_sync_to_async


@pytest.fixture(autouse=True)
async def channel_layer(settings: Any) -> AsyncIterator[BaseChannelLayer]:
    """A channel layer of this test's own.

    The in-memory layer's queues belong to one event loop, and each test has
    its own loop. On Redis, a prefix of its own keeps the events of other test
    runs sharing the server out of this test's groups.
    """
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    if "prefix" in layers["default"].get("CONFIG", {}):
        layers["default"]["CONFIG"]["prefix"] = f"remotebank-test-{uuid.uuid4().hex[:12]}"
    settings.CHANNEL_LAYERS = layers  # Channels drops its cached layers on this change.
    layer = get_channel_layer()
    assert layer is not None
    yield layer
    await layer.flush()
    # The consumers' database thread keeps a connection; let the flush after the test run alone.
    await database_sync_to_async(connections.close_all)()


class Sockets:
    """Opens sockets on the ASGI application and closes those still open at the end of the test."""

    def __init__(self) -> None:
        self.open: list[WebsocketCommunicator] = []

    async def connect(self, path: str, *, cookie: str | None = None) -> tuple[WebsocketCommunicator, bool, Any]:
        headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
        if cookie is not None:
            headers.append((b"cookie", cookie.encode()))
        socket = WebsocketCommunicator(application, path, headers=headers)
        connected, detail = await socket.connect(timeout=WAIT)
        if connected:
            self.open.append(socket)
        else:
            # A consumer that closed in connect() still listens on the channel
            # layer until the browser's side goes too. It has nothing to clean
            # up, so the wait is short: channels_redis can take its blocking
            # pop's full timeout to stop a receive that had only just begun.
            await socket.disconnect(timeout=QUIET)
        return socket, connected, detail

    async def close(self, socket: WebsocketCommunicator, *, timeout: float = WAIT) -> None:
        self.open.remove(socket)
        await socket.disconnect(timeout=timeout)


@pytest.fixture
async def sockets() -> AsyncIterator[Sockets]:
    opened = Sockets()
    yield opened
    for socket in list(opened.open):
        if not socket.future.done():  # a consumer that crashed has nothing left to close
            await opened.close(socket, timeout=1)


# --- Helpers --------------------------------------------------------------------------


class _Page:
    """The customer's page's position algorithm (apps/queueing/position.py, the mirror of position.js)."""

    def __init__(self) -> None:
        self.tracker = Tracker()

    def read(self, message: dict[str, Any]) -> dict[str, Any]:
        return position_view(position_step(self.tracker, message))


def _visit_cookie(visit_id: int | None) -> str:
    """The customer's browser session, as the Gate 1 API leaves it."""
    session = SessionStore()
    if visit_id is not None:
        session[SESSION_KEY] = visit_id
    session.create()
    return f"{django_settings.SESSION_COOKIE_NAME}={session.session_key}"


def _staff_cookie(user: User) -> str:
    client = Client()
    client.force_login(user, backend="apps.staff.authentication.StaffModelBackend")
    return f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}"


def _queue(*, paused: bool = False) -> ServiceQueue:
    return service_queue_upsert(actor=SYSTEM, code="activation", name="激活", businesses=["activation"], paused=paused)


def _entry(entry_id: int) -> QueueEntry:
    return QueueEntry.objects.get(pk=entry_id)


def _audit_count() -> int:
    return AuditRecord.objects.count()


def _audit_total(action: AuditAction, entry_id: int) -> int:
    return AuditRecord.objects.filter(action=action, target_type="queueing.queueentry", target_id=str(entry_id)).count()


def _audited(action: AuditAction, entry_id: int) -> bool:
    return AuditRecord.objects.filter(
        action=action, target_type="queueing.queueentry", target_id=str(entry_id)
    ).exists()


async def _agent_ready_behind_paused_queue(make_skilled_staff: Callable[..., StaffProfile]) -> StaffProfile:
    """An available agent, while the queue is paused so that nobody is offered yet."""
    await db(_queue)(paused=True)
    staff = await db(make_skilled_staff)()
    await db(agent_state_set)(actor=SYSTEM, staff=staff, state=AgentState.AVAILABLE)
    return staff


# --- The waiting customer's socket ------------------------------------------------------


async def test_waiting_customer_sees_their_position_and_estimated_wait(
    sockets: Sockets, make_queued_customer: Callable[..., QueueEntry]
) -> None:
    await db(_queue)()
    for _ahead in range(2):
        await db(make_queued_customer)()
    mine = await db(make_queued_customer)()

    socket, connected, _ = await sockets.connect("/ws/visit/", cookie=await db(_visit_cookie)(mine.visit_id))

    assert connected
    # Nobody has been served today and no agent is logged in: the default
    # handling time per customer ahead, shared by one (notional) agent.
    mine = await db(_entry)(mine.pk)
    queue = await db(_queue)()
    assert await socket.receive_json_from(timeout=WAIT) == {
        "type": "position",
        "state": "waiting",
        "queue": queue.pk,
        "version": queue.change_version,
        "key": mine.priority_key,
        "ticket": mine.ticket,
        "position": 3,
        "waiting": 3,
        "estimated_wait_seconds": 3 * DEFAULT_HANDLE_SECONDS,
        "seconds_each": DEFAULT_HANDLE_SECONDS,
    }
    assert await socket.receive_nothing(timeout=QUIET)


async def test_position_drops_within_a_second_when_a_customer_ahead_is_offered(
    sockets: Sockets,
    make_queued_customer: Callable[..., QueueEntry],
    make_skilled_staff: Callable[..., StaffProfile],
) -> None:
    await _agent_ready_behind_paused_queue(make_skilled_staff)
    first = await db(make_queued_customer)()
    await db(make_queued_customer)()
    mine = await db(make_queued_customer)()
    socket, _, _ = await sockets.connect("/ws/visit/", cookie=await db(_visit_cookie)(mine.visit_id))
    page = _Page()
    assert page.read(await socket.receive_json_from(timeout=WAIT))["position"] == 3

    queue = await db(_queue)(paused=False)
    offer = await db(dispatch_queue)(queue_id=queue.pk)

    assert offer is not None and offer.entry_id == first.pk
    # One message for the whole queue; the page counts the place that left ahead of it.
    message = await socket.receive_json_from(timeout=1)
    assert (message["type"], message["removed"], message["inserted"]) == (
        "queue",
        [[first.priority_key, first.ticket]],
        [],
    )
    # One agent logged in: the default handling time per customer ahead.
    assert page.read(message) == {
        "position": 2,
        "estimatedWaitSeconds": 2 * DEFAULT_HANDLE_SECONDS,
        "known": True,
        "waiting": 2,
    }
    assert await socket.receive_nothing(timeout=QUIET)


async def test_higher_level_newcomer_goes_ahead_and_pushes_the_position_back_by_one(
    sockets: Sockets, make_queued_customer: Callable[..., QueueEntry]
) -> None:
    await db(_queue)()
    await db(make_queued_customer)()
    mine = await db(make_queued_customer)()
    socket, _, _ = await sockets.connect("/ws/visit/", cookie=await db(_visit_cookie)(mine.visit_id))
    page = _Page()
    assert page.read(await socket.receive_json_from(timeout=WAIT))["position"] == 2

    await db(make_queued_customer)(level=CustomerLevel.ORDINARY)  # behind: the place stays
    assert page.read(await socket.receive_json_from(timeout=WAIT))["position"] == 2
    await db(make_queued_customer)(level=CustomerLevel.PRIVATE)

    assert page.read(await socket.receive_json_from(timeout=WAIT))["position"] == 3
    assert await socket.receive_nothing(timeout=QUIET)


async def test_a_page_that_missed_a_change_asks_for_a_snapshot_and_gets_its_real_place(
    sockets: Sockets, make_queued_customer: Callable[..., QueueEntry]
) -> None:
    await db(_queue)()
    await db(make_queued_customer)()
    mine = await db(make_queued_customer)()
    socket, _, _ = await sockets.connect("/ws/visit/", cookie=await db(_visit_cookie)(mine.visit_id))
    page = _Page()
    assert page.read(await socket.receive_json_from(timeout=WAIT))["position"] == 2

    await db(make_queued_customer)(level=CustomerLevel.PRIVATE)
    await socket.receive_json_from(timeout=WAIT)  # lost on the way: the page never sees it
    await db(make_queued_customer)(level=CustomerLevel.PRIVATE)
    view = page.read(await socket.receive_json_from(timeout=WAIT))
    assert view["known"] is False  # a version is missing: no guess shown as known

    await socket.send_json_to({"type": "resync"})
    assert page.read(await socket.receive_json_from(timeout=WAIT)) == {
        "position": 4,
        "estimatedWaitSeconds": 4 * DEFAULT_HANDLE_SECONDS,
        "known": True,
        "waiting": 4,
    }


async def test_customer_hears_of_their_own_offer_and_then_of_the_connection(
    sockets: Sockets,
    make_queued_customer: Callable[..., QueueEntry],
    make_skilled_staff: Callable[..., StaffProfile],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What higher apps do with an answer (apps.calls opens a Janus room) is
    # tested there; here only the queue's own word to the customer counts.
    monkeypatch.setattr(queue_entry_connected, "send", lambda *args, **kwargs: [])
    staff = await _agent_ready_behind_paused_queue(make_skilled_staff)
    mine = await db(make_queued_customer)()
    socket, _, _ = await sockets.connect("/ws/visit/", cookie=await db(_visit_cookie)(mine.visit_id))
    assert (await socket.receive_json_from(timeout=WAIT))["position"] == 1

    queue = await db(_queue)(paused=False)
    await db(dispatch_queue)(queue_id=queue.pk)
    # The queue's change (its own place left the line) and the word to this customer, in either order.
    heard = [await socket.receive_json_from(timeout=WAIT) for _ in range(2)]
    assert {"type": "visit", "event": "offered", "agent": None} in heard
    assert [m["removed"] for m in heard if m["type"] == "queue"] == [[[mine.priority_key, mine.ticket]]]

    await db(offer_accept)(actor=staff.user, staff=staff, entry_id=mine.pk)
    assert await socket.receive_json_from(timeout=WAIT) == {
        "type": "visit",
        "event": "connected",
        "agent": staff.display_name,
    }
    assert await socket.receive_nothing(timeout=QUIET)


async def test_closing_the_page_marks_the_entry_disconnected_and_coming_back_clears_it(
    sockets: Sockets, make_queued_customer: Callable[..., QueueEntry]
) -> None:
    await db(_queue)()
    mine = await db(make_queued_customer)()
    cookie = await db(_visit_cookie)(mine.visit_id)
    socket, _, _ = await sockets.connect("/ws/visit/", cookie=cookie)
    await socket.receive_json_from(timeout=WAIT)

    await sockets.close(socket)

    entry = await db(_entry)(mine.pk)
    assert entry.disconnected_at is not None
    assert entry.state == EntryState.WAITING
    assert await db(_audited)(AuditAction.QUEUE_DISCONNECTED, mine.pk)

    # Back within the grace period: same place, no longer marked.
    socket, connected, _ = await sockets.connect("/ws/visit/", cookie=cookie)
    assert connected
    assert (await socket.receive_json_from(timeout=WAIT))["position"] == 1
    entry = await db(_entry)(mine.pk)
    assert entry.disconnected_at is None
    assert entry.state == EntryState.WAITING
    assert await db(_audited)(AuditAction.QUEUE_RECONNECTED, mine.pk)


async def test_pages_that_close_together_are_all_marked_disconnected_in_fewer_transactions(
    sockets: Sockets, make_queued_customer: Callable[..., QueueEntry], monkeypatch: pytest.MonkeyPatch
) -> None:
    await db(_queue)()
    mine = [await db(make_queued_customer)() for _ in range(8)]
    pages = []
    for entry in mine:
        socket, connected, _ = await sockets.connect("/ws/visit/", cookie=await db(_visit_cookie)(entry.visit_id))
        assert connected
        await socket.receive_json_from(timeout=WAIT)
        pages.append(socket)
    batches: list[list[int]] = []
    real = consumers.queue_entries_disconnect

    def recorded(*, entry_ids: list[int]) -> list[int]:
        batches.append(list(entry_ids))
        return real(entry_ids=entry_ids)

    monkeypatch.setattr(consumers, "queue_entries_disconnect", recorded)

    await asyncio.gather(*(sockets.close(socket) for socket in pages))

    for entry in mine:
        stored = await db(_entry)(entry.pk)
        assert stored.disconnected_at is not None
        assert stored.state == EntryState.WAITING
        assert await db(_audit_total)(AuditAction.QUEUE_DISCONNECTED, entry.pk) == 1
    assert sorted(pk for batch in batches for pk in batch) == sorted(entry.pk for entry in mine)
    # The first is written alone; those that closed meanwhile go together.
    assert len(batches) < len(mine)


async def test_socket_without_a_queued_visit_in_its_session_is_closed_with_4401(
    sockets: Sockets, make_customer: Callable[..., Any]
) -> None:
    await db(_queue)()

    def visit_not_yet_queued() -> int:
        customer = make_customer()
        return visit_with_gate1(
            business_code="activation", mobile=customer.mobile, customer=customer, state=VerificationState.QUEUE_READY
        ).pk

    cookies = [
        None,  # no session at all
        await db(_visit_cookie)(None),  # a session, but Gate 1 never started
        await db(_visit_cookie)(await db(visit_not_yet_queued)()),
    ]
    for cookie in cookies:
        _socket, connected, code = await sockets.connect("/ws/visit/", cookie=cookie)
        assert (connected, code) == (False, CLOSE_NO_VISIT), cookie


async def test_customer_cannot_forge_messages_over_the_socket(
    sockets: Sockets, make_queued_customer: Callable[..., QueueEntry]
) -> None:
    await db(_queue)()
    await db(make_queued_customer)()
    mine = await db(make_queued_customer)()
    socket, _, _ = await sockets.connect("/ws/visit/", cookie=await db(_visit_cookie)(mine.visit_id))
    assert (await socket.receive_json_from(timeout=WAIT))["position"] == 2
    before, audit_before = await db(_entry)(mine.pk), await db(_audit_count)()

    for forged in (
        {"type": "position", "position": 1},
        {"type": "visit.update", "event": "connected"},
        {"type": "queue.changed", "removed_key": -1e12},
        {"action": "leave"},
    ):
        await socket.send_json_to(forged)
        reply = await socket.receive_json_from(timeout=WAIT)
        assert (reply["type"], reply["code"]) == ("error", "not_accepted"), forged

    assert await socket.receive_nothing(timeout=QUIET)
    after = await db(_entry)(mine.pk)
    assert (after.state, after.priority_key, after.disconnected_at) == (before.state, before.priority_key, None)
    assert await db(_audit_count)() == audit_before


async def test_heartbeat_is_taken_silently_and_records_when_the_customer_was_last_heard(
    sockets: Sockets, make_queued_customer: Callable[..., QueueEntry], settings: Any
) -> None:
    settings.VISIT_HEARTBEAT_SECONDS = 1
    await db(_queue)()
    mine = await db(make_queued_customer)()
    socket, _, _ = await sockets.connect("/ws/visit/", cookie=await db(_visit_cookie)(mine.visit_id))
    await socket.receive_json_from(timeout=WAIT)
    await asyncio.sleep(1.1)  # connecting counted as hearing from the page; one interval later
    # As if the page had last been heard from long ago.
    long_ago = timezone.now() - timedelta(hours=1)
    await db(QueueEntry.objects.filter(pk=mine.pk).update)(last_seen_at=long_ago)
    audit_before = await db(_audit_count)()

    await socket.send_json_to({"type": "heartbeat"})

    assert await socket.receive_nothing(timeout=QUIET)  # no answer: a heartbeat costs one frame
    heard = (await db(_entry)(mine.pk)).last_seen_at
    assert heard is not None and heard > long_ago + timedelta(minutes=59)
    # A second heartbeat right after writes nothing.
    await socket.send_json_to({"type": "heartbeat"})
    assert await socket.receive_nothing(timeout=QUIET)
    assert (await db(_entry)(mine.pk)).last_seen_at == heard
    assert await db(_audit_count)() == audit_before  # not a state change: not audited


async def test_heartbeat_with_anything_else_in_it_is_refused(
    sockets: Sockets, make_queued_customer: Callable[..., QueueEntry]
) -> None:
    await db(_queue)()
    mine = await db(make_queued_customer)()
    socket, _, _ = await sockets.connect("/ws/visit/", cookie=await db(_visit_cookie)(mine.visit_id))
    await socket.receive_json_from(timeout=WAIT)
    long_ago = timezone.now() - timedelta(hours=1)
    await db(QueueEntry.objects.filter(pk=mine.pk).update)(last_seen_at=long_ago)

    for forged in ({"type": "heartbeat", "position": 1}, {"type": "Heartbeat"}, ["heartbeat"], "heartbeat"):
        await socket.send_json_to(forged)
        reply = await socket.receive_json_from(timeout=WAIT)
        assert (reply["type"], reply["code"]) == ("error", "not_accepted"), forged

    assert (await db(_entry)(mine.pk)).last_seen_at == long_ago


async def test_frame_that_is_not_json_is_answered_with_an_error_not_a_crash(
    sockets: Sockets, make_queued_customer: Callable[..., QueueEntry]
) -> None:
    await db(_queue)()
    mine = await db(make_queued_customer)()
    socket, _, _ = await sockets.connect("/ws/visit/", cookie=await db(_visit_cookie)(mine.visit_id))
    await socket.receive_json_from(timeout=WAIT)

    for frame in ({"text_data": "{not json"}, {"bytes_data": b"\x00\x01"}):
        await socket.send_to(**frame)
        reply = await socket.receive_json_from(timeout=1)
        assert (reply["type"], reply["code"]) == ("error", "not_accepted"), frame

    assert (await db(_entry)(mine.pk)).state == EntryState.WAITING


# --- The agent's socket -------------------------------------------------------------------


async def test_staff_who_may_not_serve_customers_is_refused_with_4403(
    sockets: Sockets, compliance_officer: User, supervisor: User
) -> None:
    for user in (compliance_officer, supervisor):
        _socket, connected, code = await sockets.connect("/ws/agent/", cookie=await db(_staff_cookie)(user))
        assert (connected, code) == (False, CLOSE_NOT_ALLOWED), user.username
    # Nobody logged in at all.
    _socket, connected, code = await sockets.connect("/ws/agent/")
    assert (connected, code) == (False, CLOSE_NOT_ALLOWED)


def _presence_audit(staff: StaffProfile) -> list[tuple[str, str, str, dict[str, Any]]]:
    presence = AgentPresence.objects.get(staff=staff)
    return [
        (record.action, record.actor_label, presence.state, record.data)
        for record in AuditRecord.objects.filter(target_type="queueing.agentpresence", target_id=str(presence.pk))
    ]


async def test_an_agents_first_connection_creates_their_presence_offline_and_audits_it_once(
    sockets: Sockets, make_skilled_staff: Callable[..., StaffProfile]
) -> None:
    staff = await db(make_skilled_staff)()
    cookie = await db(_staff_cookie)(staff.user)
    _first, connected, _ = await sockets.connect("/ws/agent/", cookie=cookie)
    # A second tab (or a reconnection) finds the same presence.
    _second, connected_again, _ = await sockets.connect("/ws/agent/", cookie=cookie)
    assert connected and connected_again

    assert await db(_presence_audit)(staff) == [
        (AuditAction.AGENT_PRESENCE_CREATED, staff.user.username, AgentState.OFFLINE, {"agent": staff.employee_number})
    ]


async def test_agent_is_rung_when_a_customer_is_dispatched_to_them(
    sockets: Sockets,
    make_queued_customer: Callable[..., QueueEntry],
    make_skilled_staff: Callable[..., StaffProfile],
) -> None:
    await db(_queue)()
    staff = await db(make_skilled_staff)()
    socket, connected, _ = await sockets.connect("/ws/agent/", cookie=await db(_staff_cookie)(staff.user))
    assert connected
    assert (await socket.receive_json_from(timeout=WAIT))["type"] == "snapshot"

    await db(agent_state_set)(actor=SYSTEM, staff=staff, state=AgentState.AVAILABLE)
    assert await socket.receive_json_from(timeout=WAIT) == {"type": "agent", "event": "state", "state": "available"}
    assert (await socket.receive_json_from(timeout=WAIT))["state"] == "available"  # the snapshot that follows
    # Joining the queue schedules a dispatch after commit, which rings the only agent.
    entry = await db(make_queued_customer)()

    message = await socket.receive_json_from(timeout=WAIT)
    assert {key: message[key] for key in ("type", "event", "state", "entry", "business")} == {
        "type": "agent",
        "event": "offer",
        "state": "offered",
        "entry": entry.pk,
        "business": "activation",
    }
    assert message["expires_at"]
    assert (await db(_entry)(entry.pk)).state == EntryState.OFFERED


async def test_agent_cannot_answer_an_offer_over_the_socket(
    sockets: Sockets,
    make_queued_customer: Callable[..., QueueEntry],
    make_skilled_staff: Callable[..., StaffProfile],
) -> None:
    staff = await db(make_skilled_staff)(role=Role.EXPERT)  # experts take customers too (R2.2)
    await db(_queue)()
    await db(agent_state_set)(actor=SYSTEM, staff=staff, state=AgentState.AVAILABLE)
    entry = await db(make_queued_customer)()
    assert (await db(_entry)(entry.pk)).state == EntryState.OFFERED
    socket, _, _ = await sockets.connect("/ws/agent/", cookie=await db(_staff_cookie)(staff.user))
    assert (await socket.receive_json_from(timeout=WAIT))["type"] == "snapshot"
    audit_before = await db(_audit_count)()

    for forged in ({"action": "accept", "entry": entry.pk}, {"type": "agent.update", "event": "connected"}):
        await socket.send_json_to(forged)
        reply = await socket.receive_json_from(timeout=WAIT)
        assert (reply["type"], reply["code"]) == ("error", "not_accepted"), forged

    assert await socket.receive_nothing(timeout=QUIET)
    assert (await db(_entry)(entry.pk)).state == EntryState.OFFERED
    assert await db(_audit_count)() == audit_before


def _figures_row(queue: ServiceQueue, *, waiting: int) -> dict[str, Any]:
    return {
        "queue_id": queue.pk,
        "code": "activation",
        "name": "激活",
        "waiting": waiting,
        "offered": 0,
        "longest_wait_seconds": ANY,
        "average_wait_seconds": ANY,
        "service_level": None,
        "abandon_rate": None,
        "paused": queue.paused,
    }


async def test_the_agent_socket_first_sends_everything_the_page_shows(
    sockets: Sockets,
    make_queued_customer: Callable[..., QueueEntry],
    make_skilled_staff: Callable[..., StaffProfile],
) -> None:
    staff = await _agent_ready_behind_paused_queue(make_skilled_staff)
    await db(make_queued_customer)()
    queue = await db(_queue)(paused=True)

    socket, _, _ = await sockets.connect("/ws/agent/", cookie=await db(_staff_cookie)(staff.user))

    assert await socket.receive_json_from(timeout=WAIT) == {
        "type": "snapshot",
        "state": "available",
        "wrap_up_until": None,
        "entry": None,
        "call": None,
        "queues": [_figures_row(queue, waiting=1)],
    }
    assert await socket.receive_nothing(timeout=QUIET)


async def test_an_offer_and_its_answer_are_pushed_as_fresh_snapshots(
    sockets: Sockets,
    make_queued_customer: Callable[..., QueueEntry],
    make_skilled_staff: Callable[..., StaffProfile],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(queue_entry_connected, "send", lambda *args, **kwargs: [])  # no Janus room here
    staff = await _agent_ready_behind_paused_queue(make_skilled_staff)
    mine = await db(make_queued_customer)()
    socket, _, _ = await sockets.connect("/ws/agent/", cookie=await db(_staff_cookie)(staff.user))
    assert (await socket.receive_json_from(timeout=WAIT))["entry"] is None

    queue = await db(_queue)(paused=False)
    await db(dispatch_queue)(queue_id=queue.pk)
    assert (await socket.receive_json_from(timeout=WAIT))["event"] == "offer"
    ringing = await socket.receive_json_from(timeout=WAIT)
    assert ringing["type"] == "snapshot" and ringing["state"] == "offered"
    assert {key: ringing["entry"][key] for key in ("id", "state", "business")} == {
        "id": mine.pk,
        "state": "offered",
        "business": "activation",
    }
    assert ringing["entry"]["expires_at"]

    await db(offer_accept)(actor=staff.user, staff=staff, entry_id=mine.pk)
    assert (await socket.receive_json_from(timeout=WAIT))["event"] == "connected"
    serving = await socket.receive_json_from(timeout=WAIT)
    assert (serving["state"], serving["entry"]["state"]) == ("busy", "connected")


async def test_the_page_leaves_wrap_up_even_when_the_dispatchers_event_never_arrives(
    sockets: Sockets, make_skilled_staff: Callable[..., StaffProfile], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dispatcher ends wrap-ups from its own process: with the embedded in-memory
    channel layer its events never reach Daphne. The agent's socket knows the deadline
    and asks the database itself."""
    staff = await _agent_ready_behind_paused_queue(make_skilled_staff)
    await db(service_queue_upsert)(
        actor=SYSTEM, code="activation", name="激活", businesses=["activation"], paused=True, wrap_up_seconds=1
    )

    def serving_then_wrap_up() -> None:
        AgentPresence.objects.filter(staff=staff).update(state=AgentState.BUSY)
        agent_service_end(actor=SYSTEM, staff=staff)

    await db(serving_then_wrap_up)()
    socket, _, _ = await sockets.connect("/ws/agent/", cookie=await db(_staff_cookie)(staff.user))
    first = await socket.receive_json_from(timeout=WAIT)
    assert first["state"] == "wrap_up" and first["wrap_up_until"]

    # The dispatcher, in another process: its broadcast goes nowhere.
    monkeypatch.setattr(events, "broadcast_now", lambda group, event: None)
    await asyncio.sleep(1.1)
    assert await db(wrap_ups_finish)() == 1

    pushed = await socket.receive_json_from(timeout=WAIT)
    assert (pushed["type"], pushed["state"], pushed["wrap_up_until"]) == ("snapshot", "available", None)


async def test_a_service_panel_event_is_forwarded_without_a_snapshot_and_a_desk_event_with_one(
    sockets: Sockets,
    make_skilled_staff: Callable[..., StaffProfile],
) -> None:
    """A gate's or the business's progress changes nothing of the desk: no snapshot re-read behind it."""
    staff = await _agent_ready_behind_paused_queue(make_skilled_staff)
    socket, _, _ = await sockets.connect("/ws/agent/", cookie=await db(_staff_cookie)(staff.user))
    assert (await socket.receive_json_from(timeout=WAIT))["type"] == "snapshot"
    presence_id = await db(lambda: AgentPresence.objects.get(staff=staff).pk)()
    layer = get_channel_layer()
    assert layer is not None
    group = events.agent_group(presence_id)

    for event in ("call_gates", "call_operation", "call_liveness"):
        await layer.group_send(group, {"type": events.AGENT_UPDATE, "event": event, "call": "c"})
        assert (await socket.receive_json_from(timeout=WAIT)) == {"type": "agent", "event": event, "call": "c"}
    assert await socket.receive_nothing(timeout=QUIET)

    await layer.group_send(group, {"type": events.AGENT_UPDATE, "event": "call_ended", "call": "c"})
    assert (await socket.receive_json_from(timeout=WAIT))["event"] == "call_ended"
    assert (await socket.receive_json_from(timeout=WAIT))["type"] == "snapshot"


async def test_the_customer_hears_which_gate_moved_and_nothing_else_of_the_event(
    sockets: Sockets,
    make_queued_customer: Callable[..., QueueEntry],
) -> None:
    """The page asks for Gate 4's questions on that gate's events only; statuses and reasons stay on the staff side."""
    await db(_queue)(paused=True)
    mine = await db(make_queued_customer)()
    socket, _, _ = await sockets.connect("/ws/visit/", cookie=await db(_visit_cookie)(mine.visit_id))
    assert (await socket.receive_json_from(timeout=WAIT))["position"] == 1
    layer = get_channel_layer()
    assert layer is not None

    await layer.group_send(
        events.visit_group(mine.visit_id),
        {
            "type": events.VISIT_UPDATE,
            "event": "gates",
            "call": "c",
            "gate": "questions",
            "status": "failed",
            "reason": "r",
        },
    )
    assert await socket.receive_json_from(timeout=WAIT) == {
        "type": "visit",
        "event": "gates",
        "agent": None,
        "gate": "questions",
    }
    await layer.group_send(events.visit_group(mine.visit_id), {"type": events.VISIT_UPDATE, "event": "operation"})
    assert await socket.receive_json_from(timeout=WAIT) == {"type": "visit", "event": "operation", "agent": None}
