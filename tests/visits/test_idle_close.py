"""An open visit that nothing moves on any more is closed (issue: no state only a person can leave).

``visits_idle_close`` runs on every dispatcher round; the clock is driven with
an explicit ``now``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditRecord
from apps.customers.models import Customer
from apps.operations.services import visits_idle_close
from apps.queueing.models import EndReason, EntryState, QueueEntry
from apps.queueing.services.configuration import service_queue_upsert
from apps.queueing.services.entries import queue_entry_enqueue
from apps.verification.services import verification_start
from apps.visits.authentication import SESSION_KEY
from apps.visits.models import Visit, VisitOutcome
from tests.conftest import SYSTEM
from tests.factories import visit_with_gate1

pytestmark = pytest.mark.django_db

IDLE = timedelta(minutes=30)


@pytest.fixture
def idle_after(settings: Any) -> timedelta:
    settings.VISIT_IDLE_CLOSE_SECONDS = int(IDLE.total_seconds())
    return IDLE


def test_a_visit_left_during_gate_1_is_closed_as_abandoned_once_idle_and_gate_1_goes_no_further(
    idle_after: timedelta,
) -> None:
    visit = verification_start(business_code="activation", mobile="13912340123").visit
    now = timezone.now()

    assert visits_idle_close(now=now + idle_after - timedelta(minutes=1)) == 0
    assert visits_idle_close(now=now + idle_after + timedelta(minutes=1)) == 1

    visit.refresh_from_db()
    assert (visit.outcome, visit.outcome_reason) == (VisitOutcome.ABANDONED, "idle_timeout")
    closed = AuditRecord.objects.get(action="verification.visit.closed", target_id=str(visit.pk))
    assert closed.data == {"outcome": "abandoned", "reason": "idle_timeout"}
    assert visits_idle_close(now=now + 2 * idle_after) == 0  # closed once

    browser = Client()
    session = browser.session
    session[SESSION_KEY] = visit.pk
    session.save()
    answer = browser.post(reverse("verification:visit-identity-confirm"), content_type="application/json")
    assert (answer.status_code, answer.json()["code"]) == (409, "visit_closed")


def test_a_customer_waiting_in_the_queue_is_never_closed_for_idleness(
    idle_after: timedelta, make_customer: Callable[..., Customer]
) -> None:
    service_queue_upsert(actor=SYSTEM, code="activation", name="激活", businesses=["activation"])
    customer = make_customer()
    visit = visit_with_gate1(business_code="activation", mobile=customer.mobile, customer=customer)
    queue_entry_enqueue(visit_id=visit.pk)

    assert visits_idle_close(now=timezone.now() + 10 * idle_after) == 0
    assert Visit.objects.get(pk=visit.pk).outcome == ""


def test_a_customer_whose_call_broke_down_lately_may_still_come_back(
    idle_after: timedelta, make_customer: Callable[..., Customer]
) -> None:
    queue = service_queue_upsert(actor=SYSTEM, code="activation", name="激活", businesses=["activation"])
    customer = make_customer()
    visit = visit_with_gate1(business_code="activation", mobile=customer.mobile, customer=customer)
    Visit.objects.filter(pk=visit.pk).update(updated_at=timezone.now() - 3 * idle_after)
    ended = timezone.now()
    QueueEntry.objects.create(
        visit=visit,
        queue=queue,
        business_code="activation",
        level=customer.level,
        state=EntryState.SERVED,
        end_reason=EndReason.CALL_FAILED,
        enqueued_at=ended - 2 * idle_after,
        ended_at=ended,
        priority_key=0.0,
    )

    assert visits_idle_close(now=ended + idle_after - timedelta(minutes=1)) == 0
    assert visits_idle_close(now=ended + idle_after + timedelta(minutes=1)) == 1
    assert Visit.objects.get(pk=visit.pk).outcome == VisitOutcome.ABANDONED
