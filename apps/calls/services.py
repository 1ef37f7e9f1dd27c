"""Call lifecycle (R1): create on answer, open the Janus room, follow who
really publishes (Janus events), invite, transfer, hang up, rejoin grace.

Janus requests are side effects: they run after the transaction that decided
them commits (a Celery task), never inside it, and their failures come back
as state changes of their own.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.audit.actions import AuditAction
from apps.audit.services import Actor, AnyActor, audit_record
from apps.calls.integrations.janus import (
    VIDEOROOM_ERROR_ROOM_EXISTS,
    JanusError,
    JanusVideoRoom,
    UnknownJanusServer,
    janus_server,
    janus_servers,
)
from apps.calls.models import (
    ASSISTING_ROLES,
    Call,
    CallEndReason,
    CallParticipant,
    CallState,
    ParticipantRole,
    SupervisorMode,
)
from apps.calls.selectors import participant_for
from apps.calls.signals import call_ended
from apps.common.errors import NotAllowed, NotFound, PermissionDenied, ValidationFailed
from apps.common.fsm import fsm_step
from apps.common.locking import lock_object
from apps.common.transactions import enqueue_on_commit
from apps.queueing import events
from apps.queueing.models import AgentPresence, AgentState, QueueEntry, ServiceQueue
from apps.queueing.services.agents import agent_assist_start, agent_service_end
from apps.queueing.services.configuration import queue_for_business
from apps.queueing.services.entries import queue_entry_enqueue
from apps.queueing.services.offers import queue_entry_offer_to
from apps.staff.models import AgentSkill, StaffProfile
from apps.staff.roles import Role
from apps.staff.selectors import staff_profile_for

MEDIA = Actor.system("media")
LIVE_CALL_STATES = (CallState.CONNECTING, CallState.CONNECTED)
# Calls that broke down rather than ended: the customer may come back with priority.
FAILED_CALL_REASONS = (CallEndReason.MEDIA_SERVER_FAILED, CallEndReason.REJOIN_GRACE_EXPIRED)


def _call_over(call: Call) -> NotAllowed:
    """The answer to a call transition the state machine refuses: the call has ended."""
    return NotAllowed(_("The call is already over."), code="call_ended", extra={"state": call.state})


def _call_not_found() -> NotFound:
    return NotFound(_("This call does not exist."), code="call_not_found")


def _lock(call_id: int) -> Call:
    """Lock the call's row (its visit joined, not locked) for the rest of the transaction."""
    return lock_object(Call.objects, not_found=_call_not_found, related=("visit",), pk=call_id)


def _notify(call: Call, event: str, **extra: Any) -> None:
    """Tell everyone in the call (customer page and staff consoles), after commit."""
    payload = {"type": events.VISIT_UPDATE, "event": event, "call": str(call.public_id), **extra}
    staff_event = {"type": events.AGENT_UPDATE, "event": f"call_{event}", "call": str(call.public_id), **extra}
    presences = AgentPresence.objects.filter(staff__calls__call=call).values_list("pk", flat=True)
    # One send for the customer's page and every staff console in the call.
    events.broadcast_many_on_commit(
        [(events.visit_group(call.visit_id), payload)]
        + [(events.agent_group(presence_id), staff_event) for presence_id in presences]
    )


def _least_loaded_server() -> str:
    """The configured Janus server with the fewest live calls (ties: first configured)."""
    names = [server.name for server in janus_servers()]
    if not names:
        raise NotAllowed(_("No video server is configured."), code="no_media_server")
    live = dict(
        Call.objects.filter(state__in=(CallState.CONNECTING, CallState.CONNECTED), janus_server__in=names)
        .values_list("janus_server")
        .annotate(n=Count("pk"))
        .values_list("janus_server", "n")
    )
    return min(names, key=lambda name: (live.get(name, 0), names.index(name)))


