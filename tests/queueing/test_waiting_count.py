"""Each queue's ``waiting_count`` (issue 18: the size of the line without counting it) is what its rows say.

``_queue_event`` moves it by what joined and left; every change of who
waits goes through it (tests/queueing/test_position.py runs random
sequences of them). A queue loaded earlier and saved must not put back
the count and version it read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from django.utils import timezone

from apps.customers.models import Customer
from apps.queueing.models import AgentState, EntryState, QueueEntry, ServiceQueue
from apps.queueing.services.agents import agent_state_set
from apps.queueing.services.configuration import service_queue_upsert
from apps.queueing.services.entries import queue_entry_enqueue, queue_entry_leave, queue_entry_move
from apps.queueing.services.offers import dispatch_batch, offer_decline, queue_entry_offer_to
from apps.staff.models import StaffProfile
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


def test_the_count_follows_joins_leaves_moves_and_offers(
    two_queues: tuple[ServiceQueue, ServiceQueue],
    new_visit: Callable[[], Visit],
    make_skilled_staff: Callable[..., StaffProfile],
) -> None:
    a, b = two_queues
    entries = [queue_entry_enqueue(visit_id=new_visit().pk, queue=a, now=T0) for _ in range(5)]
    assert _counts(a, b) == [(5, 5), (0, 0)]

    queue_entry_leave(entry_id=entries[0].pk)
    queue_entry_move(actor=SYSTEM, entry_id=entries[1].pk, queue_id=b.pk)
    assert _counts(a, b) == [(3, 3), (1, 1)]

    staff = make_skilled_staff()
    agent_state_set(actor=SYSTEM, staff=staff, state=AgentState.AVAILABLE)
    queue_entry_offer_to(actor=SYSTEM, entry_id=entries[2].pk, staff=staff)
    assert _counts(a, b) == [(2, 2), (1, 1)]
    offer_decline(actor=staff.user, staff=staff, entry_id=entries[2].pk)  # back at the front
    assert _counts(a, b) == [(3, 3), (1, 1)]

    service_queue_upsert(actor=SYSTEM, code="wca", name="甲", businesses=["activation"], paused=False)
    offers = dispatch_batch(queue_id=a.pk)
    assert len(offers) == 1  # one agent free: one of the three offered
    assert _counts(a, b) == [(2, 2), (1, 1)]


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
