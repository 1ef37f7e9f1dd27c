"""A supervisor listens in on or joins a live call of their team (issue 21, item 4), against a real Janus."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.actions import AuditAction
from apps.audit.models import AuditRecord
from apps.calls.models import Call, CallParticipant, CallState, ParticipantRole, SupervisorMode
from apps.calls.services import call_supervisor_join, calls_expire
from apps.common.errors import NotAllowed, PermissionDenied, ValidationFailed
from apps.queueing.models import AgentState
from apps.queueing.services.agents import agent_state_set
from apps.staff.models import StaffProfile
from apps.staff.roles import Role
from apps.staff.services import agent_skill_set
from tests.calls.test_call_lifecycle import _post_events, _videoroom
from tests.conftest import SYSTEM
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db

Answered = tuple[Call, StaffProfile, Client]


@pytest.fixture
def team_supervisor(answered: Answered, make_member: Callable[..., StaffProfile]) -> StaffProfile:
    """The serving agent's supervisor (test setup: the team is set directly)."""
    _call, agent, _browser = answered
    supervisor = make_member(Role.SUPERVISOR, available=False)
    StaffProfile.objects.filter(pk=agent.pk).update(supervisor=supervisor)
    return supervisor


def _browser(staff: StaffProfile, language: str = "en") -> Client:
    client = Client(headers={"accept-language": language})
    force_login_verified(client, staff.user)
    return client


def _enter(browser: Client, call: Call, mode: str) -> Any:
    return browser.post(
        reverse("calls:supervise", args=[call.public_id]), {"mode": mode}, content_type="application/json"
    )


def _roles_seen_by_customer(customer_browser: Client) -> list[str]:
    return sorted(p["role"] for p in customer_browser.get(reverse("calls:customer-call")).json()["participants"])


def _roles_seen_by_agent(call: Call, agent: StaffProfile) -> list[str]:
    answer = _browser(agent).get(reverse("calls:staff-call", args=[call.public_id])).json()
    return sorted(p["role"] for p in answer["participants"])


def _supervisor_audit(call: Call) -> list[AuditRecord]:
    return list(
        AuditRecord.objects.filter(
            action__in=(AuditAction.CALL_SUPERVISOR_ENTERED, AuditAction.CALL_SUPERVISOR_LEFT),
            target_id=str(call.pk),
        ).order_by("pk")
    )


def test_a_team_supervisor_listens_silently_unseen_by_customer_and_agent(
    answered: Answered, team_supervisor: StaffProfile
) -> None:
    call, agent, customer_browser = answered
    answer = _enter(_browser(team_supervisor), call, "listen")
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert body["role"] == "supervisor" and body["mode"] == "listen" and body["present"] is True
    # Credentials to enter the room, but the page must not publish.
    assert body["join"]["room_id"] == call.room_id and body["join"]["publish"] is False
    seat = CallParticipant.objects.get(call=call, staff=team_supervisor)
    assert (seat.role, seat.supervisor_mode, seat.left_at) == (ParticipantRole.SUPERVISOR, SupervisorMode.LISTEN, None)
    # Silent: neither the customer nor the agent is shown the listener.
    assert _roles_seen_by_customer(customer_browser) == ["agent", "customer"]
    assert _roles_seen_by_agent(call, agent) == ["agent", "customer"]
    (record,) = _supervisor_audit(call)
    assert record.action == AuditAction.CALL_SUPERVISOR_ENTERED
    assert record.data["mode"] == "listen" and record.data["supervisor"] == team_supervisor.employee_number
    assert record.actor_label == team_supervisor.user.username


