"""Call API: credentials to join the room, hang-up, invite, transfer; Janus' event feed."""

from __future__ import annotations

import base64
import hmac
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.calls.models import CallParticipant, SupervisorMode
from apps.calls.selectors import (
    CallSeat,
    call_get,
    call_invitee_get,
    call_latest_for_visit,
    call_participant_current_for_staff,
    call_seat,
    call_supervisor_seat,
    participant_for,
)
from apps.calls.services import (
    call_hang_up,
    call_invite,
    call_participant_event,
    call_supervisor_join,
    call_supervisor_leave,
    call_transfer,
)
from apps.common.api import request_staff_user, require_permission
from apps.common.errors import PermissionDenied
from apps.staff.models import StaffProfile
from apps.staff.selectors import staff_profile_for
from apps.visits.authentication import CustomerApi, request_visit

_SERVE = require_permission("queueing.serve_customers")
_SUPERVISE = require_permission("queueing.supervise_queues")


def _staff(request: Request) -> StaffProfile:
    staff = staff_profile_for(request_staff_user(request))
    if staff is None:
        raise PermissionDenied(_("No staff profile for this login."), code="no_staff_profile")
    return staff


class CallSeatOutputSerializer(serializers.Serializer[CallSeat]):
    """One participant's view of the call: what every call endpoint of a participant answers."""

    class ParticipantOutputSerializer(serializers.Serializer[CallParticipant]):
        role = serializers.CharField()
        handle = serializers.CharField()
        publishing = serializers.SerializerMethodField()

        def get_publishing(self, participant: CallParticipant) -> bool:
            return participant.publishing_since is not None

    class JoinOutputSerializer(serializers.Serializer[Any]):
        server_url = serializers.CharField()
        room_id = serializers.IntegerField()
        session_token = serializers.CharField()
        room_token = serializers.CharField()
        handle = serializers.CharField()
        role = serializers.CharField()
        ice_servers = serializers.ListField(
            child=serializers.DictField(),
            help_text="RTCIceServer entries: the TURN relay with this participant's time-limited credentials.",
        )
        video_bitrate = serializers.IntegerField(help_text="Video bitrate cap of this participant (bits/s).")
        simulcast = serializers.BooleanField(help_text="Send the camera in simulcast layers.")
        stall_seconds = serializers.IntegerField(help_text="A remote video stalled this long triggers an ICE restart.")
        publish = serializers.BooleanField(help_text="False for a supervisor listening in: join, never publish.")

    call = serializers.CharField(source="call.public_id")
    state = serializers.CharField(source="call.state")
    end_reason = serializers.CharField(source="call.end_reason")
    room_ready = serializers.BooleanField(source="call.room_open")
    role = serializers.CharField(source="participant.role")
    mode = serializers.CharField(source="participant.supervisor_mode", help_text="A supervisor's: listen or join.")
    present = serializers.SerializerMethodField(help_text="Whether this participant is still in the call.")
    business = serializers.CharField(source="call.visit.business_code")
    participants = ParticipantOutputSerializer(source="present", many=True)
    join = JoinOutputSerializer(required=False, help_text="Only while the room is open to this participant.")

    def get_present(self, seat: CallSeat) -> bool:
        return seat.participant.left_at is None

    def to_representation(self, instance: CallSeat) -> dict[str, Any]:
        data = super().to_representation(instance)
        if data["join"] is None:  # absent, not null: the page joins only when it is there
            del data["join"]
        return dict(data)


def _customer_seat(request: Request) -> CallSeat:
    visit = request_visit(request)
    call = call_latest_for_visit(visit=visit)
    return call_seat(call=call, participant=participant_for(call=call, visit_id=visit.pk))