def call_create_for_entry(*, entry: QueueEntry, staff: StaffProfile) -> Call:
    """Create the call of an answered queue entry (inside the acceptance's transaction)."""
    server = _least_loaded_server()
    call = Call(visit_id=entry.visit_id, entry=entry, janus_server=server)
    call.record_dir = str(Path(settings.JANUS_RECORDINGS_DIR) / str(call.public_id))
    call.save()
    CallParticipant.objects.create(call=call, role=ParticipantRole.CUSTOMER)
    CallParticipant.objects.create(call=call, role=ParticipantRole.AGENT, staff=staff)
    audit_record(
        actor=MEDIA,
        action=AuditAction.CALL_CREATED,
        target=call,
        data={"server": server, "room": call.room_id, "agent": staff.employee_number, "entry": entry.pk},
    )
    from apps.calls.tasks import call_room_open_task

    enqueue_on_commit(call_room_open_task, call.pk)
    return call


def call_room_open(*, call_id: int) -> Call:
    """Create the call's private, recorded room on its Janus server. Idempotent."""
    call = Call.objects.get(pk=call_id)
    if call.room_open or call.state == CallState.ENDED:
        return call
    Path(call.record_dir).mkdir(parents=True, exist_ok=True)
    try:
        JanusVideoRoom(janus_server(call.janus_server)).create_room(
            room_id=call.room_id,
            secret=call.room_secret,
            description=f"call {call.public_id}",
            record_dir=call.record_dir,
        )
    except JanusError as failure:
        if failure.code == VIDEOROOM_ERROR_ROOM_EXISTS:
            # A retried task whose first attempt created the room before
            # failing to record it: the room is ours (ids are random, 52-bit).
            return _room_opened(call_id)
        with transaction.atomic(durable=True):
            call = _lock(call_id)
            if call.state != CallState.ENDED:
                _end(call, reason=CallEndReason.MEDIA_SERVER_FAILED, actor=MEDIA, detail=str(failure))
        return call
    return _room_opened(call_id)


@transaction.atomic(durable=True)
def _room_opened(call_id: int) -> Call:
    call = _lock(call_id)
    if call.room_open:
        return call
    call.room_open = True
    call.save(update_fields=["room_open"])
    audit_record(actor=MEDIA, action=AuditAction.CALL_ROOM_OPENED, target=call, data={"room": call.room_id})
    _notify(call, "room_ready")
    return call


def call_participant_event(
    *,
    event: str,
    handle: str | None = None,
    room_id: int | None = None,
    feed_id: int | None = None,
    at: datetime | None = None,
) -> Call | None:
    """Apply what Janus reported about a participant (joined, published, left).

    Janus names the participant by display (our handle) when it joins, but
    only by room and feed id when it unpublishes or leaves; the feed id is
    stored at join. Unknown participants are ignored (another room, or a
    forged event that passed the shared secret but names nobody).
    """
    at = at or timezone.now()
    with transaction.atomic(durable=True):
        candidates = CallParticipant.objects.select_for_update().select_related("call")
        if handle:
            participant = candidates.filter(handle=handle).first()
        elif room_id is not None and feed_id is not None:
            participant = candidates.filter(call__room_id=room_id, janus_feed_id=feed_id).first()
        else:
            participant = None
        if participant is None:
            return None
        call = _lock(participant.call_id)
        if call.state == CallState.ENDED:
            return call
        if event == "joined":
            participant.joined_at = participant.joined_at or at
            participant.janus_feed_id = feed_id or participant.janus_feed_id
            participant.disconnected_at = None
        elif event == "published" and participant.supervisor_mode == SupervisorMode.LISTEN:
            _listener_publish_refuse(call, participant, feed_id)
            return call
        elif event == "published":
            participant.publishing_since = at
            participant.disconnected_at = None
        elif event in ("left", "unpublished"):
            participant.publishing_since = None
            participant.disconnected_at = participant.disconnected_at or at
        else:
            return call
        participant.save()
        audit_record(
            actor=MEDIA,
            action=AuditAction.CALL_PARTICIPANT_EVENT,
            target=call,
            data={"role": participant.role, "event": event, "feed": feed_id},
        )
        publishing = set(
            CallParticipant.objects.filter(call=call, publishing_since__isnull=False).values_list("role", flat=True)
        )
        if call.state == CallState.CONNECTING and {ParticipantRole.CUSTOMER, ParticipantRole.AGENT} <= publishing:
            fsm_step(call.connect, at, error=_call_over)
            call.save()
            audit_record(actor=MEDIA, action=AuditAction.CALL_CONNECTED, target=call)
            _notify(call, "connected")
        elif event in ("left", "unpublished"):
            _notify(call, "participant_dropped", role=participant.role)
        return call


