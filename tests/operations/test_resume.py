"""An interrupted service resumes with its record intact (R4.2).

The customer's connection drops for good after Gate 2; the call ends when
the rejoin grace expires, and the service stays open. The customer joins
again from their page, is put at the front, another agent answers, and the
service continues where it stopped: Gate 2 is not repeated, gates 3–4 and
the business are done in the second call, and the record holds both calls.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.urls import reverse
from django.utils import timezone

from apps.calls.models import Call, CallEndReason, CallState
from apps.calls.services import call_participant_event, calls_expire
from apps.gates.models import GateAttempt, GateProgress, GateState
from apps.queueing.models import AgentState
from apps.queueing.services.agents import agent_state_set
from apps.staff.roles import Role
from apps.staff.services import agent_skill_set, staff_member_upsert
from apps.visits.models import VisitOutcome
from tests.conftest import SYSTEM
from tests.operations.conftest import KIT, InCall, capture, person_photos
from tests.security.helpers import force_login_verified

GOOD_PIN = "739215"


def _connect(call: Call, on_commit: Callable[..., Any]) -> None:
    for feed, participant in enumerate(call.participants.all(), start=11):
        for event in ("joined", "published"):
            with on_commit():
                call_participant_event(event=event, handle=participant.handle, room_id=call.room_id, feed_id=feed)


def test_a_service_cut_off_after_gate_two_resumes_in_a_new_call_without_repeating_it(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], core: Any, settings: Any, branch: Any
) -> None:
    in_call = make_in_call(person=KIT, business="password_reset")
    first = in_call.call
    with on_commit():
        assert in_call.staff_client.post(reverse("gates:call-gate-identity", args=[first.public_id])).status_code == 202

    # The customer's phone loses the network for good.
    customer = first.participants.get(role="customer")
    with on_commit():
        call_participant_event(event="left", room_id=first.room_id, feed_id=customer.janus_feed_id)
    later = timezone.now() + timedelta(seconds=settings.CALL_REJOIN_GRACE_SECONDS + 5)
    with on_commit():
        assert calls_expire(now=later) == 1
    first.refresh_from_db()
    assert (first.state, first.end_reason) == (CallState.ENDED, CallEndReason.REJOIN_GRACE_EXPIRED)
    in_call.visit.refresh_from_db()
    assert in_call.visit.outcome == ""  # interrupted, not concluded

    # Another agent is free; the customer joins again from their page.
    second_agent = staff_member_upsert(
        actor=SYSTEM,
        username="resume_agent",
        employee_number="RA001",
        display_name="坐席乙",
        role=Role.AGENT,
        branch=branch,
    )
    agent_skill_set(actor=SYSTEM, staff=second_agent, business_code="password_reset", proficiency=4)
    with on_commit():
        agent_state_set(actor=SYSTEM, staff=second_agent, state=AgentState.AVAILABLE)
    with on_commit():
        rejoined = in_call.customer_client.post(reverse("queueing:visit-queue-join"), content_type="application/json")
    assert rejoined.status_code in (200, 201), rejoined.content
    staff = force_login_verified(in_call.staff_client, second_agent.user)
    offer = staff.get(reverse("queueing:agent-me")).json()["entry"]
    assert offer["state"] == "offered"
    with on_commit():
        accepted = staff.post(
            reverse("queueing:offer-accept", kwargs={"entry_id": offer["id"]}), content_type="application/json"
        )
    assert accepted.status_code == 200, accepted.content
    second = Call.objects.exclude(pk=first.pk).get(visit=in_call.visit)
    _connect(second, on_commit)

    # The record continues: Gate 2 passed in the first call counts.
    status = in_call.staff_client.get(reverse("gates:call-gates", args=[second.public_id])).json()
    assert status["state"] == "face" and status["gates"][0]["status"] == "passed"
    in_call.call, in_call.agent = second, second_agent
    snapshot = capture(in_call, person_photos(KIT)[2])
    with on_commit():
        in_call.staff_client.post(
            reverse("gates:call-gate-face", args=[second.public_id]),
            {"snapshot": str(snapshot.public_id)},
            content_type="application/json",
        )
    with on_commit():
        in_call.staff_client.post(reverse("gates:call-gate-questions", args=[second.public_id]))
    right = GateProgress.objects.get(visit=in_call.visit).attempts.get(gate="questions").question_draw.correct
    with on_commit():
        in_call.customer_client.post(
            reverse("gates:visit-gate-answers"), {"answers": right}, content_type="application/json"
        )
    assert GateProgress.objects.get(visit=in_call.visit).state == GateState.PASSED
    started = in_call.staff_client.post(
        reverse("operations:call-operation-start", args=[second.public_id]),
        {},
        content_type="application/json",
        headers={"idempotency-key": "resume-0001"},
    ).json()
    with on_commit():
        done = in_call.customer_client.post(
            reverse("operations:visit-operation-pin", args=[started["id"]]),
            {"pin": GOOD_PIN, "pin_repeat": GOOD_PIN},
            content_type="application/json",
        )
    assert done.json()["operation"]["state"] == "succeeded"

    in_call.visit.refresh_from_db()
    assert in_call.visit.outcome == VisitOutcome.COMPLETED
    calls_of = dict(GateAttempt.objects.filter(progress__visit=in_call.visit).values_list("gate", "call_id"))
    assert calls_of == {"identity": first.pk, "face": second.pk, "questions": second.pk}
    assert in_call.visit.calls.count() == 2
