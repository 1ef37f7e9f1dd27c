"""Routing rules of the remote counter (R2), through the queueing services."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from apps.audit.actions import AuditAction
from apps.audit.models import AuditRecord
from apps.common.errors import NotAllowed, PermissionDenied, ValidationFailed
from apps.customers.models import Customer, CustomerLevel
from apps.queueing.models import AgentPresence, AgentState, AgentStrategy, EntryState, QueueEntry, ServiceQueue
from apps.queueing.selectors import entry_position, pending_reason, queue_figures
from apps.queueing.services.agents import agent_service_end, agent_state_set
from apps.queueing.services.configuration import overflow_target_set, service_queue_upsert
from apps.queueing.services.entries import (
    queue_entries_disconnect,
    queue_entry_disconnect,
    queue_entry_enqueue,
    queue_entry_move,
    queue_entry_reconnect,
)
from apps.queueing.services.housekeeping import entries_grace_expire, offers_expire, queue_overflow
from apps.queueing.services.offers import dispatch_queue, offer_accept, offer_decline
from apps.staff.models import StaffProfile
from apps.staff.roles import Role
from apps.staff.services import agent_skill_set, staff_member_upsert
from apps.verification.models import Verification
from tests.conftest import SYSTEM
from tests.factories import visit_with_gate1

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.get_fixed_timezone(480))


@pytest.fixture
def queue() -> ServiceQueue:
    return service_queue_upsert(actor=SYSTEM, code="activation", name="激活", businesses=["activation"])


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks: Callable[..., Any]) -> Callable[..., Any]:
    """Run what services schedule after commit (dispatch, broadcasts), as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def enqueue(make_customer: Callable[..., Customer], on_commit: Callable[..., Any]) -> Callable[..., QueueEntry]:
    def make(
        *, at: datetime, level: CustomerLevel = CustomerLevel.ORDINARY, business: str = "activation"
    ) -> QueueEntry:
        customer = make_customer(level=level)
        # A visit that passed Gate 1 (its flow is tested in tests/verification).
        visit = visit_with_gate1(business_code=business, mobile=customer.mobile, customer=customer, state="queue_ready")
        with on_commit():
            entry = queue_entry_enqueue(visit_id=visit.pk, now=at)
        entry.refresh_from_db()
        return entry

    return make


@pytest.fixture
def make_agent(branch: Any, on_commit: Callable[..., Any]) -> Callable[..., StaffProfile]:
    counter = iter(range(1, 1000))

    def make(
        *, skills: dict[str, int] | None = None, available_at: datetime | None = T0, role: Role = Role.AGENT
    ) -> StaffProfile:
        number = next(counter)
        staff = staff_member_upsert(
            actor=SYSTEM,
            username=f"routing_agent{number}",
            employee_number=f"RA{number:03d}",
            display_name=f"坐席{number}",
            role=role,
            branch=branch,
        )
        for business, level in (skills or {"activation": 3}).items():
            agent_skill_set(actor=SYSTEM, staff=staff, business_code=business, proficiency=level)
        if available_at is not None:
            with on_commit():
                agent_state_set(actor=SYSTEM, staff=staff, state=AgentState.AVAILABLE, now=available_at)
        return staff

    return make


def _order(queue: ServiceQueue) -> list[int]:
    return list(
        QueueEntry.objects.filter(queue=queue, state=EntryState.WAITING)
        .order_by("priority_key")
        .values_list("pk", flat=True)
    )


def test_higher_levels_go_ahead_of_customers_who_came_a_little_earlier(
    queue: ServiceQueue, enqueue: Callable[..., QueueEntry]
) -> None:
    ordinary = enqueue(at=T0)
    gold = enqueue(at=T0 + timedelta(seconds=10), level=CustomerLevel.GOLD)  # bonus 30 s
    private = enqueue(at=T0 + timedelta(seconds=90), level=CustomerLevel.PRIVATE)  # bonus 120 s
    assert _order(queue) == [private.pk, gold.pk, ordinary.pk]
    assert entry_position(entry=QueueEntry.objects.get(pk=ordinary.pk)) == 3


def test_waiting_longer_than_any_bonus_puts_an_ordinary_customer_first(
    queue: ServiceQueue, enqueue: Callable[..., QueueEntry]
) -> None:
    patient = enqueue(at=T0)
    private = enqueue(at=T0 + timedelta(seconds=121), level=CustomerLevel.PRIVATE)
    assert _order(queue) == [patient.pk, private.pk]


