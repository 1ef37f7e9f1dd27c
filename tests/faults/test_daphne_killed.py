"""The Daphne process killed while customers wait: they reconnect elsewhere and keep their place.

Three waiting customers follow their place over real WebSockets on a real
Daphne (Redis channel layer, the test database). Daphne gets SIGKILL: no
``disconnect`` runs, no goodbye. A new Daphne (another port, as another
process behind the load balancer) takes over; the customers' pages reconnect,
as templates/mobile/visit.html does, and each gets back the same place. Live
updates flow through the new process, and nobody is abandoned, even after
the reconnect grace has passed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.utils import timezone
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection, connect

from apps.audit.actions import AuditAction
from apps.audit.models import AuditRecord
from apps.queueing.models import EntryState, QueueEntry
from apps.queueing.position import Tracker, position_step, position_view
from apps.queueing.services.configuration import service_queue_upsert
from apps.queueing.services.entries import queue_entry_leave
from apps.queueing.services.housekeeping import entries_grace_expire
from apps.visits.authentication import SESSION_KEY
from tests.conftest import SYSTEM
from tests.faults.conftest import Processes, assert_audit_chain_verifies, start_daphne

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]

CUSTOMERS = 3
STARTUP_SECONDS = 60
MESSAGE_SECONDS = 10


def _visit_cookie(visit_id: int) -> str:
    """The customer's browser session, as the Gate 1 API leaves it."""
    session = SessionStore()
    session[SESSION_KEY] = visit_id
    session.create()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


class Page:
    """A customer's page following /ws/visit/ (reconnecting as visit.html does)."""

    def __init__(self, cookie: str) -> None:
        self.cookie = cookie
        self.socket: ClientConnection | None = None
        self.sockets = ExitStack()
        # The page's own position algorithm (queueing/position.js, mirrored in Python).
        self.tracker = Tracker()

    def open(self, port: int) -> dict[str, Any]:
        """Connect, retrying like the page (the new process may still be starting); return the first position."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                self.socket = self.sockets.enter_context(
                    connect(
                        f"ws://127.0.0.1:{port}/ws/visit/",
                        additional_headers={"Cookie": self.cookie, "Origin": f"http://127.0.0.1:{port}"},
                        open_timeout=MESSAGE_SECONDS,
                    )
                )
                first = self.receive()
                self.tracker = position_step(Tracker(), first)
                return first
            except (OSError, InvalidHandshake):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def receive(self) -> dict[str, Any]:
        assert self.socket is not None
        message: dict[str, Any] = json.loads(self.socket.recv(timeout=MESSAGE_SECONDS))
        return message

    def place_after_next_message(self) -> int:
        """The place the page shows once it has applied the next message (a queue change)."""
        position_step(self.tracker, self.receive())
        place: int = position_view(self.tracker)["position"]
        return place

    def lost(self) -> bool:
        """True once the server side is gone (the page would show "Reconnecting…")."""
        assert self.socket is not None
        try:
            self.socket.recv(timeout=MESSAGE_SECONDS)
        except ConnectionClosed:
            return True
        return False

    def close(self) -> None:
        self.sockets.close()


@pytest.fixture
def pages() -> Iterator[list[Page]]:
    opened: list[Page] = []
    yield opened
    for page in opened:
        page.close()


def test_customers_reconnect_to_a_new_daphne_after_a_kill_and_keep_their_place(
    processes: Processes, make_queued_customer: Callable[..., QueueEntry], pages: list[Page]
) -> None:
    # Paused: nobody is offered meanwhile, the places only change when someone leaves.
    queue = service_queue_upsert(actor=SYSTEM, code="activation", name="激活", businesses=["activation"], paused=True)
    entries = [make_queued_customer() for _ in range(CUSTOMERS)]
    pages.extend(Page(_visit_cookie(entry.visit_id)) for entry in entries)

    first_port = start_daphne(processes, "daphne1", startup_seconds=STARTUP_SECONDS)
    before = [page.open(first_port) for page in pages]
    assert [(message["type"], message["position"]) for message in before] == [
        ("position", place) for place in range(1, CUSTOMERS + 1)
    ]

    first = processes.started[0][1]
    processes.kill(first)
    assert all(page.lost() for page in pages)

    second_port = start_daphne(processes, "daphne2", startup_seconds=STARTUP_SECONDS)
    after = [page.open(second_port) for page in pages]
    assert [message["position"] for message in after] == [message["position"] for message in before]

    # Live updates go through the new process: the first customer leaves, the others move up.
    queue_entry_leave(entry_id=entries[0].pk)
    assert [pages[number].place_after_next_message() for number in (1, 2)] == [1, 2]

    # Nobody was abandoned, even once the reconnect grace has long passed.
    later = timezone.now() + timedelta(seconds=queue.reconnect_grace_seconds + 60)
    assert entries_grace_expire(now=later) == 0
    assert list(
        QueueEntry.objects.filter(pk__in=[entry.pk for entry in entries[1:]]).values_list("state", flat=True)
    ) == [EntryState.WAITING, EntryState.WAITING]
    abandoned = AuditRecord.objects.filter(action=AuditAction.QUEUE_ABANDONED).values_list("data", flat=True)
    assert list(abandoned) == [{"reason": "customer_left"}]
    assert_audit_chain_verifies()