def _listener_publish_refuse(call: Call, participant: CallParticipant, feed_id: int | None) -> None:
    # Listen-only credentials make the page subscribe only; a client that
    # publishes anyway is forged or broken: never counted as publishing, and
    # its feed leaves the room (the seat stays: it may still listen).
    audit_record(
        actor=MEDIA,
        action=AuditAction.CALL_SUPERVISOR_PUBLISH_REFUSED,
        target=call,
        data={"supervisor": participant.staff_id, "feed": feed_id},
    )
    if feed_id is not None:
        from apps.calls.tasks import call_feed_kick_task

        enqueue_on_commit(call_feed_kick_task, call.pk, feed_id)


def _end(call: Call, *, reason: CallEndReason, actor: AnyActor, detail: str = "", now: datetime | None = None) -> None:
    now = now or timezone.now()
    fsm_step(call.end, now, reason, error=_call_over)
    call.save()
    CallParticipant.objects.filter(call=call, left_at__isnull=True).update(left_at=now)
    audit_record(
        actor=actor, action=AuditAction.CALL_ENDED, target=call, data={"reason": reason.value, "detail": detail}
    )
    # The serving agent and any expert still busy with this call go to wrap-up.
    # A call that broke down (rather than ended) lets the customer queue again
    # with priority (queueing.services.entries.queue_entry_rejoin).
    failed = reason in FAILED_CALL_REASONS
    for member in CallParticipant.objects.filter(call=call, staff__isnull=False).select_related("staff"):
        assert member.staff is not None
        _release(member.staff, actor=actor, now=now, call_failed=failed)
    _notify(call, "ended", reason=reason.value)
    if call.room_open:
        from apps.calls.tasks import call_room_close_task

        enqueue_on_commit(call_room_close_task, call.pk)
    call_ended.send(sender=Call, call=call)


def call_live_for_staff(*, actor: User, call_id: int) -> Call:
    """The connected call in which ``actor`` is a staff participant still present."""
    call = Call.objects.select_related("visit").filter(pk=call_id).first()
    if call is None:
        raise _call_not_found()
    staff = staff_profile_for(actor)
    present = (
        staff is not None
        and CallParticipant.objects.filter(call=call, staff=staff, left_at__isnull=True)
        .exclude(role=ParticipantRole.CUSTOMER)
        .exists()
    )
    if not present:
        raise PermissionDenied(_("Only staff in this call can do this."), code="not_in_call")
    if call.state != CallState.CONNECTED:
        raise NotAllowed(_("This can only be done while the video call is connected."), code="call_not_connected")
    return call


def call_notify(call: Call, event: str, **extra: Any) -> None:
    """Tell the call's customer page and staff consoles that ``event`` happened (after commit)."""
    _notify(call, event, **extra)


@transaction.atomic
def call_end(*, call_id: int, actor: AnyActor, reason: CallEndReason, detail: str = "") -> Call:
    """End a live call for a reason decided by the server (a failed gate). Idempotent."""
    call = _lock(call_id)
    if call.state != CallState.ENDED:
        _end(call, reason=reason, actor=actor, detail=detail)
    return call


def _release(staff: StaffProfile, *, actor: AnyActor, now: datetime, call_failed: bool = False) -> None:
    """A staff member's part in a call is over: busy → wrap-up (others keep their state)."""
    presence = AgentPresence.objects.filter(staff=staff).first()
    if presence is not None and presence.state == AgentState.BUSY:
        agent_service_end(actor=actor, staff=staff, now=now, call_failed=call_failed)


