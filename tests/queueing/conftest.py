"""Factories for the queueing tests that run on committed data (transactional tests).

In a transactional test every service commits for real, so what a service
schedules after commit runs at once: broadcasts go out, and the dispatch task
(eager under the test settings) may offer a waiting customer to an available
agent straight away. The factories below therefore never make an agent
available by themselves; tests that must choose the moment of an offer pause
the queue first (``service_queue_upsert(..., paused=True)``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from datetime import datetime

import pytest

from apps.customers.models import Branch, Customer, CustomerLevel
from apps.queueing.models import QueueEntry
from apps.queueing.services.entries import queue_entry_enqueue
from apps.staff.models import StaffProfile
from apps.staff.roles import Role
from apps.staff.services import agent_skill_set, staff_member_upsert
from apps.verification.models import VerificationState
from tests.conftest import SYSTEM
from tests.factories import visit_with_gate1


@pytest.fixture
def make_queued_customer(make_customer: Callable[..., Customer]) -> Callable[..., QueueEntry]:
    """A customer who passed Gate 1 and joined the queue of their business; returns the entry."""

    def make(
        *, business: str = "activation", level: CustomerLevel = CustomerLevel.ORDINARY, now: datetime | None = None
    ) -> QueueEntry:
        customer = make_customer(level=level)
        # A visit that passed Gate 1 (that flow is tested in tests/verification).
        visit = visit_with_gate1(
            business_code=business, mobile=customer.mobile, customer=customer, state=VerificationState.QUEUE_READY
        )
        return queue_entry_enqueue(visit_id=visit.pk, now=now)

    return make


@pytest.fixture
def make_skilled_staff(branch: Branch) -> Callable[..., StaffProfile]:
    """A staff member with skills, logged out of the queues (state ``offline``)."""
    numbers = itertools.count(1)

    def make(*, skills: Iterable[str] = ("activation",), role: Role = Role.AGENT) -> StaffProfile:
        number = next(numbers)
        staff = staff_member_upsert(
            actor=SYSTEM,
            username=f"queue_staff{number}",
            employee_number=f"QS{number:04d}",
            display_name=f"坐席{number}",
            role=role,
            branch=branch,
            initial_password="correct horse battery",
        )
        for business in skills:
            agent_skill_set(actor=SYSTEM, staff=staff, business_code=business, proficiency=3)
        return staff

    return make
