"""Each queue's ``waiting_count`` (issue 18: the size of the line without counting it) is what its rows say.

Kept by database triggers (apps/queueing/triggers.py), so it must hold after
any write of entries: the services, a bulk UPDATE or DELETE that bypasses
them, a move between queues; and a queue loaded earlier and saved must not
put back the count it read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from django.db import connection
from django.utils import timezone

from apps.customers.models import Customer
from apps.queueing.models import EntryState, QueueEntry, ServiceQueue
from apps.queueing.services.configuration import service_queue_upsert
from apps.queueing.services.entries import queue_entry_enqueue, queue_entry_leave, queue_entry_move
from apps.visits.models import Visit
from tests.conftest import SYSTEM
from tests.factories import visit_with_gate1

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.get_fixed_timezone(480))


def _counts(*queues: ServiceQueue) -> list[tuple[int, int]]:
    """(kept count, counted rows) per queue."""
    return [
        (
            ServiceQueue.objects.get(pk=queue.pk).waiting_count,
            QueueEntry.objects.filter(queue=queue, state=EntryState.WAITING).count(),
        )
        for queue in queues
    ]


@pytest.fixture
def two_queues() -> tuple[ServiceQueue, ServiceQueue]:
    return (
        service_queue_upsert(actor=SYSTEM, code="wca", name="甲", businesses=["activation"], paused=True),
        service_queue_upsert(actor=SYSTEM, code="wcb", name="乙", businesses=["activation"], paused=True),
    )


@pytest.fixture
def new_visit(make_customer: Callable[..., Customer]) -> Callable[[], Visit]:
    def make() -> Visit:
        customer = make_customer()
        return visit_with_gate1(
            business_code="activation", mobile=customer.mobile, customer=customer, state="queue_ready"
        )

    return make


def test_the_count_follows_every_write_of_entries(
    two_queues: tuple[ServiceQueue, ServiceQueue], new_visit: Callable[[], Visit]
) -> None:
    a, b = two_queues
    entries = [queue_entry_enqueue(visit_id=new_visit().pk, queue=a, now=T0) for _ in range(5)]
    assert _counts(a, b) == [(5, 5), (0, 0)]

    queue_entry_leave(entry_id=entries[0].pk)
    queue_entry_move(actor=SYSTEM, entry_id=entries[1].pk, queue_id=b.pk)
    assert _counts(a, b) == [(3, 3), (1, 1)]

    # Writes that bypass the services: one statement of several rows each.
    QueueEntry.objects.filter(pk__in=[e.pk for e in entries[2:4]]).update(queue=b)
    assert _counts(a, b) == [(1, 1), (3, 3)]
    QueueEntry.objects.filter(queue=b).update(state=EntryState.ABANDONED)
    assert _counts(a, b) == [(1, 1), (0, 0)]
    QueueEntry.objects.filter(queue=b).update(state=EntryState.WAITING, queue=a)
    assert _counts(a, b) == [(4, 4), (0, 0)]
    with connection.cursor() as cursor:  # a waiting entry deleted outright
        cursor.execute(f"DELETE FROM {QueueEntry._meta.db_table} WHERE id = %s", [entries[4].pk])
    assert _counts(a, b) == [(3, 3), (0, 0)]
    # A write that changes nobody's place leaves the count alone.
    QueueEntry.objects.filter(queue=a).update(last_seen_at=T0)
    assert _counts(a, b) == [(3, 3), (0, 0)]


def test_a_queue_saved_from_an_old_copy_keeps_its_count_and_version(
    two_queues: tuple[ServiceQueue, ServiceQueue], new_visit: Callable[[], Visit]
) -> None:
    a, _b = two_queues
    stale = ServiceQueue.objects.get(pk=a.pk)
    queue_entry_enqueue(visit_id=new_visit().pk, queue=a, now=T0)
    fresh = ServiceQueue.objects.get(pk=a.pk)
    assert (fresh.waiting_count, fresh.change_version) == (1, stale.change_version + 1)

    stale.name = "甲二"
    stale.save()

    saved = ServiceQueue.objects.get(pk=a.pk)
    assert saved.name == "甲二"
    assert (saved.waiting_count, saved.change_version) == (1, fresh.change_version)
