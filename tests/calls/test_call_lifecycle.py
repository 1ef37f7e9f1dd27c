"""Call lifecycle against a real Janus (control plane on loopback): R1.1–R1.4, R3.1."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditRecord
from apps.calls.integrations.janus import JanusServer, JanusVideoRoom
from apps.calls.models import Call, CallParticipant, CallState, ParticipantRole
from apps.calls.services import calls_expire
from apps.customers.models import Customer
from apps.queueing.models import AgentPresence, AgentState, EntryState, QueueEntry, ServiceQueue
from apps.queueing.services.agents import agent_state_set
from apps.queueing.services.configuration import service_queue_upsert
from apps.queueing.services.entries import queue_entry_enqueue
from apps.queueing.services.offers import offer_accept
from apps.staff.models import StaffProfile
from apps.staff.roles import Role
from apps.visits.models import Visit
from tests.conftest import SYSTEM
from tests.factories import visit_with_gate1

pytestmark = pytest.mark.django_db


def _post_events(client: Client, events: list[dict[str, Any]], *, secret: str = "test-events-secret") -> Any:
    auth = base64.b64encode(f"janus:{secret}".encode()).decode()
    return client.post(
        reverse("calls:janus-events"),
        events,
        content_type="application/json",
        headers={"authorization": f"Basic {auth}"},
    )


def _videoroom(event: str, room: int, feed: int, display: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"event": event, "room": room, "id": feed}
    if display is not None:
        data["display"] = display
    return {
        "type": 64,
        "timestamp": int(timezone.now().timestamp() * 1_000_000),
        "event": {"plugin": "janus.plugin.videoroom", "data": data},
    }


def test_answering_creates_a_call_in_a_private_recorded_room_on_janus(
    answered: tuple[Call, StaffProfile, Client], janus_settings: JanusServer
) -> None:
    call, _agent, _client = answered
    call.refresh_from_db()
    assert call.state == CallState.CONNECTING
    assert call.room_open
    assert call.janus_server == janus_settings.name
    room = JanusVideoRoom(janus_settings)
    assert room.exists(room_id=call.room_id)
    assert Path(call.record_dir).is_dir()
    roles = set(call.participants.values_list("role", flat=True))
    assert roles == {ParticipantRole.CUSTOMER, ParticipantRole.AGENT}
    actions = list(
        AuditRecord.objects.filter(target_type="calls.call", target_id=str(call.pk)).values_list("action", flat=True)
    )
    assert actions[:2] == ["calls.call.created", "calls.call.room_opened"]


def test_each_participant_gets_tokens_for_this_room_only(
    answered: tuple[Call, StaffProfile, Client], make_member: Callable[..., StaffProfile], janus_settings: JanusServer
) -> None:
    call, agent, customer_browser = answered
    mine = customer_browser.get(reverse("calls:customer-call")).json()
    assert mine["role"] == "customer" and mine["join"]["room_id"] == call.room_id
    assert mine["join"]["room_token"].split(":")[0].endswith(f"room={call.room_id}")
    staff_browser = Client()
    staff_browser.force_login(agent.user)
    assert staff_browser.get(reverse("calls:staff-call", args=[call.public_id])).json()["role"] == "agent"
    stranger = make_member(available=False)
    staff_browser.force_login(stranger.user)
    denied = staff_browser.get(reverse("calls:staff-call", args=[call.public_id]))
    assert denied.status_code == 403 and denied.json()["code"] == "not_a_participant"
    assert Client().get(reverse("calls:customer-call")).status_code == 404  # another browser, no visit


def test_janus_events_connect_the_call_when_customer_and_agent_publish(
    answered: tuple[Call, StaffProfile, Client], client: Client
) -> None:
    call, _agent, _browser = answered
    customer = call.participants.get(role="customer")
    agent = call.participants.get(role="agent")
    assert (
        _post_events(client, [_videoroom("joined", call.room_id, 11, customer.handle)], secret="wrong").status_code
        == 403
    )
    response = _post_events(
        client,
        [
            _videoroom("joined", call.room_id, 11, customer.handle),
            _videoroom("published", call.room_id, 11, customer.handle),
            _videoroom("joined", call.room_id, 22, agent.handle),
            _videoroom("published", call.room_id, 22, agent.handle),
            _videoroom("joined", 999, 33, "nobody-we-know"),
        ],
    )
    assert response.json() == {"applied": 4}
    call.refresh_from_db()
    assert call.state == CallState.CONNECTED and call.connected_at is not None


def test_a_dropped_participant_may_rejoin_within_grace_or_the_call_ends_cleanly(
    answered: tuple[Call, StaffProfile, Client],
    client: Client,
    janus_settings: JanusServer,
    settings: Any,
    on_commit: Callable[..., Any],
) -> None:
    call, agent_staff, _browser = answered
    customer = call.participants.get(role="customer")
    agent = call.participants.get(role="agent")
    _post_events(client, [
        _videoroom("joined", call.room_id, 11, customer.handle), _videoroom("published", call.room_id, 11, customer.handle),
        _videoroom("joined", call.room_id, 22, agent.handle), _videoroom("published", call.room_id, 22, agent.handle),
    ])  # fmt: skip
    # Janus names a leaving participant only by room and feed id.
    _post_events(client, [_videoroom("leaving", call.room_id, 11)])
    customer.refresh_from_db()
    assert customer.disconnected_at is not None
    now = timezone.now()
    assert calls_expire(now=now + timedelta(seconds=settings.CALL_REJOIN_GRACE_SECONDS - 5)) == 0
    _post_events(client, [_videoroom("joined", call.room_id, 12, customer.handle)])  # came back
    assert calls_expire(now=now + timedelta(seconds=settings.CALL_REJOIN_GRACE_SECONDS + 5)) == 0
    _post_events(client, [_videoroom("leaving", call.room_id, 12)])
    with on_commit():
        assert calls_expire(now=timezone.now() + timedelta(seconds=settings.CALL_REJOIN_GRACE_SECONDS + 1)) == 1
    call.refresh_from_db()
    assert (call.state, call.end_reason) == (CallState.ENDED, "rejoin_grace_expired")
    assert not call.room_open
    assert not JanusVideoRoom(janus_settings).exists(room_id=call.room_id)
    assert AgentPresence.objects.get(staff=agent_staff).state == AgentState.WRAP_UP
    assert QueueEntry.objects.get(pk=call.entry_id).state == EntryState.SERVED


def test_the_customer_hangs_up_and_the_room_is_closed(
    answered: tuple[Call, StaffProfile, Client], janus_settings: JanusServer, on_commit: Callable[..., Any]
) -> None:
    call, _agent, browser = answered
    with on_commit():
        response = browser.post(reverse("calls:customer-call-hang-up"))
    assert response.status_code == 200 and response.json()["state"] == "ended"
    call.refresh_from_db()
    assert call.end_reason == "customer_hung_up"
    assert not JanusVideoRoom(janus_settings).exists(room_id=call.room_id)
    assert "join" not in browser.get(reverse("calls:customer-call")).json()


def test_the_agent_invites_a_named_expert_or_any_available_one(
    answered: tuple[Call, StaffProfile, Client], make_member: Callable[..., StaffProfile]
) -> None:
    call, agent, _browser = answered
    named = make_member(Role.EXPERT)
    staff_browser = Client()
    staff_browser.force_login(agent.user)
    invited = staff_browser.post(
        reverse("calls:invite", args=[call.public_id]), {"staff": named.pk}, content_type="application/json"
    )
    assert invited.status_code == 201
    any_expert = make_member(Role.EXPERT)
    assert (
        staff_browser.post(
            reverse("calls:invite", args=[call.public_id]), {}, content_type="application/json"
        ).status_code
        == 201
    )
    experts = set(call.participants.filter(role="expert").values_list("staff", flat=True))
    assert experts == {named.pk, any_expert.pk}
    # An available expert who joins is busy meanwhile: no customer is offered to them.
    assert AgentPresence.objects.get(staff=any_expert).state == AgentState.BUSY
    staff_browser.force_login(named.user)
    joined = staff_browser.get(reverse("calls:staff-my-call")).json()
    assert joined["role"] == "expert" and joined["join"]["room_id"] == call.room_id


def test_a_transfer_sends_the_customer_to_another_queue_keeping_the_gates(
    answered: tuple[Call, StaffProfile, Client], on_commit: Callable[..., Any]
) -> None:
    call, agent, _browser = answered
    other = service_queue_upsert(actor=SYSTEM, code="shared", name="综合", businesses=["activation", "password_reset"])
    staff_browser = Client()
    staff_browser.force_login(agent.user)
    with on_commit():
        moved = staff_browser.post(
            reverse("calls:transfer", args=[call.public_id]), {"queue": other.pk}, content_type="application/json"
        )
    assert moved.status_code == 200, moved.content
    call.refresh_from_db()
    assert call.end_reason == "transferred"
    entry = QueueEntry.objects.get(pk=moved.json()["entry"])
    assert entry.queue == other and entry.visit_id == call.visit_id
    visit = Visit.objects.get(pk=call.visit_id)
    assert (
        visit.verification.state == "queue_ready"
        and visit.customer_id is not None
        and visit.account_id == call.visit.account_id
    )


def test_an_unreachable_video_server_ends_the_call_with_the_reason(
    janus_settings: JanusServer,
    settings: Any,
    queue: ServiceQueue,
    make_customer: Callable[..., Customer],
    make_member: Callable[..., StaffProfile],
    on_commit: Callable[..., Any],
) -> None:
    settings.JANUS_SERVERS = [{**settings.JANUS_SERVERS[0], "ws_url": "ws://127.0.0.1:9", "name": "down"}]
    agent = make_member()
    customer = make_customer()
    visit = visit_with_gate1(business_code="activation", mobile=customer.mobile, customer=customer, state="queue_ready")
    with on_commit():
        entry = queue_entry_enqueue(visit_id=visit.pk)
    with on_commit():
        offer_accept(actor=agent.user, staff=agent, entry_id=entry.pk)
    call = Call.objects.get(entry=entry)
    assert (call.state, call.end_reason) == (CallState.ENDED, "media_server_failed")


def test_calls_go_to_the_least_loaded_video_server(
    janus_settings: JanusServer,
    settings: Any,
    queue: ServiceQueue,
    make_customer: Callable[..., Customer],
    make_member: Callable[..., StaffProfile],
    on_commit: Callable[..., Any],
) -> None:
    # Two names for the same real Janus: the choice is by live calls per name.
    settings.JANUS_SERVERS = [settings.JANUS_SERVERS[0], {**settings.JANUS_SERVERS[0], "name": "second"}]
    servers = []
    for _ in range(4):
        agent = make_member()
        customer = make_customer()
        visit = visit_with_gate1(
            business_code="activation", mobile=customer.mobile, customer=customer, state="queue_ready"
        )
        with on_commit():
            entry = queue_entry_enqueue(visit_id=visit.pk)
        entry.refresh_from_db()
        with on_commit():
            offer_accept(actor=agent.user, staff=agent, entry_id=entry.pk)
        servers.append(Call.objects.get(entry=entry).janus_server)
    assert sorted(servers) == sorted([janus_settings.name, "second"] * 2)
    assert CallParticipant.objects.filter(role="customer").count() == 4


def test_recording_files_map_back_to_their_participants(
    answered: tuple[Call, StaffProfile, Client], client: Client
) -> None:
    from apps.calls.selectors import call_recording_files

    call, _agent, _browser = answered
    customer = call.participants.get(role="customer")
    agent = call.participants.get(role="agent")
    _post_events(
        client,
        [_videoroom("joined", call.room_id, 11, customer.handle), _videoroom("joined", call.room_id, 22, agent.handle)],
    )
    folder = Path(call.record_dir)
    # The names Janus gives (docs/janus.md); the contents do not matter here.
    for name in (
        f"videoroom-{call.room_id}-user-11-1700000000000000-audio-0.mjr",
        f"videoroom-{call.room_id}-user-11-1700000000000001-video-1.mjr",
        f"videoroom-{call.room_id}-user-22-1700000000000002-video-1.mjr",
        f"videoroom-{call.room_id}-user-22-1700000000000003-audio-0.mjr.tmp",  # still open: not listed
        f"videoroom-{call.room_id}-user-99-1700000000000004-audio-0.mjr",  # unknown feed
        "notes.txt",
    ):
        (folder / name).write_bytes(b"x")
    found = [(f.role, f.kind, f.feed_id) for f in call_recording_files(call=call)]
    assert found == [("customer", "audio", 11), ("customer", "video", 11), ("agent", "video", 22), (None, "audio", 99)]


def test_a_call_with_an_expert_still_ends_when_the_customer_does_not_come_back(
    answered: tuple[Call, StaffProfile, Client],
    make_member: Callable[..., StaffProfile],
    client: Client,
    settings: Any,
    on_commit: Callable[..., Any],
) -> None:
    from apps.calls.services import call_invite

    call, agent, _browser = answered
    expert = make_member(Role.EXPERT)
    call_invite(call_id=call.pk, actor=agent.user, inviter=agent, invitee=expert)
    customer = call.participants.get(role="customer")
    expert_seat = call.participants.get(role="expert")
    _post_events(
        client,
        [
            _videoroom("joined", call.room_id, 11, customer.handle),
            _videoroom("joined", call.room_id, 33, expert_seat.handle),
        ],
    )
    # The expert dropping alone does not end the call...
    _post_events(client, [_videoroom("leaving", call.room_id, 33)])
    later = timezone.now() + timedelta(seconds=settings.CALL_REJOIN_GRACE_SECONDS + 1)
    assert calls_expire(now=later) == 0
    # ...the customer not coming back does, expert or not.
    _post_events(client, [_videoroom("leaving", call.room_id, 11)])
    with on_commit():
        assert calls_expire(now=timezone.now() + timedelta(seconds=settings.CALL_REJOIN_GRACE_SECONDS + 1)) == 1
    call.refresh_from_db()
    assert call.end_reason == "rejoin_grace_expired"
    assert AgentPresence.objects.get(staff=expert).state == AgentState.WRAP_UP


def test_a_call_that_never_connects_ends_after_the_connect_timeout(
    answered: tuple[Call, StaffProfile, Client], settings: Any, on_commit: Callable[..., Any]
) -> None:
    call, _agent, _browser = answered
    with on_commit():
        assert calls_expire(now=timezone.now() + timedelta(seconds=settings.CALL_CONNECT_TIMEOUT_SECONDS + 1)) == 1
    call.refresh_from_db()
    assert call.end_reason == "connect_timeout"


def test_ending_the_service_hangs_up_the_live_call(
    answered: tuple[Call, StaffProfile, Client], janus_settings: JanusServer, on_commit: Callable[..., Any]
) -> None:
    call, agent, _browser = answered
    staff_browser = Client()
    staff_browser.force_login(agent.user)
    with on_commit():
        ended = staff_browser.post(reverse("queueing:agent-service-end"))
    assert ended.status_code == 200, ended.content
    assert ended.json()["state"] == AgentState.WRAP_UP
    call.refresh_from_db()
    assert (call.state, call.end_reason) == (CallState.ENDED, "agent_hung_up")
    assert not JanusVideoRoom(janus_settings).exists(room_id=call.room_id)
    assert QueueEntry.objects.get(pk=call.entry_id).state == EntryState.SERVED
    assert not CallParticipant.objects.filter(staff=agent, left_at__isnull=True).exists()
    actions = list(
        AuditRecord.objects.filter(target_type="calls.call", target_id=str(call.pk)).values_list("action", flat=True)
    )
    assert "calls.call.ended" in actions


def test_an_agent_who_ended_the_service_and_took_another_customer_is_not_disturbed_by_the_first_call(
    answered: tuple[Call, StaffProfile, Client],
    make_customer: Callable[..., Customer],
    on_commit: Callable[..., Any],
) -> None:
    first_call, agent, first_browser = answered
    staff_browser = Client()
    staff_browser.force_login(agent.user)
    with on_commit():
        staff_browser.post(reverse("queueing:agent-service-end"))
    with on_commit():
        agent_state_set(actor=SYSTEM, staff=agent, state=AgentState.AVAILABLE)  # wrap-up over
    customer = make_customer()
    visit = visit_with_gate1(business_code="activation", mobile=customer.mobile, customer=customer, state="queue_ready")
    with on_commit():
        entry = queue_entry_enqueue(visit_id=visit.pk)
    with on_commit():
        offer_accept(actor=agent.user, staff=agent, entry_id=entry.pk)
    # The first customer's hang-up finds their call already over.
    assert first_browser.post(reverse("calls:customer-call-hang-up")).status_code in (200, 404, 409)
    entry.refresh_from_db()
    assert entry.state == EntryState.CONNECTED
    assert AgentPresence.objects.get(staff=agent).state == AgentState.BUSY
    assert Call.objects.get(entry=entry).state == CallState.CONNECTING
    first_call.refresh_from_db()
    assert first_call.state == CallState.ENDED


def test_a_completed_visit_cannot_be_transferred_back_into_a_queue(
    answered: tuple[Call, StaffProfile, Client], on_commit: Callable[..., Any]
) -> None:
    from apps.visits.models import VisitOutcome
    from apps.visits.services import visit_close

    call, agent, _browser = answered
    other = service_queue_upsert(actor=SYSTEM, code="shared", name="综合", businesses=["activation"])
    visit_close(visit_id=call.visit_id, actor=SYSTEM, outcome=VisitOutcome.COMPLETED)
    staff_browser = Client()
    staff_browser.force_login(agent.user)
    with on_commit():
        refused = staff_browser.post(
            reverse("calls:transfer", args=[call.public_id]), {"queue": other.pk}, content_type="application/json"
        )
    assert refused.status_code == 409 and refused.json()["code"] == "visit_closed"
    assert not QueueEntry.objects.filter(queue=other).exists()
    call.refresh_from_db()
    assert call.state == CallState.CONNECTING  # nothing happened


def test_only_available_skilled_staff_can_be_invited_and_an_invited_agent_stays_an_agent(
    answered: tuple[Call, StaffProfile, Client],
    make_member: Callable[..., StaffProfile],
    make_customer: Callable[..., Customer],
    on_commit: Callable[..., Any],
) -> None:
    call, agent, _browser = answered
    staff_browser = Client()
    staff_browser.force_login(agent.user)

    def invite(staff: StaffProfile) -> Any:
        return staff_browser.post(
            reverse("calls:invite", args=[call.public_id]), {"staff": staff.pk}, content_type="application/json"
        )

    offline_expert = make_member(Role.EXPERT, available=False)
    assert invite(offline_expert).json()["code"] == "invitee_unavailable"
    # An agent serving another customer is busy: they cannot be pulled in.
    serving = make_member()
    customer = make_customer()
    visit = visit_with_gate1(business_code="activation", mobile=customer.mobile, customer=customer, state="queue_ready")
    with on_commit():
        other_entry = queue_entry_enqueue(visit_id=visit.pk)
    with on_commit():
        offer_accept(actor=serving.user, staff=serving, entry_id=other_entry.pk)
    assert invite(serving).json()["code"] == "invitee_unavailable"
    unskilled = make_member(Role.EXPERT)
    unskilled.skills.all().delete()
    assert invite(unskilled).json()["code"] == "invitee_not_skilled"
    assert set(call.participants.values_list("role", flat=True)) == {"customer", "agent"}

    colleague = make_member()
    assert invite(colleague).status_code == 201
    seat = call.participants.get(staff=colleague)
    assert seat.role == ParticipantRole.ASSISTING_AGENT
    assert AgentPresence.objects.get(staff=colleague).state == AgentState.BUSY


def test_a_transfer_to_a_named_available_agent_rings_them_keeping_the_gates(
    answered: tuple[Call, StaffProfile, Client],
    make_member: Callable[..., StaffProfile],
    on_commit: Callable[..., Any],
) -> None:
    call, agent, _browser = answered
    staff_browser = Client()
    staff_browser.force_login(agent.user)
    away = make_member(available=False)

    def transfer(staff: StaffProfile) -> Any:
        with on_commit():
            return staff_browser.post(
                reverse("calls:transfer", args=[call.public_id]), {"staff": staff.pk}, content_type="application/json"
            )

    assert transfer(away).json()["code"] == "transfer_target_unavailable"
    call.refresh_from_db()
    assert call.state == CallState.CONNECTING
    colleague = make_member()
    moved = transfer(colleague)
    assert moved.status_code == 200, moved.content
    call.refresh_from_db()
    assert call.end_reason == "transferred"
    entry = QueueEntry.objects.get(pk=moved.json()["entry"])
    assert entry.visit_id == call.visit_id and entry.state == EntryState.OFFERED
    assert entry.agent == AgentPresence.objects.get(staff=colleague)
    assert AgentPresence.objects.get(staff=colleague).state == AgentState.OFFERED
    assert Visit.objects.get(pk=call.visit_id).verification.state == "queue_ready"
    offered = AuditRecord.objects.filter(action="queueing.entry.offered", target_id=str(entry.pk)).get()
    assert offered.data["transferred_by"] == agent.employee_number


def test_the_database_seats_a_staff_member_in_at_most_one_live_call(
    answered: tuple[Call, StaffProfile, Client], make_customer: Callable[..., Customer]
) -> None:
    from django.db import IntegrityError, transaction

    call, agent, _browser = answered
    customer = make_customer()
    visit = visit_with_gate1(business_code="activation", mobile=customer.mobile, customer=customer, state="queue_ready")
    entry = QueueEntry.objects.create(
        visit=visit, queue=call.entry.queue, business_code="activation", level="ordinary",
        enqueued_at=timezone.now(), priority_key=0.0,
    )  # fmt: skip
    second = Call.objects.create(visit=visit, entry=entry, janus_server=call.janus_server)
    with pytest.raises(IntegrityError), transaction.atomic():
        CallParticipant.objects.create(call=second, role=ParticipantRole.AGENT, staff=agent)
