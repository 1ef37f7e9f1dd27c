"""Lifecycle invariants of the queue (issue 16): closed visits stay out, one live entry per customer, no ping-pong."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.actions import AuditAction
from apps.audit.models import AuditRecord
from apps.common.errors import NotAllowed
from apps.customers.models import Customer
from apps.queueing.models import AgentPresence, AgentState, EndReason, EntryState, QueueEntry, ServiceQueue
from apps.queueing.services.agents import agent_state_set
from apps.queueing.services.configuration import overflow_target_set, service_queue_upsert
from apps.queueing.services.entries import queue_entry_enqueue, queue_entry_leave
from apps.queueing.services.housekeeping import queue_overflow
from apps.queueing.services.offers import dispatch_queue, offer_accept
from apps.queueing.signals import queue_entry_connected
from apps.staff.models import StaffProfile
from apps.visits.models import Visit, VisitOutcome
from tests.conftest import SYSTEM
from tests.factories import visit_with_gate1

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.get_fixed_timezone(480))


@pytest.fixture
def queue() -> ServiceQueue:
    return service_queue_upsert(actor=SYSTEM, code="activation", name="激活", businesses=["activation"])


@pytest.fixture
def new_visit() -> Callable[[Customer], Visit]:
    def make(customer: Customer) -> Visit:
        return visit_with_gate1(
            business_code="activation", mobile=customer.mobile, customer=customer, state="queue_ready"
        )

    return make


def test_a_visit_the_customer_left_cannot_join_the_queue_again(
    queue: ServiceQueue, customer: Customer, new_visit: Callable[[Customer], Visit]
) -> None:
    entry = queue_entry_enqueue(visit_id=new_visit(customer).pk)
    queue_entry_leave(entry_id=entry.pk)
    assert Visit.objects.get(pk=entry.visit_id).outcome == VisitOutcome.ABANDONED

    with pytest.raises(NotAllowed) as refused:
        queue_entry_enqueue(visit_id=entry.visit_id)

    assert refused.value.code == "visit_closed"
    assert not QueueEntry.objects.filter(visit_id=entry.visit_id, state=EntryState.WAITING).exists()


def test_a_closed_visit_cannot_queue_even_after_service(
    queue: ServiceQueue, customer: Customer, new_visit: Callable[[Customer], Visit]
) -> None:
    visit = new_visit(customer)
    Visit.objects.filter(pk=visit.pk).update(outcome=VisitOutcome.COMPLETED)
    with pytest.raises(NotAllowed) as refused:
        queue_entry_enqueue(visit_id=visit.pk, after_service=True)  # what a transfer asks for
    assert refused.value.code == "visit_closed"


def test_a_new_visit_of_the_same_customer_supersedes_the_one_still_waiting(
    queue: ServiceQueue, customer: Customer, new_visit: Callable[[Customer], Visit]
) -> None:
    older = queue_entry_enqueue(visit_id=new_visit(customer).pk, now=T0)

    newer = queue_entry_enqueue(visit_id=new_visit(customer).pk, now=T0 + timedelta(seconds=30))

    older.refresh_from_db()
    assert (older.state, older.end_reason) == (EntryState.ABANDONED, EndReason.SUPERSEDED)
    assert Visit.objects.get(pk=older.visit_id).outcome == VisitOutcome.ABANDONED
    assert Visit.objects.get(pk=older.visit_id).outcome_reason == "superseded"
    assert newer.state == EntryState.WAITING and newer.customer_id == customer.pk
    assert QueueEntry.objects.filter(customer=customer, state__in=("waiting", "offered", "connected")).count() == 1
    abandoned = AuditRecord.objects.get(action=AuditAction.QUEUE_ABANDONED, target_id=str(older.pk))
    assert abandoned.data == {"reason": "superseded"}


def test_a_customer_in_a_call_cannot_queue_a_second_visit(
    queue: ServiceQueue,
    customer: Customer,
    new_visit: Callable[[Customer], Visit],
    make_skilled_staff: Callable[..., StaffProfile],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(queue_entry_connected, "send", lambda *args, **kwargs: [])  # no call app here
    serving = queue_entry_enqueue(visit_id=new_visit(customer).pk)
    staff = make_skilled_staff()
    agent_state_set(actor=SYSTEM, staff=staff, state=AgentState.AVAILABLE)
    assert dispatch_queue(queue_id=queue.pk) is not None
    offer_accept(actor=staff.user, staff=staff, entry_id=serving.pk)
    second = new_visit(customer)

    with pytest.raises(NotAllowed) as refused:
        queue_entry_enqueue(visit_id=second.pk)

    assert refused.value.code == "customer_in_call"
    assert QueueEntry.objects.get(pk=serving.pk).state == EntryState.CONNECTED
    assert not Visit.objects.get(pk=serving.visit_id).outcome


def test_the_database_refuses_two_live_entries_for_one_customer(
    queue: ServiceQueue, customer: Customer, new_visit: Callable[[Customer], Visit]
) -> None:
    first = queue_entry_enqueue(visit_id=new_visit(customer).pk, now=T0)
    with pytest.raises(IntegrityError), transaction.atomic():
        QueueEntry.objects.create(
            visit=new_visit(customer),
            customer=customer,
            queue=queue,
            business_code="activation",
            level=first.level,
            enqueued_at=T0,
            priority_key=0.0,
        )


def test_overflow_never_sends_a_customer_back_to_the_queue_they_came_from(
    queue: ServiceQueue,
    make_customer: Callable[..., Customer],
    new_visit: Callable[[Customer], Visit],
    make_skilled_staff: Callable[..., StaffProfile],
) -> None:
    shared = service_queue_upsert(
        actor=SYSTEM, code="shared", name="综合", businesses=["activation"], overflow_max_wait_seconds=60
    )
    service_queue_upsert(
        actor=SYSTEM, code="activation", name="激活", businesses=["activation"], overflow_max_wait_seconds=60
    )
    overflow_target_set(actor=SYSTEM, queue=queue, target=shared, position=1)
    overflow_target_set(actor=SYSTEM, queue=shared, target=queue, position=1)  # mutual targets
    busy = make_skilled_staff()
    AgentPresence.objects.create(staff=busy, state=AgentState.BUSY, state_since=T0)  # logged in everywhere
    entry = queue_entry_enqueue(visit_id=new_visit(make_customer()).pk, now=T0)

    assert queue_overflow(queue_id=queue.pk, now=T0 + timedelta(seconds=70)) == 1
    assert queue_overflow(queue_id=shared.pk, now=T0 + timedelta(seconds=80)) == 0

    entry.refresh_from_db()
    assert entry.queue == shared and entry.overflowed_from == queue
    assert AuditRecord.objects.filter(action=AuditAction.QUEUE_OVERFLOWED).count() == 1


def test_an_older_visit_cannot_join_while_a_newer_one_of_the_customer_is_open(
    queue: ServiceQueue, customer: Customer, new_visit: Callable[[Customer], Visit]
) -> None:
    older, newer = new_visit(customer), new_visit(customer)
    with pytest.raises(NotAllowed) as refused:
        queue_entry_enqueue(visit_id=older.pk)
    assert refused.value.code == "visit_superseded"

    queue_entry_enqueue(visit_id=newer.pk)

    assert Visit.objects.get(pk=older.pk).outcome_reason == "superseded"
    assert not QueueEntry.objects.filter(visit=older).exists()