def call_room_close(*, call_id: int) -> None:
    """Destroy the room of an ended call (recordings stay on disk). Idempotent."""
    call = Call.objects.get(pk=call_id)
    if call.state != CallState.ENDED or not call.room_open:
        return
    room = JanusVideoRoom(janus_server(call.janus_server))
    if room.exists(room_id=call.room_id):
        room.destroy_room(room_id=call.room_id, secret=call.room_secret)
    with transaction.atomic(durable=True):
        Call.objects.filter(pk=call_id).update(room_open=False)
        audit_record(actor=MEDIA, action=AuditAction.CALL_ROOM_CLOSED, target=call)


def call_feed_kick(*, call_id: int, feed_id: int) -> None:
    """Remove one feed from the call's room (Janus ``kick``); nothing to do once the room is gone."""
    call = Call.objects.get(pk=call_id)
    if call.state == CallState.ENDED or not call.room_open:
        return
    room = JanusVideoRoom(janus_server(call.janus_server))
    # Only a feed still in the room: a retry after a lost reply, or a client
    # that already went, is not an error.
    if room.exists(room_id=call.room_id) and any(p.id == feed_id for p in room.participants(room_id=call.room_id)):
        room.kick(room_id=call.room_id, secret=call.room_secret, participant_id=feed_id)


@transaction.atomic(durable=True)
def call_hang_up(*, call_id: int, actor: AnyActor, participant: CallParticipant) -> Call:
    """Customer or agent ends the call; an expert or assisting agent hanging up only leaves it."""
    call = _lock(call_id)
    _hang_up(call, actor=actor, participant=participant)
    return call


def _hang_up(call: Call, *, actor: AnyActor, participant: CallParticipant) -> None:
    if participant.role in ASSISTING_ROLES:
        CallParticipant.objects.filter(pk=participant.pk).update(left_at=timezone.now())
        if participant.staff is not None:
            _release(participant.staff, actor=actor, now=timezone.now())
        audit_record(
            actor=actor,
            action=AuditAction.CALL_PARTICIPANT_EVENT,
            target=call,
            data={"role": participant.role, "event": "left"},
        )
        _notify(call, "expert_left")
        return
    reason = (
        CallEndReason.CUSTOMER_HUNG_UP if participant.role == ParticipantRole.CUSTOMER else CallEndReason.AGENT_HUNG_UP
    )
    _end(call, reason=reason, actor=actor)


# Not durable: runs inside queueing's agent_service_close (the agent's "End service").
@transaction.atomic
def call_staff_hang_up(*, staff: StaffProfile, actor: AnyActor) -> bool:
    """The staff member hangs up every live call they are present in ("End service" is "hang up", issue 16).

    The serving agent ends the call (``agent_hung_up``); an expert or
    assisting agent leaves it. Returns whether there was a call to hang up.
    """
    seats = CallParticipant.objects.filter(staff=staff, left_at__isnull=True, call__state__in=LIVE_CALL_STATES)
    hung_up = False
    for call_id in sorted(set(seats.values_list("call_id", flat=True))):
        call = _lock(call_id)
        participant = CallParticipant.objects.filter(call=call, staff=staff, left_at__isnull=True).first()
        if call.state == CallState.ENDED or participant is None:
            continue
        _hang_up(call, actor=actor, participant=participant)
        hung_up = True
    return hung_up