class CustomerCallApi(CustomerApi):
    """``GET``: the customer's current call (session-bound, like the visit)."""

    @extend_schema(responses=CallSeatOutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(CallSeatOutputSerializer(_customer_seat(request)).data)


class CustomerCallHangUpApi(CustomerApi):
    """``POST``: the customer hangs up their current call."""

    @extend_schema(request=None, responses=CallSeatOutputSerializer)
    def post(self, request: Request) -> Response:
        seat = _customer_seat(request)
        customer = seat.call.visit.customer
        assert customer is not None
        call = call_hang_up(call_id=seat.call.pk, actor=customer, participant=seat.participant)
        return Response(CallSeatOutputSerializer(call_seat(call=call, participant=seat.participant)).data)


class StaffMyCallApi(APIView):
    """``GET``: the call this staff member is in (or invited to) right now, if any."""

    permission_classes = (_SERVE,)

    @extend_schema(responses=CallSeatOutputSerializer)
    def get(self, request: Request) -> Response:
        participant = call_participant_current_for_staff(staff=_staff(request))
        return Response(CallSeatOutputSerializer(call_seat(call=participant.call, participant=participant)).data)


class StaffCallApi(APIView):
    """``GET``: a call this staff member takes part in."""

    permission_classes = (_SERVE,)

    @extend_schema(responses=CallSeatOutputSerializer)
    def get(self, request: Request, public_id: str) -> Response:
        call = call_get(public_id=public_id)
        participant = participant_for(call=call, staff=_staff(request))
        return Response(CallSeatOutputSerializer(call_seat(call=call, participant=participant)).data)


class StaffCallHangUpApi(APIView):
    """``POST``: the agent ends the call; an invited expert only leaves it."""

    permission_classes = (_SERVE,)

    @extend_schema(request=None, responses=CallSeatOutputSerializer)
    def post(self, request: Request, public_id: str) -> Response:
        call = call_get(public_id=public_id)
        participant = participant_for(call=call, staff=_staff(request))
        call = call_hang_up(call_id=call.pk, actor=request_staff_user(request), participant=participant)
        return Response(CallSeatOutputSerializer(call_seat(call=call, participant=participant)).data)


class CallInviteApi(APIView):
    permission_classes = (_SERVE,)

    class InputSerializer(serializers.Serializer[Any]):
        staff = serializers.IntegerField(
            required=False, help_text="A named expert or agent; omit for any available expert."
        )

    class OutputSerializer(serializers.Serializer[CallParticipant]):
        invited = serializers.SerializerMethodField()

        def get_invited(self, participant: CallParticipant) -> str:
            return participant.staff.display_name if participant.staff else ""

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request: Request, public_id: str) -> Response:
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        invitee = None
        if "staff" in payload.validated_data:
            invitee = call_invitee_get(staff_id=payload.validated_data["staff"])
        call = call_get(public_id=public_id)
        participant = call_invite(
            call_id=call.pk, actor=request_staff_user(request), inviter=_staff(request), invitee=invitee
        )
        return Response(self.OutputSerializer(participant).data, status=201)


class CallTransferApi(APIView):
    permission_classes = (_SERVE,)

    class InputSerializer(serializers.Serializer[Any]):
        queue = serializers.IntegerField(required=False, help_text="Another queue; or name a colleague instead.")
        staff = serializers.IntegerField(
            required=False, help_text="A named available colleague skilled for the business."
        )

    class OutputSerializer(serializers.Serializer[Any]):
        entry = serializers.IntegerField(source="pk")
        queue = serializers.IntegerField(source="queue_id")
        state = serializers.CharField()

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request, public_id: str) -> Response:
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        agent = None
        if "staff" in payload.validated_data:
            agent = call_invitee_get(staff_id=payload.validated_data["staff"])
        call = call_get(public_id=public_id)
        entry = call_transfer(
            call_id=call.pk,
            actor=request_staff_user(request),
            staff=_staff(request),
            queue_id=payload.validated_data.get("queue"),
            agent=agent,
        )
        return Response(self.OutputSerializer(entry).data)