def test_business_weights_are_configurable_per_queue(enqueue: Callable[..., QueueEntry]) -> None:
    shared = service_queue_upsert(
        actor=SYSTEM,
        code="shared",
        name="综合",
        businesses=["activation", "lost_report_release"],
        business_bonus_seconds={"lost_report_release": 300},
    )
    activation = enqueue(at=T0)
    release = enqueue(at=T0 + timedelta(seconds=200), business="lost_report_release")
    assert _order(shared) == [release.pk, activation.pk]


def test_longest_idle_agent_gets_the_offer(
    queue: ServiceQueue, enqueue: Callable[..., QueueEntry], make_agent: Callable[..., StaffProfile]
) -> None:
    make_agent(available_at=T0 + timedelta(minutes=5))
    idle_longest = make_agent(available_at=T0)
    make_agent(available_at=T0 + timedelta(minutes=1))
    entry = enqueue(at=T0 + timedelta(minutes=6))
    entry.refresh_from_db()
    assert entry.state == EntryState.OFFERED
    assert entry.agent is not None and entry.agent.staff == idle_longest


def test_fewest_services_today_strategy(
    enqueue: Callable[..., QueueEntry], make_agent: Callable[..., StaffProfile]
) -> None:
    service_queue_upsert(
        actor=SYSTEM,
        code="activation",
        name="激活",
        businesses=["activation"],
        agent_strategy=AgentStrategy.FEWEST_SERVICES,
    )
    busy_day = make_agent(available_at=T0)
    quiet_day = make_agent(available_at=T0 + timedelta(minutes=5))
    now = timezone.now()
    AgentPresence.objects.filter(staff=busy_day).update(services_date=now.date(), services_today=7)
    AgentPresence.objects.filter(staff=quiet_day).update(services_date=now.date(), services_today=2)
    entry = enqueue(at=now)
    entry.refresh_from_db()
    assert entry.agent is not None and entry.agent.staff == quiet_day


def test_highest_proficiency_strategy(
    enqueue: Callable[..., QueueEntry], make_agent: Callable[..., StaffProfile]
) -> None:
    service_queue_upsert(
        actor=SYSTEM,
        code="activation",
        name="激活",
        businesses=["activation"],
        agent_strategy=AgentStrategy.HIGHEST_PROFICIENCY,
    )
    make_agent(skills={"activation": 2, "password_reset": 5}, available_at=T0)
    expert = make_agent(skills={"activation": 5, "password_reset": 1}, available_at=T0 + timedelta(minutes=3))
    entry = enqueue(at=T0 + timedelta(minutes=4))
    entry.refresh_from_db()
    assert entry.agent is not None and entry.agent.staff == expert


def test_only_agents_skilled_for_the_business_are_offered(
    queue: ServiceQueue, enqueue: Callable[..., QueueEntry], make_agent: Callable[..., StaffProfile]
) -> None:
    make_agent(skills={"password_reset": 5})
    entry = enqueue(at=T0)
    entry.refresh_from_db()
    assert entry.state == EntryState.WAITING
    with translation.override("en"):
        assert str(pending_reason(entry=entry)) == "No agent with this skill is logged in"


def test_a_declined_offer_puts_the_customer_back_at_the_front(
    queue: ServiceQueue, enqueue: Callable[..., QueueEntry], make_agent: Callable[..., StaffProfile], on_commit: Any
) -> None:
    first = enqueue(at=T0)
    others = [enqueue(at=T0 + timedelta(seconds=s)) for s in (1, 2)]
    staff = make_agent(available_at=T0)
    first.refresh_from_db()
    assert first.state == EntryState.OFFERED and first.agent is not None and first.agent.staff == staff
    with on_commit():
        offer_decline(actor=staff.user, staff=staff, entry_id=first.pk, now=T0 + timedelta(seconds=5))
    # The same agent is available again and the dispatcher re-offers at once;
    # the declined customer is still the first in line.
    first.refresh_from_db()
    assert first.priority_key < min(QueueEntry.objects.get(pk=o.pk).priority_key for o in others)
    assert AuditRecord.objects.filter(action="queueing.entry.offer_declined", target_id=str(first.pk)).exists()