@transaction.atomic(durable=True)
def call_invite(
    *, call_id: int, actor: AnyActor, inviter: StaffProfile, invitee: StaffProfile | None = None
) -> CallParticipant:
    """Bring an expert or another agent into the call (R1.2): a named person, or the longest-idle available expert.

    Only staff available right now and skilled for the business can be
    invited; their seat says who they are (``expert`` or ``assisting_agent``).
    """
    call = _lock(call_id)
    participant_for(call=call, staff=inviter)
    if call.state == CallState.ENDED:
        raise NotAllowed(_("The call is already over."), code="call_ended")
    if invitee is None:
        presence = (
            AgentPresence.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                state=AgentState.AVAILABLE,
                staff__role=Role.EXPERT,
                staff__skills__business_code=call.visit.business_code,
            )
            .order_by("idle_since")
            .first()
        )
        if presence is None:
            raise NotAllowed(_("No expert is available right now."), code="no_expert_available")
        invitee = presence.staff
    if invitee.role not in (Role.EXPERT, Role.AGENT) or invitee.pk == inviter.pk:
        raise ValidationFailed(_("Only another agent or an expert can be invited."), code="invalid_invitee")
    # Only someone free right now: never pull in a colleague who is serving
    # another customer, ringing, away or logged out (issue 16). The presence is
    # locked (call, then presence: the lock order of _end) until the invitee is busy.
    presence = AgentPresence.objects.select_for_update().filter(staff=invitee).first()
    if presence is None or presence.state != AgentState.AVAILABLE:
        raise NotAllowed(
            _("This colleague is not available right now."),
            code="invitee_unavailable",
            extra={"state": presence.state if presence else AgentState.OFFLINE},
        )
    if not AgentSkill.objects.filter(staff=invitee, business_code=call.visit.business_code).exists():
        raise ValidationFailed(
            _("This colleague is not skilled for the customer's business."), code="invitee_not_skilled"
        )
    role = ParticipantRole.EXPERT if invitee.role == Role.EXPERT else ParticipantRole.ASSISTING_AGENT
    participant, created = CallParticipant.objects.get_or_create(call=call, staff=invitee, defaults={"role": role})
    if not created and participant.left_at is not None:
        participant.left_at = None
        participant.save(update_fields=["left_at"])
    audit_record(
        actor=actor,
        action=AuditAction.CALL_INVITED,
        target=call,
        data={"invitee": invitee.employee_number, "role": participant.role},
    )
    agent_assist_start(actor=actor, staff=invitee)
    presence_id = AgentPresence.objects.filter(staff=invitee).values_list("pk", flat=True).first()
    if presence_id is not None:
        events.broadcast_on_commit(
            events.agent_group(presence_id),
            {
                "type": events.AGENT_UPDATE,
                "event": "call_invite",
                "call": str(call.public_id),
                "by": inviter.display_name,
            },
        )
    return participant


@transaction.atomic(durable=True)
def call_supervisor_join(
    *, call_id: int, actor: AnyActor, supervisor: StaffProfile, mode: SupervisorMode | str
) -> CallParticipant:
    """A supervisor enters a live call of their team (issue 21): listening silently, or joined.

    ``listen`` gives a seat that subscribes only (the page never publishes, and
    the seat is shown to nobody else); ``join`` publishes and is announced to
    the customer and the agent. A listener may switch to ``join`` by calling
    again; anything else repeated is refused. Returns the supervisor's seat.
    """
    if mode not in SupervisorMode.values:
        raise ValidationFailed(_("Choose to listen or to join."), code="invalid_supervisor_mode")
    mode = SupervisorMode(mode)
    if supervisor.role != Role.SUPERVISOR:
        raise PermissionDenied(_("Only a supervisor can listen in on or join a call."), code="not_a_supervisor")
    call = _lock(call_id)
    if call.state == CallState.ENDED:
        raise _call_over(call)
    serving = CallParticipant.objects.filter(call=call, role=ParticipantRole.AGENT).select_related("staff").first()
    if serving is None or serving.staff is None or serving.staff.supervisor_id != supervisor.pk:
        raise PermissionDenied(
            _("Only the supervisor of the serving agent's team can listen in on or join this call."),
            code="not_team_supervisor",
        )
    seat = CallParticipant.objects.filter(call=call, staff=supervisor, left_at__isnull=True).first()
    previous = ""
    if seat is not None:
        if seat.supervisor_mode == SupervisorMode.JOIN or mode == SupervisorMode.LISTEN:
            raise NotAllowed(
                _("You are already in this call."), code="already_in_call", extra={"mode": seat.supervisor_mode}
            )
        previous = seat.supervisor_mode
        seat.supervisor_mode = mode
        seat.save(update_fields=["supervisor_mode"])
    else:
        if CallParticipant.objects.filter(
            staff=supervisor, left_at__isnull=True, call__state__in=LIVE_CALL_STATES
        ).exists():
            raise NotAllowed(_("You are in another call. Leave it first."), code="in_another_call")
        seat = CallParticipant.objects.create(
            call=call, role=ParticipantRole.SUPERVISOR, staff=supervisor, supervisor_mode=mode
        )
    audit_record(
        actor=actor,
        action=AuditAction.CALL_SUPERVISOR_ENTERED,
        target=call,
        data={"supervisor": supervisor.employee_number, "mode": mode.value, "previous_mode": previous},
    )
    # A bank tells the customer when a supervisor joins; a silent listener is announced to nobody.
    if mode == SupervisorMode.JOIN:
        _notify(call, "supervisor_joined")
    return seat


