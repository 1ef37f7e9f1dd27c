"""The queueing API's answers: the customer's queue views, the agent's desk and the supervisors' figures."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from apps.customers.models import Customer
from apps.queueing.models import AgentState, QueueEntry, ServiceQueue
from apps.queueing.selectors import DEFAULT_HANDLE_SECONDS
from apps.queueing.services.agents import agent_state_set
from apps.queueing.services.configuration import service_queue_upsert
from apps.queueing.services.entries import queue_entry_enqueue
from apps.staff.models import StaffProfile
from apps.verification.models import VerificationState
from apps.visits.authentication import SESSION_KEY
from apps.visits.models import Visit
from tests.conftest import SYSTEM
from tests.factories import visit_with_gate1
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db

STANDING_KEYS = {"entry", "queue", "queue_name", "state", "position", "priority_key", "estimated_wait_seconds"}


@pytest.fixture
def queue() -> ServiceQueue:
    return service_queue_upsert(actor=SYSTEM, code="activation", name="激活", businesses=["activation"])


def _utc(instant: datetime | None) -> str:
    assert instant is not None
    return instant.isoformat().replace("+00:00", "Z")


def _customer_client(client: Client, make_customer: Callable[..., Customer]) -> tuple[Client, Visit]:
    customer = make_customer()
    visit = visit_with_gate1(
        business_code="activation", mobile=customer.mobile, customer=customer, state=VerificationState.QUEUE_READY
    )
    session = client.session
    session[SESSION_KEY] = visit.pk
    session.save()
    return client, visit


def test_the_customer_sees_their_place_then_leaves_the_queue_through_the_api(
    client: Client, queue: ServiceQueue, make_customer: Callable[..., Customer]
) -> None:
    client, visit = _customer_client(client, make_customer)
    not_queued = client.get(reverse("queueing:visit-queue"))
    assert (not_queued.status_code, not_queued.json()["code"]) == (404, "not_queued")

    joined = client.post(reverse("queueing:visit-queue-join"), content_type="application/json")
    assert joined.status_code == 201
    entry = QueueEntry.objects.get(visit=visit)
    place = {
        "entry": entry.pk,
        "queue": queue.pk,
        "queue_name": "激活",
        "state": "waiting",
        "position": 1,
        "priority_key": entry.priority_key,
        "estimated_wait_seconds": DEFAULT_HANDLE_SECONDS,  # nobody served yet, no agent logged in
    }
    assert joined.json() == place
    assert client.get(reverse("queueing:visit-queue")).json() == place

    left = client.post(reverse("queueing:visit-queue-leave"), content_type="application/json")
    assert left.status_code == 200
    assert left.json() == place | {"state": "abandoned", "position": 0, "estimated_wait_seconds": 0}
    assert client.get(reverse("queueing:visit-queue")).json()["state"] == "abandoned"
    # What a reload then shows (issue #19: it said "checks passed"): the visit ended, with its service number.
    summary = client.get(reverse("mobile:visit-summary"), headers={"accept-language": "zh-hans"}).json()
    assert (summary["outcome"], summary["service_number"]) == ("abandoned", str(visit.public_id))
    assert not summary["succeeded"] and "重新开始" in summary["message"]
    # The queue's own URL only reads now: joining and leaving have theirs.
    for method in (client.post, client.delete):
        refused = method(reverse("queueing:visit-queue"))
        assert refused.status_code == 405 and refused.json()["code"]


def test_leaving_without_having_queued_is_a_clear_404(
    client: Client, queue: ServiceQueue, make_customer: Callable[..., Customer]
) -> None:
    client, _visit = _customer_client(client, make_customer)
    response = client.post(reverse("queueing:visit-queue-leave"), content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (404, "not_queued")


def test_the_agents_desk_shows_the_offered_customer_with_the_offers_expiry(
    client: Client,
    queue: ServiceQueue,
    make_skilled_staff: Callable[..., StaffProfile],
    make_queued_customer: Callable[..., QueueEntry],
    django_capture_on_commit_callbacks: Callable[..., object],
) -> None:
    staff = make_skilled_staff()
    client.force_login(staff.user)
    assert client.get(reverse("queueing:agent-me")).json() == {"state": "offline", "entry": None}  # never connected

    agent_state_set(actor=SYSTEM, staff=staff, state=AgentState.AVAILABLE)
    with django_capture_on_commit_callbacks(execute=True):  # the dispatch the enqueue schedules
        entry = make_queued_customer()
    entry.refresh_from_db()

    assert client.get(reverse("queueing:agent-me")).json() == {
        "state": "offered",
        "entry": {
            "id": entry.pk,
            "state": "offered",
            "business": "activation",
            "level": entry.level,
            "expires_at": _utc(entry.offer_expires_at),
            "customer": entry.visit.customer.name if entry.visit.customer else "",
        },
    }


def test_supervisors_see_each_queues_figures_agents_by_state_and_who_waits_with_why(
    client: Client, queue: ServiceQueue, make_customer: Callable[..., Customer], supervisor: User
) -> None:
    customer = make_customer()
    visit = visit_with_gate1(
        business_code="activation", mobile=customer.mobile, customer=customer, state=VerificationState.QUEUE_READY
    )
    entry = queue_entry_enqueue(visit_id=visit.pk)
    entry.refresh_from_db()

    body = (
        force_login_verified(client, supervisor)
        .get(reverse("queueing:figures"), headers={"accept-language": "en"})
        .json()
    )

    [figures] = body["queues"]
    assert list(figures) == [
        "queue_id",
        "code",
        "name",
        "waiting",
        "offered",
        "longest_wait_seconds",
        "average_wait_seconds",
        "service_level",
        "abandon_rate",
        "paused",
    ]
    assert (figures["queue_id"], figures["code"], figures["waiting"], figures["offered"]) == (
        queue.pk,
        "activation",
        1,
        0,
    )
    assert (figures["service_level"], figures["abandon_rate"], figures["paused"]) == (None, None, False)
    assert body["agents"] == {state.value: 0 for state in AgentState}
    assert body["waiting"] == [
        {
            "entry": entry.pk,
            "queue": "activation",
            "business": "activation",
            "level": entry.level,
            "enqueued_at": _utc(entry.enqueued_at),
            "state": "waiting",
            "pending_reason": "No agent with this skill is logged in",
        }
    ]