def test_an_unanswered_offer_returns_to_the_front_and_repeated_misses_set_the_agent_away(
    queue: ServiceQueue, enqueue: Callable[..., QueueEntry], make_agent: Callable[..., StaffProfile], on_commit: Any
) -> None:
    entries = [enqueue(at=T0 + timedelta(seconds=s)) for s in range(3)]
    staff = make_agent(available_at=T0)
    timeout = timedelta(seconds=queue.offer_timeout_seconds + 1)
    now = timezone.now()
    for miss in range(queue.max_missed_offers):
        now += timeout
        with on_commit():
            assert offers_expire(now=now) == 1
        presence = AgentPresence.objects.get(staff=staff)
        if miss + 1 < queue.max_missed_offers:
            assert presence.state == AgentState.OFFERED  # re-offered right away (still first in line)
    presence = AgentPresence.objects.get(staff=staff)
    assert presence.state == AgentState.AWAY
    head = QueueEntry.objects.get(pk=entries[0].pk)
    assert head.state == EntryState.WAITING
    assert _order(queue)[0] == head.pk
    assert AuditRecord.objects.filter(action="queueing.entry.offer_timed_out").count() == queue.max_missed_offers


def test_accepting_connects_and_ending_starts_wrap_up(
    queue: ServiceQueue, enqueue: Callable[..., QueueEntry], make_agent: Callable[..., StaffProfile]
) -> None:
    staff = make_agent(available_at=T0)
    entry = enqueue(at=timezone.now())
    accepted = offer_accept(actor=staff.user, staff=staff, entry_id=entry.pk)
    assert accepted.state == EntryState.CONNECTED
    presence = AgentPresence.objects.get(staff=staff)
    assert presence.state == AgentState.BUSY and presence.services_today == 1
    ended = agent_service_end(actor=staff.user, staff=staff)
    assert ended.state == AgentState.WRAP_UP
    assert QueueEntry.objects.get(pk=entry.pk).state == EntryState.SERVED


def test_nobody_else_can_take_or_decline_an_offer(
    queue: ServiceQueue, enqueue: Callable[..., QueueEntry], make_agent: Callable[..., StaffProfile]
) -> None:
    offered_to = make_agent(available_at=T0)
    other = make_agent(available_at=None)
    entry = enqueue(at=timezone.now())
    with pytest.raises(PermissionDenied):
        offer_accept(actor=other.user, staff=other, entry_id=entry.pk)
    with pytest.raises(PermissionDenied):
        offer_decline(actor=other.user, staff=other, entry_id=entry.pk)
    with pytest.raises(NotAllowed):
        offer_accept(
            actor=offered_to.user, staff=offered_to, entry_id=entry.pk, now=timezone.now() + timedelta(hours=1)
        )


def test_the_database_refuses_two_live_customers_for_one_agent(
    queue: ServiceQueue, enqueue: Callable[..., QueueEntry], make_agent: Callable[..., StaffProfile]
) -> None:
    make_agent(available_at=T0)
    first = enqueue(at=T0)
    second = enqueue(at=T0 + timedelta(seconds=1))
    first.refresh_from_db()
    with pytest.raises(IntegrityError), transaction.atomic():
        QueueEntry.objects.filter(pk=second.pk).update(state=EntryState.OFFERED, agent=first.agent)


def test_overflow_by_length_moves_the_newest_and_keeps_their_waited_time(
    queue: ServiceQueue, enqueue: Callable[..., QueueEntry], make_agent: Callable[..., StaffProfile]
) -> None:
    shared = service_queue_upsert(actor=SYSTEM, code="shared", name="综合", businesses=["activation", "password_reset"])
    service_queue_upsert(
        actor=SYSTEM, code="activation", name="激活", businesses=["activation"], overflow_max_waiting=2
    )
    overflow_target_set(actor=SYSTEM, queue=queue, target=shared, position=1)
    skilled = make_agent(available_at=None)
    agent_state_set(actor=SYSTEM, staff=skilled, state=AgentState.AWAY)  # away is not serving
    entries = [enqueue(at=T0 + timedelta(seconds=s)) for s in range(4)]
    # Nobody who could serve them is logged in at the target: nobody moves.
    assert queue_overflow(queue_id=queue.pk, now=T0 + timedelta(seconds=10)) == 0
    AgentPresence.objects.filter(staff=skilled).update(state=AgentState.BUSY)
    assert queue_overflow(queue_id=queue.pk, now=T0 + timedelta(seconds=10)) == 2
    moved = QueueEntry.objects.filter(queue=shared).order_by("enqueued_at")
    assert [e.pk for e in moved] == [entries[2].pk, entries[3].pk]
    assert moved[0].enqueued_at == entries[2].enqueued_at
    assert moved[0].overflowed_from == queue
    assert AuditRecord.objects.filter(action="queueing.entry.overflowed").count() == 2


