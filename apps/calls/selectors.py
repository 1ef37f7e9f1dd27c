from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from apps.calls.integrations.janus import janus_server, janus_session_token, janus_token
from apps.calls.integrations.turn import turn_participant_credentials
from apps.calls.models import Call, CallParticipant, CallState, ParticipantRole, SupervisorMode
from apps.common.errors import NotAllowed, NotFound, PermissionDenied
from apps.staff.models import StaffProfile
from apps.staff.roles import Role
from apps.visits.models import Visit

# Janus videoroom recording names (docs/janus.md):
# videoroom-<room>-user-<feed id>-<µs timestamp>-<audio|video>-<mid>.mjr
_RECORDING = re.compile(
    r"^videoroom-(?P<room>\d+)-user-(?P<feed>\d+)-(?P<stamp>\d+)-(?P<kind>audio|video)-\d+\.mjr(?P<open>\.tmp)?$"
)


@dataclass(frozen=True)
class RecordingFile:
    path: Path
    kind: str  # "audio" or "video"
    feed_id: int
    started_us: int
    role: str | None  # the participant's role, None if the feed id is unknown
    participant_id: int | None


def call_recording_files(*, call: Call, include_unclosed: bool = False) -> list[RecordingFile]:
    """The call's finished recording files, each mapped to its participant by feed id.

    Open recordings (``.mjr.tmp``) are not listed: Janus renames them when it
    closes them. ``include_unclosed`` lists them too, for a call whose Janus
    died (``media_server_failed``): nobody will close them, and what was
    written up to the crash is the call's evidence. A participant who rejoined
    has several feeds, hence several files; all map back to them.
    """
    folder = Path(call.record_dir)
    if not folder.is_dir():
        return []
    feeds = {p.janus_feed_id: p for p in call.participants.exclude(janus_feed_id__isnull=True)}
    files = []
    for path in sorted(folder.iterdir()):
        match = _RECORDING.match(path.name)
        if match is None or int(match["room"]) != call.room_id or (match["open"] and not include_unclosed):
            continue
        participant = feeds.get(int(match["feed"]))
        files.append(
            RecordingFile(
                path=path,
                kind=match["kind"],
                feed_id=int(match["feed"]),
                started_us=int(match["stamp"]),
                role=participant.role if participant else None,
                participant_id=participant.pk if participant else None,
            )
        )
    return files


def visits_visible_to(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Visit]:
    """The services (visits) whose record and evidence this staff user may see (R8 object-level rules).

    - agent, expert: the services they took part in (as agent or invited expert);
    - supervisor: those of the staff they supervise, and their own;
    - compliance officer: every service (read-only: no role edits evidence);
    - administrator, anyone else: none (running the system is not reading customers' services).

    Every back-office page and API that lists or opens a service, a recording
    or a snapshot filters through this one function.
    """
    profile = getattr(user, "staff_profile", None) if user.is_authenticated else None
    if profile is None or not user.is_active:
        return Visit.objects.none()
    if profile.role == Role.COMPLIANCE_OFFICER:
        return Visit.objects.all()
    if profile.role in (Role.AGENT, Role.EXPERT):
        return Visit.objects.filter(calls__participants__staff=profile).distinct()
    if profile.role == Role.SUPERVISOR:
        return Visit.objects.filter(
            Q(calls__participants__staff__supervisor=profile) | Q(calls__participants__staff=profile)
        ).distinct()
    return Visit.objects.none()


def call_get(*, public_id: Any) -> Call:
    """The call with this public id (with its visit), or NotFound."""
    return _call_or_not_found(Call.objects.select_related("visit"), public_id)


def _call_or_not_found(calls: QuerySet[Call], public_id: Any) -> Call:
    call = calls.filter(public_id=public_id).first()
    if call is None:
        raise NotFound(_("This call does not exist."), code="call_not_found")
    return call


