"""A customer whose page went silent (no heartbeat) leaves the queue after the grace period.

The case: a Daphne process dies (SIGKILL, a lost machine) and runs no
``disconnect``; the customer never comes back. Without a heartbeat their entry
would stay waiting, and be offered, for good. The dispatcher's tick marks an
entry silent longer than ``VISIT_HEARTBEAT_SILENCE_SECONDS`` as disconnected;
the reconnect grace then applies as for a page that closed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.audit.actions import AuditAction
from apps.audit.models import AuditRecord
from apps.customers.models import Customer
from apps.queueing.models import EntryState, QueueEntry, ServiceQueue
from apps.queueing.services.configuration import service_queue_upsert
from apps.queueing.services.entries import queue_entry_enqueue, queue_entry_heartbeat
from apps.queueing.services.housekeeping import dispatcher_tick, entries_silence_expire
from tests.conftest import SYSTEM
from tests.factories import visit_with_gate1

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.get_fixed_timezone(480))
SILENCE = 60
HEARTBEAT = 15


@pytest.fixture(autouse=True)
def heartbeat_settings(settings: Any) -> None:
    settings.VISIT_HEARTBEAT_SECONDS = HEARTBEAT
    settings.VISIT_HEARTBEAT_SILENCE_SECONDS = SILENCE


@pytest.fixture
def queue() -> ServiceQueue:
    return service_queue_upsert(actor=SYSTEM, code="activation", name="激活", businesses=["activation"])


@pytest.fixture
def enqueue(
    make_customer: Callable[..., Customer], django_capture_on_commit_callbacks: Callable[..., Any]
) -> Callable[..., QueueEntry]:
    def make(*, at: datetime) -> QueueEntry:
        customer = make_customer()
        visit = visit_with_gate1(
            business_code="activation", mobile=customer.mobile, customer=customer, state="queue_ready"
        )
        with django_capture_on_commit_callbacks(execute=True):
            return queue_entry_enqueue(visit_id=visit.pk, now=at)

    return make


def _audit(entry: QueueEntry, action: AuditAction) -> list[dict[str, Any]]:
    return [
        record.data
        for record in AuditRecord.objects.filter(
            action=action, target_type="queueing.queueentry", target_id=str(entry.pk)
        )
    ]


def test_joining_the_queue_counts_as_hearing_from_the_customer(
    queue: ServiceQueue, enqueue: Callable[..., QueueEntry]
) -> None:
    entry = enqueue(at=T0)
    assert entry.last_seen_at == T0
    # Just under the limit: still there.
    assert entries_silence_expire(now=T0 + timedelta(seconds=SILENCE - 1)) == 0


def test_a_silent_customer_is_marked_disconnected_then_leaves_after_the_grace_period(
    queue: ServiceQueue, enqueue: Callable[..., QueueEntry]
) -> None:
    entry = enqueue(at=T0)
    silent_at = T0 + timedelta(seconds=SILENCE + 1)

    done = dispatcher_tick(now=silent_at)

    assert done["silent"] == 1
    entry.refresh_from_db()
    assert (entry.state, entry.disconnected_at) == (EntryState.WAITING, silent_at)
    assert _audit(entry, AuditAction.QUEUE_DISCONNECTED) == [
        {"reason": "silent", "last_seen_at": T0.astimezone(UTC).isoformat(), "silent_seconds": SILENCE + 1}
    ]
    # Marked once: the next ticks do not mark it again.
    assert entries_silence_expire(now=silent_at + timedelta(seconds=5)) == 0

    # The grace period runs from the moment it was marked.
    assert dispatcher_tick(now=silent_at + timedelta(seconds=queue.reconnect_grace_seconds - 1))["grace_expired"] == 0
    assert dispatcher_tick(now=silent_at + timedelta(seconds=queue.reconnect_grace_seconds + 1))["grace_expired"] == 1
    entry.refresh_from_db()
    assert (entry.state, entry.end_reason) == (EntryState.ABANDONED, "grace_expired")
    assert _audit(entry, AuditAction.QUEUE_ABANDONED) == [{"reason": "grace_expired"}]
    entry.visit.refresh_from_db()
    assert (entry.visit.outcome, entry.visit.outcome_reason) == ("abandoned", "grace_expired")


def test_heartbeats_keep_the_customer_in_the_queue(queue: ServiceQueue, enqueue: Callable[..., QueueEntry]) -> None:
    entry = enqueue(at=T0)
    for beat in range(1, 10):
        queue_entry_heartbeat(entry_id=entry.pk, now=T0 + timedelta(seconds=beat * HEARTBEAT))
        assert entries_silence_expire(now=T0 + timedelta(seconds=beat * HEARTBEAT + 1)) == 0
    entry.refresh_from_db()
    assert (entry.state, entry.disconnected_at) == (EntryState.WAITING, None)


def test_a_heartbeat_writes_only_when_the_stored_time_is_older_than_the_interval(
    queue: ServiceQueue, enqueue: Callable[..., QueueEntry], django_assert_num_queries: Callable[..., Any]
) -> None:
    entry = enqueue(at=T0)
    # Soon after the last write: one conditional UPDATE that changes nothing.
    with django_assert_num_queries(1):
        assert queue_entry_heartbeat(entry_id=entry.pk, now=T0 + timedelta(seconds=HEARTBEAT - 1)) is False
    entry.refresh_from_db()
    assert entry.last_seen_at == T0

    assert queue_entry_heartbeat(entry_id=entry.pk, now=T0 + timedelta(seconds=HEARTBEAT + 1)) is True
    entry.refresh_from_db()
    assert entry.last_seen_at == T0 + timedelta(seconds=HEARTBEAT + 1)


def test_a_heartbeat_from_a_page_marked_silent_brings_the_customer_back(
    queue: ServiceQueue, enqueue: Callable[..., QueueEntry]
) -> None:
    entry = enqueue(at=T0)
    assert entries_silence_expire(now=T0 + timedelta(seconds=SILENCE + 1)) == 1

    queue_entry_heartbeat(entry_id=entry.pk, now=T0 + timedelta(seconds=SILENCE + 2))

    entry.refresh_from_db()
    assert (entry.state, entry.disconnected_at) == (EntryState.WAITING, None)
    assert len(_audit(entry, AuditAction.QUEUE_RECONNECTED)) == 1
    assert dispatcher_tick(now=T0 + timedelta(hours=1))["grace_expired"] == 0
