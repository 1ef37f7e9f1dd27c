"""Agents' presence (R2.6): available, away or offline, assisting a call, and the end of a service."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.audit.actions import AuditAction
from apps.audit.services import AnyActor, audit_record
from apps.common.errors import ValidationFailed
from apps.common.fsm import fsm_step
from apps.queueing.models import (
    AgentPresence,
    AgentState,
    EndReason,
    EntryState,
    QueueEntry,
    ServiceQueue,
)
from apps.queueing.services._common import (
    _agent_event,
    _schedule_dispatch,
    step_refused,
)
from apps.queueing.signals import agent_service_closing
from apps.staff.models import AgentSkill, StaffProfile


def _presence_for(staff: StaffProfile, now: datetime) -> AgentPresence:
    presence, _created = AgentPresence.objects.get_or_create(staff=staff, defaults={"state_since": now})
    return AgentPresence.objects.select_for_update().get(pk=presence.pk)


@transaction.atomic
def agent_presence_ensure(*, staff: StaffProfile, actor: AnyActor, now: datetime | None = None) -> AgentPresence:
    """The staff member's presence, created offline the first time their agent workspace connects.

    Idempotent: an existing presence comes back unchanged and unaudited; a new
    one is audited (``queueing.agent.presence_created``). Two sockets racing
    on the first connection meet in the one-to-one constraint, which
    ``get_or_create`` resolves to the same row.
    """
    presence, created = AgentPresence.objects.get_or_create(
        staff=staff, defaults={"state_since": now or timezone.now()}
    )
    if created:
        audit_record(
            actor=actor,
            action=AuditAction.AGENT_PRESENCE_CREATED,
            target=presence,
            data={"agent": staff.employee_number},
        )
    return presence


# The states an agent (or their supervisor) may choose; the others follow from offers and calls.
_SETTABLE_STATES = (AgentState.AVAILABLE, AgentState.AWAY, AgentState.OFFLINE)


# Not durable: a test makes its whole cast of agents available in one transaction.
@transaction.atomic
def agent_state_set(
    *, actor: AnyActor, staff: StaffProfile, state: AgentState, now: datetime | None = None
) -> AgentPresence:
    """An agent (or their supervisor) sets available, away or offline (R2.6)."""
    now = now or timezone.now()
    if state not in _SETTABLE_STATES:
        raise ValidationFailed(_("An agent can only be set available, away or offline."), code="invalid_state")
    presence = _presence_for(staff, now)
    if presence.state == state:
        return presence
    previous = presence.state
    transition = {
        AgentState.AVAILABLE: presence.go_available,
        AgentState.AWAY: presence.go_away,
        AgentState.OFFLINE: presence.go_offline,
    }[state]
    fsm_step(transition, now, error=step_refused)
    presence.save()
    audit_record(
        actor=actor, action=AuditAction.AGENT_STATE_CHANGED, target=presence, data={"from": previous, "to": state.value}
    )
    _agent_event(presence, "state")
    if state == AgentState.AVAILABLE:
        for queue_id in _queues_for_agent(presence):
            _schedule_dispatch(queue_id)
    return presence


def _queues_for_agent(presence: AgentPresence) -> list[int]:
    businesses = set(AgentSkill.objects.filter(staff_id=presence.staff_id).values_list("business_code", flat=True))
    return [queue.pk for queue in ServiceQueue.objects.all() if businesses & set(queue.businesses)]


@transaction.atomic
def agent_assist_start(*, actor: AnyActor, staff: StaffProfile, now: datetime | None = None) -> AgentPresence:
    """An available expert or agent joins someone else's call (R1.2): busy until it ends.

    Someone not available (offline, away, ringing, busy) keeps their state.
    """
    now = now or timezone.now()
    presence = _presence_for(staff, now)
    if presence.state != AgentState.AVAILABLE:
        return presence
    fsm_step(presence.assist, now, error=step_refused)
    presence.save()
    audit_record(
        actor=actor, action=AuditAction.AGENT_STATE_CHANGED, target=presence, data={"to": "busy", "assisting": True}
    )
    _agent_event(presence, "state")
    return presence


# Not durable: calls' call_end releases the agent inside its own transaction.
@transaction.atomic
def agent_service_end(
    *, actor: AnyActor, staff: StaffProfile, now: datetime | None = None, call_failed: bool = False
) -> AgentPresence:
    """The agent's service ended: wrap-up (after-call work) for the queue's configured time.

    Called by calls once the agent's call has ended (``_release``); the
    agent's own "End service" goes through ``agent_service_close``, which
    hangs the call up first, so that no agent is released from a live call.

    ``call_failed``: the call broke down (video server failed, a participant
    never came back) rather than ended; the customer may queue again with
    priority (``queue_entry_rejoin``).
    """
    now = now or timezone.now()
    presence = _presence_for(staff, now)
    entry = (
        QueueEntry.objects.select_for_update(of=("self",))
        .select_related("queue")
        .filter(agent=presence, state=EntryState.CONNECTED)
        .first()
    )
    wrap_up = timedelta(seconds=entry.queue.wrap_up_seconds if entry else 0)
    fsm_step(presence.service_ended, now, now + wrap_up, error=step_refused)
    presence.save()
    if entry is not None:
        # The entry leaves the live set, which frees the agent in the unique
        # index; the call and service records (later apps) carry the service on.
        fsm_step(entry.finish, now, EndReason.CALL_FAILED if call_failed else EndReason.ANSWERED, error=step_refused)
        entry.save()
    audit_record(actor=actor, action=AuditAction.AGENT_STATE_CHANGED, target=presence, data={"to": "wrap_up"})
    _agent_event(presence, "wrap_up")
    return presence


@transaction.atomic(durable=True)
def agent_service_close(*, actor: AnyActor, staff: StaffProfile, now: datetime | None = None) -> AgentPresence:
    """The agent's "End service": hang up the live call and start wrap-up, as one action (issue 16).

    Ending the service used to release the agent while the call stayed
    connected; the next customer could then be offered to an agent still in a
    call. Now the calls app ends the staff member's live call in this
    transaction (``agent_service_closing``; audited as an agent hang-up),
    and that call's end starts the wrap-up. Only a busy agent with no call
    left (nothing to hang up) is put in wrap-up here directly. Nothing is
    locked before the signal: calls locks the call, then the presence.
    """
    responses = agent_service_closing.send(sender=AgentPresence, staff=staff, actor=actor)
    if any(ended for _receiver, ended in responses):
        return AgentPresence.objects.get(staff=staff)
    return agent_service_end(actor=actor, staff=staff, now=now)