def call_for_staff_participant(*, public_id: Any, user: User, denied: str | Promise) -> Call:
    """The call with this public id, if ``user`` took part in it as staff; else NotFound / PermissionDenied(``denied``).

    For reads of a call's own panels (its gates, its operations); writes
    also check that the person is still present in the live call.
    """
    # One query: the call and whether this user took part (two round trips on every panel read before).
    taken_part = CallParticipant.objects.filter(call=OuterRef("pk"), staff__user=user)
    call = _call_or_not_found(
        Call.objects.select_related("visit").annotate(user_took_part=Exists(taken_part)), public_id
    )
    if not call.user_took_part:  # type: ignore[attr-defined]
        raise PermissionDenied(denied, code="not_in_call")
    return call


def call_latest_for_visit(*, visit: Visit) -> Call:
    """The visit's most recent call (a transfer or a rejoin makes more than one), or NotFound."""
    call = Call.objects.filter(visit=visit).order_by("-created_at").first()
    if call is None:
        raise NotFound(_("No call yet."), code="no_call")
    call.visit = visit  # the caller's row: spares reading it again
    return call


def call_participant_current_for_staff(*, staff: StaffProfile) -> CallParticipant:
    """The seat of the call this staff member is in (or invited to) right now, or NotFound."""
    participant = (
        CallParticipant.objects.filter(staff=staff, left_at__isnull=True)
        .exclude(call__state=CallState.ENDED)
        .select_related("call")
        .order_by("-invited_at")
        .first()
    )
    if participant is None:
        raise NotFound(_("You are not in a call."), code="no_call")
    return participant


def call_current_for_staff(*, staff: StaffProfile) -> Call | None:
    """The live call this staff member is present in right now (with its visit), or None."""
    participant = (
        CallParticipant.objects.filter(staff=staff, left_at__isnull=True)
        .exclude(call__state=CallState.ENDED)
        .select_related("call__visit")
        .order_by("-invited_at")
        .first()
    )
    return participant.call if participant is not None else None


def call_invitee_get(*, staff_id: int) -> StaffProfile:
    """The staff member named for an invitation, or NotFound."""
    invitee = StaffProfile.objects.filter(pk=staff_id).first()
    if invitee is None:
        raise NotFound(_("No such staff member."), code="staff_not_found")
    return invitee


@dataclass(frozen=True)
class JoinCredentials:
    """Janus checks two tokens: ``session_token`` on every request of the
    browser's Janus session, ``room_token`` in the videoroom join (bound to
    this one room). See docs/janus.md."""

    server_url: str
    room_id: int
    session_token: str
    room_token: str
    handle: str
    role: str
    # RTCIceServer dicts: this participant's own time-limited TURN credentials.
    ice_servers: list[dict[str, Any]]
    # The publisher's video bitrate cap (bits/s), simulcast or not, and how
    # long a remote video may stall before the page restarts ICE.
    video_bitrate: int
    simulcast: bool
    stall_seconds: int
    # False for a supervisor listening in: the page joins the room but never publishes.
    publish: bool


def _ice_servers(*, call: Call, participant: CallParticipant) -> list[dict[str, Any]]:
    # Per participant AND call: the username names both, so coturn's log and
    # quotas tell participants apart and a credential is worthless elsewhere.
    credentials = turn_participant_credentials(
        server_name=call.janus_server, user=f"{call.public_id.hex[:12]}-{participant.handle}"
    )
    if credentials is None:
        return []
    return [{"urls": list(credentials.urls), "username": credentials.username, "credential": credentials.credential}]