def test_overflow_by_waiting_time(
    queue: ServiceQueue, enqueue: Callable[..., QueueEntry], make_agent: Callable[..., StaffProfile]
) -> None:
    shared = service_queue_upsert(actor=SYSTEM, code="shared", name="综合", businesses=["activation"])
    service_queue_upsert(
        actor=SYSTEM, code="activation", name="激活", businesses=["activation"], overflow_max_wait_seconds=60
    )
    overflow_target_set(actor=SYSTEM, queue=queue, target=shared, position=1)
    busy = make_agent(available_at=T0)
    AgentPresence.objects.filter(staff=busy).update(state=AgentState.BUSY)
    old = enqueue(at=T0)
    recent = enqueue(at=T0 + timedelta(seconds=50))
    assert queue_overflow(queue_id=queue.pk, now=T0 + timedelta(seconds=70)) == 1
    assert QueueEntry.objects.get(pk=old.pk).queue == shared
    assert QueueEntry.objects.get(pk=recent.pk).queue == queue


def test_a_customer_who_reconnects_within_grace_keeps_their_place(
    queue: ServiceQueue, enqueue: Callable[..., QueueEntry]
) -> None:
    first = enqueue(at=T0)
    enqueue(at=T0 + timedelta(seconds=1))
    queue_entry_disconnect(entry_id=first.pk, now=T0 + timedelta(seconds=5))
    assert entries_grace_expire(now=T0 + timedelta(seconds=5 + queue.reconnect_grace_seconds - 1)) == 0
    queue_entry_reconnect(entry_id=first.pk)
    assert entries_grace_expire(now=T0 + timedelta(hours=1)) == 0
    assert _order(queue)[0] == first.pk


def test_pages_dropped_together_are_marked_as_one_by_one_would_mark_them(
    queue: ServiceQueue, enqueue: Callable[..., QueueEntry]
) -> None:
    waiting, marked_before, ended = enqueue(at=T0), enqueue(at=T0), enqueue(at=T0)
    queue_entry_disconnect(entry_id=marked_before.pk, now=T0)
    QueueEntry.objects.filter(pk=ended.pk).update(state=EntryState.ABANDONED)
    audits_before = AuditRecord.objects.filter(action=AuditAction.QUEUE_DISCONNECTED).count()

    marked = queue_entries_disconnect(entry_ids=[ended.pk, waiting.pk, marked_before.pk, 10**9], now=T0 + timedelta(1))

    assert marked == [waiting.pk]
    assert QueueEntry.objects.get(pk=waiting.pk).disconnected_at == T0 + timedelta(1)
    assert QueueEntry.objects.get(pk=marked_before.pk).disconnected_at == T0
    assert QueueEntry.objects.get(pk=ended.pk).disconnected_at is None
    audits = AuditRecord.objects.filter(action=AuditAction.QUEUE_DISCONNECTED).order_by("-pk")
    assert audits.count() == audits_before + 1
    assert audits[0].target_id == str(waiting.pk)
    assert queue_entries_disconnect(entry_ids=[waiting.pk]) == []


def test_a_customer_gone_past_the_grace_period_leaves_the_queue(
    queue: ServiceQueue, enqueue: Callable[..., QueueEntry], make_agent: Callable[..., StaffProfile]
) -> None:
    gone = enqueue(at=T0)
    queue_entry_disconnect(entry_id=gone.pk, now=T0)
    # While the page is gone the customer is not offered to anyone.
    make_agent(available_at=T0)
    gone.refresh_from_db()
    assert gone.state == EntryState.WAITING
    assert entries_grace_expire(now=T0 + timedelta(seconds=queue.reconnect_grace_seconds + 1)) == 1
    gone.refresh_from_db()
    assert (gone.state, gone.end_reason) == (EntryState.ABANDONED, "grace_expired")
    # The service is over, and its record says why (R4).
    gone.visit.refresh_from_db()
    assert (gone.visit.outcome, gone.visit.outcome_reason) == ("abandoned", "grace_expired")


