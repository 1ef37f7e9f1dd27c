"""Seed services (visits) with their calls, queue entries and gate results, at chosen times.

The rows are written directly, as a record of what happened (the services
that produce them are tested in their own apps); times are set explicitly so
that the report's numbers can be computed by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apps.calls.models import Call, CallEndReason, CallParticipant, ParticipantRole
from apps.customers.models import Account, Customer
from apps.gates.models import GateAttempt, GateProgress
from apps.queueing.models import AgentPresence, QueueEntry, ServiceQueue
from apps.staff.models import StaffProfile
from apps.visits.models import Visit
from tests.factories import visit_with_gate1


@dataclass
class Seeded:
    visit: Visit
    call: Call | None
    entry: QueueEntry | None


def presence_of(staff: StaffProfile, now: datetime) -> AgentPresence:
    presence = AgentPresence.objects.filter(staff=staff).first()
    return presence or AgentPresence.objects.create(staff=staff, state_since=now)


def seed_service(
    *,
    customer: Customer | None,
    started: datetime,
    business: str = "activation",
    state: str = "queue_ready",
    refusal_code: str = "",
    outcome: str = "",
    outcome_reason: str = "",
    account: Account | None = None,
    queue: ServiceQueue | None = None,
    agent: StaffProfile | None = None,
    wait_seconds: float | None = None,
    abandoned_after: float | None = None,
    handling_seconds: float | None = None,
    gates: dict[str, Any] | None = None,
    attempts: list[dict[str, Any]] | None = None,
    read_name: str = "",
) -> Seeded:
    """One visit started at ``started``.

    With ``queue``: it joined the queue one minute after starting; answered by
    ``agent`` after ``wait_seconds`` (then a call that lasted
    ``handling_seconds``), or abandoned after ``abandoned_after``.
    ``gates``: GateProgress fields (``state``, ``failed_gate``, ``identity_passed_at`` …).
    """
    visit = visit_with_gate1(
        business_code=business,
        mobile=customer.mobile if customer else "13900000000",
        customer=customer,
        account=account,
        state=state,
        refusal_code=refusal_code,
        outcome=outcome,
        outcome_reason=outcome_reason or refusal_code,
        read_name=read_name,
    )
    Visit.objects.filter(pk=visit.pk).update(created_at=started)
    visit.refresh_from_db()
    entry = call = None
    if queue is not None:
        enqueued = started + timedelta(minutes=1)
        if wait_seconds is not None:
            assert agent is not None
            answered = enqueued + timedelta(seconds=wait_seconds)
            entry = QueueEntry.objects.create(
                visit=visit,
                queue=queue,
                business_code=business,
                level="ordinary",
                state="served",
                enqueued_at=enqueued,
                priority_key=0.0,
                agent=presence_of(agent, started),
                answered_at=answered,
                ended_at=answered + timedelta(seconds=handling_seconds or 0),
                end_reason="answered",
            )
            call = Call(visit=visit, entry=entry, janus_server="test-janus")
            call.connect(answered)
            if handling_seconds is not None:
                call.end(answered + timedelta(seconds=handling_seconds), CallEndReason.AGENT_HUNG_UP)
            call.save()
            CallParticipant.objects.create(call=call, role=ParticipantRole.CUSTOMER)
            # Ending a call sets every seat's left_at (one live seat per staff member).
            CallParticipant.objects.create(
                call=call, role=ParticipantRole.AGENT, staff=agent, joined_at=answered, left_at=call.ended_at
            )
        else:
            assert abandoned_after is not None
            entry = QueueEntry.objects.create(
                visit=visit,
                queue=queue,
                business_code=business,
                level="ordinary",
                state="abandoned",
                enqueued_at=enqueued,
                priority_key=0.0,
                ended_at=enqueued + timedelta(seconds=abandoned_after),
                end_reason="customer_left",
            )
    if gates is not None:
        progress = GateProgress.objects.create(visit=visit, started_at=started, **gates)
        for attempt in attempts or []:
            GateAttempt.objects.create(progress=progress, call=call, started_at=started, **attempt)
    return Seeded(visit=visit, call=call, entry=entry)
