"""A customer whose call failed queues again at the front (queue_entry_rejoin), once nothing was concluded."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from apps.audit.actions import AuditAction
from apps.audit.models import AuditRecord
from apps.common.errors import NotAllowed
from apps.customers.models import CustomerLevel
from apps.queueing.models import AgentState, EndReason, EntryState, QueueEntry
from apps.queueing.selectors import entry_position
from apps.queueing.services.agents import agent_service_end, agent_state_set
from apps.queueing.services.configuration import service_queue_upsert
from apps.queueing.services.entries import queue_entry_enqueue, queue_entry_rejoin
from apps.queueing.services.offers import dispatch_queue, offer_accept
from apps.staff.models import StaffProfile
from apps.visits.models import VisitOutcome
from apps.visits.services import visit_close
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db


@pytest.fixture
def served(
    make_queued_customer: Callable[..., QueueEntry], make_skilled_staff: Callable[..., StaffProfile]
) -> Callable[[bool], QueueEntry]:
    """An entry answered by an agent whose service then ended, normally or with a failed call."""
    queue = service_queue_upsert(actor=SYSTEM, code="activation", name="激活", businesses=["activation"])

    def make(call_failed: bool) -> QueueEntry:
        entry = make_queued_customer()
        staff = make_skilled_staff()
        agent_state_set(actor=SYSTEM, staff=staff, state=AgentState.AVAILABLE)
        assert dispatch_queue(queue_id=queue.pk) is not None
        offer_accept(actor=staff.user, staff=staff, entry_id=entry.pk)
        agent_service_end(actor=SYSTEM, staff=staff, call_failed=call_failed)
        entry.refresh_from_db()
        return entry

    return make


def test_a_customer_whose_call_failed_joins_again_ahead_of_everyone_waiting(
    served: Callable[[bool], QueueEntry], make_queued_customer: Callable[..., QueueEntry]
) -> None:
    failed = served(True)
    assert failed.state == EntryState.SERVED and failed.end_reason == EndReason.CALL_FAILED
    waiting = make_queued_customer(level=CustomerLevel.PRIVATE)

    again = queue_entry_enqueue(visit_id=failed.visit_id)  # the customer's "join the queue"

    assert again.pk != failed.pk and again.state == EntryState.WAITING
    assert again.enqueued_at == failed.enqueued_at
    assert entry_position(entry=again) == 1 and entry_position(entry=waiting) == 2
    record = AuditRecord.objects.get(action=AuditAction.QUEUE_REJOINED)
    assert record.target_id == str(again.pk)
    assert record.data == {"queue": "activation", "previous_entry": failed.pk, "reason": "call_failed"}
    assert queue_entry_rejoin(visit_id=failed.visit_id).pk == again.pk  # idempotent


def test_a_served_customer_cannot_rejoin(served: Callable[[bool], QueueEntry]) -> None:
    entry = served(False)
    with pytest.raises(NotAllowed) as refused:
        queue_entry_rejoin(visit_id=entry.visit_id)
    assert refused.value.code == "rejoin_not_allowed"
    with pytest.raises(NotAllowed) as already:
        queue_entry_enqueue(visit_id=entry.visit_id)
    assert already.value.code == "already_served"


def test_a_visit_with_an_outcome_cannot_rejoin_even_after_a_failed_call(
    served: Callable[[bool], QueueEntry],
) -> None:
    entry = served(True)
    visit_close(visit_id=entry.visit_id, actor=SYSTEM, outcome=VisitOutcome.ABANDONED, reason="customer gone")
    with pytest.raises(NotAllowed) as refused:
        queue_entry_rejoin(visit_id=entry.visit_id)
    assert refused.value.code == "rejoin_not_allowed"
    assert not QueueEntry.objects.filter(visit_id=entry.visit_id, state=EntryState.WAITING).exists()