@transaction.atomic(durable=True)
def call_supervisor_leave(*, call_id: int, actor: AnyActor, supervisor: StaffProfile) -> CallParticipant:
    """The supervisor leaves the call; the call goes on. (Its end closes the seat by itself.)"""
    call = _lock(call_id)
    if call.state == CallState.ENDED:
        raise _call_over(call)
    seat = CallParticipant.objects.filter(
        call=call, staff=supervisor, role=ParticipantRole.SUPERVISOR, left_at__isnull=True
    ).first()
    if seat is None:
        raise NotAllowed(_("You are not in this call."), code="not_in_call")
    seat.left_at = timezone.now()
    seat.save(update_fields=["left_at"])
    audit_record(
        actor=actor,
        action=AuditAction.CALL_SUPERVISOR_LEFT,
        target=call,
        data={"supervisor": supervisor.employee_number, "mode": seat.supervisor_mode},
    )
    if seat.supervisor_mode == SupervisorMode.JOIN:
        _notify(call, "supervisor_left")
    return seat


@transaction.atomic(durable=True)
def call_transfer(
    *,
    call_id: int,
    actor: AnyActor,
    staff: StaffProfile,
    queue_id: int | None = None,
    agent: StaffProfile | None = None,
) -> QueueEntry:
    """Send the customer to another queue or to a named available colleague, keeping the gates (R1.2).

    To a colleague: the visit queues again in its business's queue and rings
    that colleague at once (``queue_entry_offer_to``); if they decline or miss
    it the customer is at the front of that queue. A closed visit is refused
    (``visit_closed``) and the call goes on: all of it is one transaction.
    """
    if (queue_id is None) == (agent is None):
        raise ValidationFailed(_("Choose either a queue or a colleague."), code="transfer_target_required")
    call = _lock(call_id)
    participant = participant_for(call=call, staff=staff)
    if participant.role != ParticipantRole.AGENT:
        raise PermissionDenied(_("Only the serving agent can transfer the customer."), code="not_serving_agent")
    if queue_id is None:
        queue = queue_for_business(business_code=call.visit.business_code)
    else:
        found = ServiceQueue.objects.filter(pk=queue_id).first()
        if found is None:
            raise NotFound(_("This queue does not exist."), code="queue_not_found")
        queue = found
    _end(call, reason=CallEndReason.TRANSFERRED, actor=actor, detail=agent.employee_number if agent else queue.code)
    entry = queue_entry_enqueue(visit_id=call.visit_id, queue=queue, after_service=True)
    if agent is not None:
        entry = queue_entry_offer_to(actor=actor, entry_id=entry.pk, staff=agent, transferred_by=staff.employee_number)
    return entry