class CallSuperviseApi(APIView):
    """``GET``: the supervisor's seat in the call; ``POST``: listen in or join (issue 21).

    Both answer the seat, with the credentials to enter the room while it is
    open (``join.publish`` is false when listening).
    """

    permission_classes = (_SUPERVISE,)

    class InputSerializer(serializers.Serializer[Any]):
        mode = serializers.ChoiceField(
            choices=SupervisorMode.choices, help_text="listen: silent, subscribe only; join: take part."
        )

    @extend_schema(responses=CallSeatOutputSerializer)
    def get(self, request: Request, public_id: str) -> Response:
        call = call_get(public_id=public_id)
        seat = call_supervisor_seat(call=call, supervisor=_staff(request))
        return Response(CallSeatOutputSerializer(call_seat(call=call, participant=seat)).data)

    @extend_schema(request=InputSerializer, responses={201: CallSeatOutputSerializer})
    def post(self, request: Request, public_id: str) -> Response:
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        call = call_get(public_id=public_id)
        seat = call_supervisor_join(
            call_id=call.pk,
            actor=request_staff_user(request),
            supervisor=_staff(request),
            mode=payload.validated_data["mode"],
        )
        call.refresh_from_db()
        return Response(CallSeatOutputSerializer(call_seat(call=call, participant=seat)).data, status=201)


class CallSuperviseLeaveApi(APIView):
    """``POST``: the supervisor leaves the call (it goes on)."""

    permission_classes = (_SUPERVISE,)

    @extend_schema(request=None, responses=CallSeatOutputSerializer)
    def post(self, request: Request, public_id: str) -> Response:
        call = call_get(public_id=public_id)
        seat = call_supervisor_leave(call_id=call.pk, actor=request_staff_user(request), supervisor=_staff(request))
        return Response(CallSeatOutputSerializer(call_seat(call=call, participant=seat)).data)


# Janus' videoroom event names → ours.
_VIDEOROOM_EVENTS = {
    "joined": "joined",
    "published": "published",
    "unpublished": "unpublished",
    "leaving": "left",
    "kicked": "left",
}


def _basic_auth_password(request: Request) -> str:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return ""
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return ""
    user, _sep, password = decoded.partition(":")
    return password if user == "janus" else ""


class JanusEventsApi(APIView):
    """Janus' sample event handler posts here (one event or a list).

    Authenticated by the shared secret, sent by Janus both as HTTP basic auth
    (user ``janus``) and as ``?secret=`` (docs/janus.md); compared in constant
    time. Only videoroom participant events are used; everything else
    is acknowledged and ignored.
    """

    authentication_classes = ()
    permission_classes = (AllowAny,)

    class OutputSerializer(serializers.Serializer[Any]):
        applied = serializers.IntegerField(help_text="How many events named a participant of one of our calls.")

    @extend_schema(responses=OutputSerializer)
    def post(self, request: Request) -> Response:
        secret = _basic_auth_password(request) or request.query_params.get("secret", "")
        if not hmac.compare_digest(secret.encode(), settings.JANUS_EVENTS_SECRET.encode()):
            raise PermissionDenied(_("Unknown event source."), code="bad_event_secret")
        items = request.data if isinstance(request.data, list) else [request.data]
        applied = 0
        for item in items[:1000]:
            if not isinstance(item, dict):
                continue
            body = item.get("event") or {}
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, dict) or body.get("plugin") != "janus.plugin.videoroom":
                continue
            kind = _VIDEOROOM_EVENTS.get(str(data.get("event")))
            if kind is None:
                continue
            handle = data.get("display")
            room, feed = data.get("room"), data.get("id")
            timestamp = item.get("timestamp")
            # Janus stamps events in microseconds since the epoch.
            at = datetime.fromtimestamp(timestamp / 1_000_000, tz=UTC) if isinstance(timestamp, int) else None
            applied += (
                call_participant_event(
                    event=kind,
                    handle=handle if isinstance(handle, str) else None,
                    room_id=room if isinstance(room, int) else None,
                    feed_id=feed if isinstance(feed, int) else None,
                    at=at,
                )
                is not None
            )
        return Response(self.OutputSerializer({"applied": applied}).data)