def test_a_supervisor_moves_a_customer_keeping_their_waited_time(
    queue: ServiceQueue, enqueue: Callable[..., QueueEntry], supervisor: User
) -> None:
    shared = service_queue_upsert(actor=SYSTEM, code="shared", name="综合", businesses=["activation"])
    entry = enqueue(at=T0)
    moved = queue_entry_move(actor=supervisor, entry_id=entry.pk, queue_id=shared.pk)
    assert moved.queue == shared and moved.enqueued_at == entry.enqueued_at
    elsewhere = service_queue_upsert(actor=SYSTEM, code="reset", name="重置", businesses=["password_reset"])
    with pytest.raises(ValidationFailed):
        queue_entry_move(actor=supervisor, entry_id=entry.pk, queue_id=elsewhere.pk)


def test_a_paused_queue_offers_nobody_and_says_so(
    enqueue: Callable[..., QueueEntry], make_agent: Callable[..., StaffProfile]
) -> None:
    paused = service_queue_upsert(actor=SYSTEM, code="activation", name="激活", businesses=["activation"], paused=True)
    make_agent(available_at=T0)
    entry = enqueue(at=T0)
    assert dispatch_queue(queue_id=paused.pk) is None
    entry.refresh_from_db()
    with translation.override("en"):
        assert str(pending_reason(entry=entry)) == "Queue paused"


def test_figures_count_waiting_service_level_and_abandons(
    queue: ServiceQueue, enqueue: Callable[..., QueueEntry], make_agent: Callable[..., StaffProfile]
) -> None:
    now = timezone.now()
    staff = make_agent(available_at=now)
    fast = enqueue(at=now - timedelta(seconds=5))
    offer_accept(actor=staff.user, staff=staff, entry_id=fast.pk, now=now)
    left = enqueue(at=now - timedelta(seconds=30))
    queue_entry_disconnect(entry_id=left.pk, now=now - timedelta(seconds=200))
    entries_grace_expire(now=now)
    enqueue(at=now - timedelta(seconds=42))
    figures = next(f for f in queue_figures(now=now) if f.queue_id == queue.pk)
    assert figures.waiting == 1
    assert figures.longest_wait_seconds == pytest.approx(42, abs=1)
    assert figures.service_level == 0.5  # one answered within 20 s out of two finished
    assert figures.abandon_rate == 0.5


def test_the_customer_joins_the_queue_through_the_api_once_gate_1_is_passed(
    client: Client, queue: ServiceQueue, make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer()
    visit = visit_with_gate1(
        business_code="activation", mobile=customer.mobile, customer=customer, state="account_accepted"
    )
    session = client.session
    session["remotebank_visit_id"] = visit.pk
    session.save()
    refused = client.post(reverse("queueing:visit-queue-join"), content_type="application/json")
    assert refused.status_code == 409  # Gate 1 not passed
    Verification.objects.filter(visit=visit).update(state="queue_ready")
    # The page's last step before joining: the customer agrees to the recorded call.
    client.post(reverse("mobile:visit-consent"), {"camera": True, "microphone": True}, content_type="application/json")
    joined = client.post(reverse("queueing:visit-queue-join"), content_type="application/json")
    assert joined.status_code == 201
    assert joined.json()["position"] == 1
    again = client.post(reverse("queueing:visit-queue-join"), content_type="application/json")
    assert again.json()["entry"] == joined.json()["entry"]  # idempotent


def test_agents_act_through_the_api_and_other_roles_cannot(
    client: Client,
    queue: ServiceQueue,
    enqueue: Callable[..., QueueEntry],
    make_agent: Callable[..., StaffProfile],
    compliance_officer: User,
) -> None:
    staff = make_agent(available_at=None)
    client.force_login(staff.user)
    assert client.post(
        reverse("queueing:agent-state"), {"state": "available"}, content_type="application/json"
    ).json() == {"state": "available"}
    entry = enqueue(at=timezone.now())
    me = client.get(reverse("queueing:agent-me")).json()
    assert me["state"] == "offered" and me["entry"]["id"] == entry.pk
    assert client.post(reverse("queueing:offer-accept", args=[entry.pk])).json()["state"] == "connected"
    client.force_login(compliance_officer)
    assert client.get(reverse("queueing:agent-me")).status_code == 403
    assert client.get(reverse("queueing:figures")).status_code == 403