def test_a_listener_switches_to_join_and_customer_and_agent_are_told(
    answered: Answered,
    team_supervisor: StaffProfile,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    call, agent, customer_browser = answered
    browser = _browser(team_supervisor)
    assert _enter(browser, call, "listen").status_code == 201
    with django_capture_on_commit_callbacks() as callbacks:
        joined = _enter(browser, call, "join")
    assert joined.status_code == 201, joined.json()
    assert joined.json()["mode"] == "join" and joined.json()["join"]["publish"] is True
    # One seat, switched: not a second participant.
    seats = CallParticipant.objects.filter(call=call, staff=team_supervisor)
    assert [(s.supervisor_mode, s.left_at) for s in seats] == [(SupervisorMode.JOIN, None)]
    assert callbacks, "joining must announce the supervisor (broadcast after commit)"
    assert _roles_seen_by_customer(customer_browser) == ["agent", "customer", "supervisor"]
    assert _roles_seen_by_agent(call, agent) == ["agent", "customer", "supervisor"]
    entered = [r.data for r in _supervisor_audit(call)]
    assert [(d["mode"], d["previous_mode"]) for d in entered] == [("listen", ""), ("join", "listen")]


def test_janus_fills_in_when_the_supervisor_joined_the_room(answered: Answered, team_supervisor: StaffProfile) -> None:
    call, _agent, _customer = answered
    handle = _enter(_browser(team_supervisor), call, "join").json()["join"]["handle"]
    assert _post_events(Client(), [_videoroom("joined", call.room_id, 777, display=handle)]).status_code == 200
    seat = CallParticipant.objects.get(call=call, staff=team_supervisor)
    assert seat.joined_at is not None and seat.janus_feed_id == 777


def test_only_the_team_supervisor_may_enter_a_live_call_and_only_once(
    answered: Answered, team_supervisor: StaffProfile, make_member: Callable[..., StaffProfile]
) -> None:
    call, agent, _customer = answered
    other_team = make_member(Role.SUPERVISOR, available=False)
    refused = _enter(_browser(other_team, "zh-hans"), call, "join")
    assert refused.status_code == 403 and refused.json()["code"] == "not_team_supervisor"
    assert "主管" in refused.json()["message"]
    # Agents (and experts) may not supervise at all: the API refuses their role.
    assert _enter(_browser(agent), call, "listen").status_code == 403
    with pytest.raises(PermissionDenied) as not_supervisor:
        call_supervisor_join(call_id=call.pk, actor=agent.user, supervisor=agent, mode="listen")
    assert not_supervisor.value.code == "not_a_supervisor"
    # A forged mode.
    assert _enter(_browser(team_supervisor), call, "barge").status_code == 400
    with pytest.raises(ValidationFailed):
        call_supervisor_join(call_id=call.pk, actor=SYSTEM, supervisor=team_supervisor, mode="barge")
    # Repeated: join twice, or back to listening once joined.
    browser = _browser(team_supervisor, "en")
    assert _enter(browser, call, "join").status_code == 201
    for mode in ("join", "listen"):
        again = _enter(browser, call, mode)
        assert again.status_code == 409 and again.json()["code"] == "already_in_call", again.json()
        assert again.json()["message"] == "You are already in this call."
    assert CallParticipant.objects.filter(call=call, role=ParticipantRole.SUPERVISOR).count() == 1
    assert len(_supervisor_audit(call)) == 1


def test_a_supervisor_cannot_enter_an_ended_call(answered: Answered, team_supervisor: StaffProfile) -> None:
    call, _agent, customer_browser = answered
    assert customer_browser.post(reverse("calls:customer-call-hang-up")).status_code == 200
    refused = _enter(_browser(team_supervisor, "zh-hans"), call, "listen")
    assert refused.status_code == 409 and refused.json()["code"] == "call_ended"
    assert not CallParticipant.objects.filter(call=call, staff=team_supervisor).exists()
    with pytest.raises(NotAllowed):
        call_supervisor_join(call_id=call.pk, actor=SYSTEM, supervisor=team_supervisor, mode="join")


def test_the_supervisor_leaves_and_the_call_goes_on(answered: Answered, team_supervisor: StaffProfile) -> None:
    call, _agent, customer_browser = answered
    browser = _browser(team_supervisor)
    assert _enter(browser, call, "join").status_code == 201
    left = browser.post(reverse("calls:supervise-leave", args=[call.public_id]))
    assert left.status_code == 200, left.json()
    assert left.json()["present"] is False and "join" not in left.json()
    seat = CallParticipant.objects.get(call=call, staff=team_supervisor)
    assert seat.left_at is not None
    call.refresh_from_db()
    assert call.state != CallState.ENDED
    assert _roles_seen_by_customer(customer_browser) == ["agent", "customer"]
    assert [r.action for r in _supervisor_audit(call)] == [
        AuditAction.CALL_SUPERVISOR_ENTERED,
        AuditAction.CALL_SUPERVISOR_LEFT,
    ]
    again = browser.post(reverse("calls:supervise-leave", args=[call.public_id]))
    assert again.status_code == 409 and again.json()["code"] == "not_in_call"
    # The seat of a supervisor who left answers as left.
    assert browser.get(reverse("calls:supervise", args=[call.public_id])).json()["present"] is False
    # And they may come back, in a new seat.
    assert _enter(browser, call, "listen").status_code == 201
    assert CallParticipant.objects.filter(call=call, staff=team_supervisor, left_at__isnull=True).count() == 1


def test_the_calls_end_closes_the_supervisors_seat(answered: Answered, team_supervisor: StaffProfile) -> None:
    call, _agent, customer_browser = answered
    browser = _browser(team_supervisor)
    assert _enter(browser, call, "listen").status_code == 201
    assert customer_browser.post(reverse("calls:customer-call-hang-up")).status_code == 200
    seat = CallParticipant.objects.get(call=call, staff=team_supervisor)
    assert seat.left_at is not None
    answer = browser.get(reverse("calls:supervise", args=[call.public_id])).json()
    assert answer["state"] == "ended" and answer["present"] is False and "join" not in answer


def test_a_supervisor_dropping_out_does_not_end_the_call(answered: Answered, team_supervisor: StaffProfile) -> None:
    call, _agent, _customer = answered
    _enter(_browser(team_supervisor), call, "join")
    long_ago = timezone.now() - timedelta(hours=1)
    CallParticipant.objects.filter(call=call, staff=team_supervisor).update(disconnected_at=long_ago)
    Call.objects.filter(pk=call.pk).update(created_at=timezone.now())
    calls_expire()
    call.refresh_from_db()
    assert call.state != CallState.ENDED


def test_the_wallboard_lists_the_teams_live_calls_with_listen_and_join(
    answered: Answered, team_supervisor: StaffProfile, make_member: Callable[..., StaffProfile]
) -> None:
    call, agent, _customer = answered
    page = _browser(team_supervisor, "zh-hans").get(reverse("console:supervisor"))
    assert page.status_code == 200
    html = page.content.decode()
    assert f'data-call="{call.public_id}"' in html and agent.display_name in html
    supervise = reverse("console:supervisor-call", args=[call.public_id])
    assert f'href="{supervise}?mode=listen">旁听</a>' in html
    assert f'href="{supervise}?mode=join">加入</a>' in html
    # Another team's supervisor does not see it.
    other = make_member(Role.SUPERVISOR, available=False)
    assert f'data-call="{call.public_id}"' not in _browser(other).get(reverse("console:supervisor")).content.decode()
    # The call page loads the call client and its own script, no inline handlers.
    call_page = _browser(team_supervisor, "zh-hans").get(f"{supervise}?mode=listen").content.decode()
    assert "console/supervisor_call.js" in call_page and "js/remotebank-call.js" in call_page
    assert "onclick" not in call_page


def test_the_invite_list_shows_only_available_colleagues_skilled_for_the_calls_business(
    answered: Answered, make_member: Callable[..., StaffProfile], on_commit: Callable[..., Any]
) -> None:
    _call, agent, _customer = answered
    skilled = make_member(Role.EXPERT)
    unskilled = make_member(Role.EXPERT)
    unskilled.skills.all().delete()
    agent_skill_set(actor=SYSTEM, staff=unskilled, business_code="password_reset", proficiency=3)
    away = make_member(Role.EXPERT)
    offline = make_member(Role.AGENT)
    with on_commit():
        agent_state_set(actor=SYSTEM, staff=away, state=AgentState.AWAY)
        agent_state_set(actor=SYSTEM, staff=offline, state=AgentState.OFFLINE)
    make_member(Role.EXPERT, available=False)  # never logged in: no presence at all
    invitees = _browser(agent, "zh-hans").get(reverse("console:agent-invitees")).json()["invitees"]
    assert [person["id"] for person in invitees] == [skilled.pk]
    assert invitees[0]["state"] == "available" and "空闲" in invitees[0]["name"]


def _forged_publisher(call: Call, join: dict[str, Any], stop: Any, joined: Any, result: dict[str, Any]) -> None:
    """A client that ignores its listen-only credentials: joins the room as a publisher (in its own loop)."""
    import asyncio

    from apps.calls.integrations.janus import _JanusApi, _VideoRoomHandle, janus_server

    async def run() -> None:
        server = janus_server(call.janus_server)
        async with _JanusApi(server.admin_ws_url, api_secret=server.api_secret) as api:
            handle = _VideoRoomHandle(api)
            await handle.open()
            body = {
                "request": "join",
                "room": call.room_id,
                "ptype": "publisher",
                "display": join["handle"],
                "token": join["room_token"],
            }
            transaction = await api.transport.send(
                {"janus": "message", "body": body}, session_id=handle.session_id, handle_id=handle.handle_id
            )
            reply = await transaction.get(matcher=lambda message: message.get("janus") in ("event", "error"))
            await transaction.done()
            result["feed"] = reply["plugindata"]["data"].get("id")
            joined.set()
            while not stop.is_set():
                await asyncio.sleep(0.1)
            await handle.close()

    try:
        asyncio.run(run())
    except Exception as exc:  # reported to the test, which fails on it
        result["error"] = repr(exc)
        joined.set()


def test_a_listener_that_publishes_anyway_is_refused_audited_and_kicked_from_the_room(
    answered: Answered, team_supervisor: StaffProfile, on_commit: Callable[..., Any]
) -> None:
    """Listen-only credentials are honoured by the page; a forged client that publishes is stopped by the server."""
    import threading

    from apps.calls.integrations.janus import JanusVideoRoom, janus_server

    call, _agent, customer_browser = answered
    join = _enter(_browser(team_supervisor), call, "listen").json()["join"]
    assert join["publish"] is False
    stop, joined, result = threading.Event(), threading.Event(), {}
    forger = threading.Thread(target=_forged_publisher, args=(call, join, stop, joined, result), daemon=True)
    forger.start()
    try:
        assert joined.wait(15) and "error" not in result, result
        feed = result["feed"]
        room = JanusVideoRoom(janus_server(call.janus_server))
        assert feed in [p.id for p in room.participants(room_id=call.room_id)]
        events = [
            _videoroom("joined", call.room_id, feed, display=join["handle"]),
            _videoroom("published", call.room_id, feed),
        ]
        with on_commit():
            assert _post_events(Client(), events).status_code == 200
        seat = CallParticipant.objects.get(call=call, staff=team_supervisor)
        # Never counted as publishing, still listening, and shown to nobody.
        assert seat.publishing_since is None and seat.supervisor_mode == SupervisorMode.LISTEN and seat.left_at is None
        assert _roles_seen_by_customer(customer_browser) == ["agent", "customer"]
        (refused,) = AuditRecord.objects.filter(
            action=AuditAction.CALL_SUPERVISOR_PUBLISH_REFUSED, target_id=str(call.pk)
        )
        assert refused.data == {"supervisor": team_supervisor.pk, "feed": feed}
        # The forged feed is gone from the room on Janus.
        assert feed not in [p.id for p in room.participants(room_id=call.room_id)]
    finally:
        stop.set()
        forger.join(10)