def call_join_credentials(*, call: Call, participant: CallParticipant) -> JoinCredentials:
    """What one participant's browser needs to join the room: a token bound to this room."""
    if call.state == CallState.ENDED:
        raise NotAllowed(_("The call is already over."), code="call_ended")
    if not call.room_open:
        raise NotAllowed(_("The video room is being prepared. Please wait a moment."), code="room_not_ready")
    if participant.left_at is not None:
        raise PermissionDenied(_("You have left this call."), code="left_call")
    server = janus_server(call.janus_server)
    return JoinCredentials(
        server_url=server.public_ws_url,
        room_id=call.room_id,
        session_token=janus_session_token(server, valid_seconds=settings.JANUS_TOKEN_SECONDS),
        room_token=janus_token(server, room_id=call.room_id, valid_seconds=settings.JANUS_TOKEN_SECONDS),
        handle=participant.handle,
        role=participant.role,
        ice_servers=_ice_servers(call=call, participant=participant),
        video_bitrate=(
            settings.CALL_VIDEO_BITRATE_CUSTOMER
            if participant.role == ParticipantRole.CUSTOMER
            else settings.CALL_VIDEO_BITRATE_STAFF
        ),
        simulcast=participant.role != ParticipantRole.CUSTOMER and settings.CALL_VIDEO_SIMULCAST_STAFF,
        stall_seconds=settings.CALL_MEDIA_STALL_SECONDS,
        publish=participant.supervisor_mode != SupervisorMode.LISTEN,
    )


def participant_for(*, call: Call, staff: StaffProfile | None = None, visit_id: int | None = None) -> CallParticipant:
    """The participant row of this person in this call, or PermissionDenied."""
    query = CallParticipant.objects.filter(call=call)
    if staff is not None:
        participant = query.filter(staff=staff).exclude(role=ParticipantRole.CUSTOMER).first()
    elif visit_id is not None and call.visit_id == visit_id:
        participant = query.filter(role=ParticipantRole.CUSTOMER).first()
    else:
        participant = None
    if participant is None:
        raise PermissionDenied(_("You are not a participant of this call."), code="not_a_participant")
    return participant


@dataclass(frozen=True)
class CallSeat:
    """One participant's view of a call: who is present and, while the room is open to them, how to join."""

    call: Call
    participant: CallParticipant
    present: list[CallParticipant]
    join: JoinCredentials | None


def call_seat(*, call: Call, participant: CallParticipant) -> CallSeat:
    join = None
    if call.room_open and call.state != CallState.ENDED and participant.left_at is None:
        join = call_join_credentials(call=call, participant=participant)
    # A supervisor listening in is shown to nobody but themselves (silent monitoring).
    present = call.participants.filter(left_at__isnull=True).exclude(
        ~Q(pk=participant.pk), supervisor_mode=SupervisorMode.LISTEN
    )
    return CallSeat(call=call, participant=participant, present=list(present), join=join)


def call_supervisor_seat(*, call: Call, supervisor: StaffProfile) -> CallParticipant:
    """The supervisor's latest seat in this call (present, or left), or PermissionDenied."""
    seat = (
        CallParticipant.objects.filter(call=call, staff=supervisor, role=ParticipantRole.SUPERVISOR)
        .order_by("-invited_at")
        .first()
    )
    if seat is None:
        raise PermissionDenied(_("You are not in this call."), code="not_a_participant")
    return seat


@dataclass(frozen=True)
class SupervisedCall:
    """A live call on a supervisor's wallboard."""

    public_id: str
    agent_name: str
    business_code: str
    since: datetime
    state: str
    # The supervisor's own mode in it ("listen", "join"), blank when not in it.
    my_mode: str


def calls_live_for_supervisor(*, supervisor: StaffProfile) -> list[SupervisedCall]:
    """The live calls served by this supervisor's team, oldest first."""
    agents = CallParticipant.objects.filter(
        role=ParticipantRole.AGENT,
        staff__supervisor=supervisor,
        call__state__in=(CallState.CONNECTING, CallState.CONNECTED),
    ).select_related("call__visit", "staff")
    mine = dict(
        CallParticipant.objects.filter(
            staff=supervisor, role=ParticipantRole.SUPERVISOR, left_at__isnull=True
        ).values_list("call_id", "supervisor_mode")
    )
    calls = [
        SupervisedCall(
            public_id=str(seat.call.public_id),
            agent_name=seat.staff.display_name if seat.staff else "",
            business_code=seat.call.visit.business_code,
            since=seat.call.connected_at or seat.call.created_at,
            state=seat.call.state,
            my_mode=mine.get(seat.call_id, ""),
        )
        for seat in agents
    ]
    return sorted(calls, key=lambda call: call.since)
