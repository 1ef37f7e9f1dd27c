"""Call API: credentials to join the room, hang-up, invite, transfer; Janus' event feed."""

from __future__ import annotations

import base64
import hmac
from dataclasses import asdict
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

from apps.calls.models import Call, CallParticipant
from apps.calls.selectors import call_get
from apps.calls.services import (
    call_hang_up,
    call_invite,
    call_join_credentials,
    call_participant_event,
    call_transfer,
    participant_for,
)
from apps.common.api import request_staff_user, require_permission
from apps.common.errors import NotFound, PermissionDenied
from apps.staff.models import StaffProfile
from apps.visits.authentication import CustomerApi, request_visit

_SERVE = require_permission("queueing.serve_customers")


def _staff(request: Request) -> StaffProfile:
    staff = StaffProfile.objects.filter(user=request_staff_user(request)).first()
    if staff is None:
        raise PermissionDenied(_("No staff profile for this login."), code="no_staff_profile")
    return staff


def call_representation(call: Call, participant: CallParticipant) -> dict[str, Any]:
    body: dict[str, Any] = {
        "call": str(call.public_id),
        "state": call.state,
        "end_reason": call.end_reason,
        "room_ready": call.room_open,
        "role": participant.role,
        "business": call.visit.business_code,
        "participants": [
            {"role": other.role, "handle": other.handle, "publishing": other.publishing_since is not None}
            for other in call.participants.filter(left_at__isnull=True)
        ],
    }
    if call.room_open and call.state != "ended" and participant.left_at is None:
        body["join"] = asdict(call_join_credentials(call=call, participant=participant))
    return body


class CustomerCallApi(CustomerApi):
    """The customer's current call (session-bound, like the visit)."""

    def _mine(self, request: Request) -> tuple[Call, CallParticipant]:
        visit = request_visit(request)
        call = Call.objects.filter(visit=visit).order_by("-created_at").first()
        if call is None:
            raise NotFound(_("No call yet."), code="no_call")
        return call, participant_for(call=call, visit_id=visit.pk)

    def get(self, request: Request) -> Response:
        call, participant = self._mine(request)
        return Response(call_representation(call, participant))

    def delete(self, request: Request) -> Response:
        call, participant = self._mine(request)
        customer = call.visit.customer
        assert customer is not None
        call = call_hang_up(call_id=call.pk, actor=customer, participant=participant)
        return Response(call_representation(call, participant))


class StaffMyCallApi(APIView):
    """The call this staff member is in (or invited to) right now, if any."""

    permission_classes = (_SERVE,)

    def get(self, request: Request) -> Response:
        staff = _staff(request)
        participant = (
            CallParticipant.objects.filter(staff=staff, left_at__isnull=True)
            .exclude(call__state="ended")
            .select_related("call")
            .order_by("-invited_at")
            .first()
        )
        if participant is None:
            raise NotFound(_("You are not in a call."), code="no_call")
        return Response(call_representation(participant.call, participant))


class StaffCallApi(APIView):
    permission_classes = (_SERVE,)

    def get(self, request: Request, public_id: str) -> Response:
        call = call_get(public_id=public_id)
        return Response(call_representation(call, participant_for(call=call, staff=_staff(request))))

    def delete(self, request: Request, public_id: str) -> Response:
        call = call_get(public_id=public_id)
        participant = participant_for(call=call, staff=_staff(request))
        call = call_hang_up(call_id=call.pk, actor=request_staff_user(request), participant=participant)
        return Response(call_representation(call, participant))


class CallInviteApi(APIView):
    permission_classes = (_SERVE,)

    class InputSerializer(serializers.Serializer):
        staff = serializers.IntegerField(
            required=False, help_text="A named expert or agent; omit for any available expert."
        )

    @extend_schema(request=InputSerializer)
    def post(self, request: Request, public_id: str) -> Response:
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        invitee = None
        if "staff" in payload.validated_data:
            invitee = StaffProfile.objects.filter(pk=payload.validated_data["staff"]).first()
            if invitee is None:
                raise NotFound(_("No such staff member."), code="staff_not_found")
        call = call_get(public_id=public_id)
        participant = call_invite(
            call_id=call.pk, actor=request_staff_user(request), inviter=_staff(request), invitee=invitee
        )
        return Response({"invited": participant.staff.display_name if participant.staff else ""}, status=201)


class CallTransferApi(APIView):
    permission_classes = (_SERVE,)

    class InputSerializer(serializers.Serializer):
        queue = serializers.IntegerField()

    @extend_schema(request=InputSerializer)
    def post(self, request: Request, public_id: str) -> Response:
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        call = call_get(public_id=public_id)
        entry = call_transfer(
            call_id=call.pk,
            actor=request_staff_user(request),
            staff=_staff(request),
            queue_id=payload.validated_data["queue"],
        )
        return Response({"entry": entry.pk, "queue": entry.queue_id, "state": entry.state})


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
        return Response({"applied": applied})