def calls_expire(*, now: datetime | None = None) -> int:
    """End calls whose participants did not (re)join in time."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.CALL_REJOIN_GRACE_SECONDS)
    connect_limit = timedelta(seconds=settings.CALL_CONNECT_TIMEOUT_SECONDS)
    ended = 0
    # A customer or agent gone past the grace period ends the call; an expert
    # who drops only loses their seat.
    dropped = set(
        CallParticipant.objects.filter(
            call__state__in=(CallState.CONNECTING, CallState.CONNECTED),
            disconnected_at__lt=now - grace,
            left_at__isnull=True,
        )
        .exclude(role__in=ASSISTING_ROLES)
        .values_list("call_id", flat=True)
    )
    stalled = set(
        Call.objects.filter(state=CallState.CONNECTING, created_at__lt=now - connect_limit).values_list("pk", flat=True)
    )
    due = dict.fromkeys(stalled, CallEndReason.CONNECT_TIMEOUT)
    due.update(dict.fromkeys(dropped, CallEndReason.REJOIN_GRACE_EXPIRED))
    for call_id, reason in sorted(due.items()):
        with transaction.atomic():
            call = (
                Call.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(pk=call_id)
                .exclude(state=CallState.ENDED)
                .first()
            )
            if call is None:
                continue
            _end(call, reason=reason, actor=MEDIA, now=now)
            ended += 1
    return ended


# Per process (each dispatcher loop keeps its own): when each Janus server was
# last pinged, and since when it has not answered.
_server_checked_at: dict[str, datetime] = {}
_server_unreachable_since: dict[str, datetime] = {}


def calls_media_servers_check(*, now: datetime | None = None) -> int:
    """End the live calls of a Janus server that stopped answering (``media_server_failed``).

    Janus sends nothing when it crashes or its machine is lost, so the
    dispatcher asks: each server with open rooms is pinged at most every
    ``CALL_MEDIA_SERVER_CHECK_SECONDS``; once it has not answered for
    ``CALL_MEDIA_SERVER_FAILURE_SECONDS``, its live calls end. Their partial
    recordings are post-processed as they are (recordings.services.processing), and the
    customers may queue again at the front (queueing.services.entries.queue_entry_rejoin).
    Returns the number of calls ended.
    """
    now = now or timezone.now()
    check_every = timedelta(seconds=settings.CALL_MEDIA_SERVER_CHECK_SECONDS)
    failing_for = timedelta(seconds=settings.CALL_MEDIA_SERVER_FAILURE_SECONDS)
    names = sorted(
        set(
            Call.objects.filter(state__in=LIVE_CALL_STATES, room_open=True)
            .values_list("janus_server", flat=True)
            .distinct()
        )
    )
    for forgotten in set(_server_checked_at) - set(names):  # no open room there any more
        _server_checked_at.pop(forgotten, None)
        _server_unreachable_since.pop(forgotten, None)
    ended = 0
    for name in names:
        checked = _server_checked_at.get(name)
        if checked is not None and now - checked < check_every:
            continue
        if checked is None or now - checked > check_every + failing_for:
            # Not watched lately: an old failure says nothing about now.
            _server_unreachable_since.pop(name, None)
        _server_checked_at[name] = now
        try:
            JanusVideoRoom(janus_server(name), timeout=2.0).ping()
        except (JanusError, UnknownJanusServer) as failure:
            since = _server_unreachable_since.setdefault(name, now)
            if now - since >= failing_for:
                ended += _media_server_calls_end(
                    name, detail=f"no answer since {since.isoformat()}: {failure}", now=now
                )
        else:
            _server_unreachable_since.pop(name, None)
    return ended


def _media_server_calls_end(server: str, *, detail: str, now: datetime) -> int:
    ended = 0
    for call_id in Call.objects.filter(state__in=LIVE_CALL_STATES, janus_server=server).values_list("pk", flat=True):
        with transaction.atomic():
            call = (
                Call.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(pk=call_id, state__in=LIVE_CALL_STATES)
                .first()
            )
            if call is None:
                continue
            _end(call, reason=CallEndReason.MEDIA_SERVER_FAILED, actor=MEDIA, detail=detail[:500], now=now)
            ended += 1
    return ended
