"""The batched dispatcher makes exactly the decisions of one offer at a time (issue 18, item 2).

For each agent strategy, a queue serving two businesses, customers of every
level and agents with different skills, proficiencies, idle times and
services today: ``dispatch_batch(limit=n)`` in one transaction, rolled back,
must offer the same customers to the same agents as ``dispatch_queue`` called
n times. The routing rules themselves are tested one offer at a time in
test_routing.py (``dispatch_queue`` is a batch of one).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from apps.audit.actions import AuditAction
from apps.audit.models import AuditRecord
from apps.audit.selectors import audit_chain_verify
from apps.customers.models import CustomerLevel
from apps.queueing.models import AgentPresence, AgentState, AgentStrategy, EntryState, QueueEntry
from apps.queueing.services.agents import agent_state_set
from apps.queueing.services.configuration import service_queue_upsert
from apps.queueing.services.offers import Offer, dispatch_batch, dispatch_queue
from apps.staff.models import StaffProfile
from apps.staff.services import agent_skill_set
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db

BUSINESSES = ["activation", "password_reset"]


class _Rollback(Exception):
    pass


@pytest.mark.parametrize("strategy", list(AgentStrategy))
def test_a_batch_offers_the_same_customers_to_the_same_agents_as_one_at_a_time(
    strategy: AgentStrategy,
    make_queued_customer: Callable[..., QueueEntry],
    make_skilled_staff: Callable[..., StaffProfile],
) -> None:
    rng = random.Random(18)
    now = timezone.now()
    queue = service_queue_upsert(
        actor=SYSTEM, code="mixed", name="混合", businesses=BUSINESSES, agent_strategy=strategy
    )
    for _number in range(24):
        make_queued_customer(
            business=rng.choice(BUSINESSES),
            level=rng.choice(list(CustomerLevel)),
            now=now - timedelta(seconds=rng.randint(0, 300)),
        )
    # Fewer password_reset agents than customers: its entries must be skipped once they are all taken.
    for number in range(9):
        skills = ["activation"] if number % 3 else BUSINESSES
        staff = make_skilled_staff(skills=())
        for business in skills:
            agent_skill_set(actor=SYSTEM, staff=staff, business_code=business, proficiency=rng.randint(1, 5))
        agent_state_set(
            actor=SYSTEM, staff=staff, state=AgentState.AVAILABLE, now=now - timedelta(seconds=rng.randint(0, 600))
        )
        AgentPresence.objects.filter(staff=staff).update(services_date=now.date(), services_today=rng.randint(0, 4))
    offers_wanted = 7

    batch: list[Offer] = []
    try:
        with transaction.atomic():
            batch = dispatch_batch(queue_id=queue.pk, now=now, limit=offers_wanted)
            records = list(
                AuditRecord.objects.filter(action=AuditAction.QUEUE_OFFERED)
                .order_by("sequence")
                .values_list("target_id", "data")
            )
            assert [target for target, _data in records] == [str(offer.entry_id) for offer in batch]  # in order
            # Each record names the agent offered (the dispatcher reads only the employee number with the agent).
            numbers = dict(AgentPresence.objects.values_list("pk", "staff__employee_number"))
            assert [data["agent"] for _target, data in records] == [numbers[offer.agent_id] for offer in batch]
            assert all(data["strategy"] == strategy for _target, data in records)
            assert audit_chain_verify().intact
            raise _Rollback
    except _Rollback:
        pass
    assert QueueEntry.objects.filter(state=EntryState.OFFERED).count() == 0  # really rolled back

    one_at_a_time = []
    while len(one_at_a_time) < offers_wanted and (offer := dispatch_queue(queue_id=queue.pk, now=now)) is not None:
        one_at_a_time.append(offer)

    assert len(batch) == len(one_at_a_time) >= 4
    assert batch == one_at_a_time


def test_a_batch_reads_past_a_head_of_customers_nobody_free_can_serve(
    make_queued_customer: Callable[..., QueueEntry], make_skilled_staff: Callable[..., StaffProfile]
) -> None:
    """The first chunk of the line is all one business whose only agent it uses; the batch reads on and serves the next.

    Three activation customers wait ahead of one password_reset customer, with
    one free agent each: a batch of two takes the first chunk (two activation
    customers), gives the activation agent to the first, finds none for the
    second, and must resume after it to reach the password_reset customer.
    """
    now = timezone.now()
    queue = service_queue_upsert(actor=SYSTEM, code="mixed", name="混合", businesses=BUSINESSES)
    heads = [make_queued_customer(business="activation", now=now - timedelta(seconds=60 - n)) for n in range(3)]
    later = make_queued_customer(business="password_reset", now=now)
    staff = {business: make_skilled_staff(skills=[business]) for business in BUSINESSES}
    for member in staff.values():
        agent_state_set(actor=SYSTEM, staff=member, state=AgentState.AVAILABLE, now=now - timedelta(minutes=5))
    presence = {business: AgentPresence.objects.get(staff=member) for business, member in staff.items()}

    offers = dispatch_batch(queue_id=queue.pk, now=now, limit=2)

    assert offers == [
        Offer(heads[0].pk, presence["activation"].pk, queue.pk),
        Offer(later.pk, presence["password_reset"].pk, queue.pk),
    ]
    assert set(QueueEntry.objects.filter(state=EntryState.WAITING).values_list("pk", flat=True)) == {
        heads[1].pk,
        heads[2].pk,
    }
