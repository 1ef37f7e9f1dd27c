"""Queueing API: agents take offers, supervisors watch and steer, customers join.

One operation per view; views read through ``apps.queueing.selectors``, write
through the services, and answer through output serializers.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.api import request_staff_user, require_permission
from apps.common.errors import NotFound, PermissionDenied
from apps.queueing.models import AgentState, QueueEntry
from apps.queueing.selectors import (
    AgentDesk,
    EntryStanding,
    QueueFigures,
    SupervisorFigures,
    agent_desk,
    entry_standing,
    pending_reason,
    staff_member,
    supervisor_figures,
    visit_latest_entry,
)
from apps.queueing.services.agents import agent_service_close, agent_state_set
from apps.queueing.services.entries import queue_entry_enqueue, queue_entry_leave, queue_entry_move
from apps.queueing.services.offers import offer_accept, offer_decline
from apps.staff.models import StaffProfile
from apps.staff.selectors import staff_in_team_of, staff_profile_for
from apps.visits.authentication import CustomerApi, request_visit

_SERVE = require_permission("queueing.serve_customers")
_SUPERVISE = require_permission("queueing.supervise_queues")


def _staff(request: Request) -> StaffProfile:
    profile = staff_profile_for(request_staff_user(request))
    if profile is None:
        raise NotFound(_("No staff profile for this login."), code="no_staff_profile")
    return profile


def _instant(**kwargs: Any) -> serializers.DateTimeField:
    """A stored instant, written in UTC (``…Z``) as these views answered before they had serializers."""
    return serializers.DateTimeField(default_timezone=UTC, **kwargs)


class EntryStandingOutputSerializer(serializers.Serializer[EntryStanding]):
    """Where a queue entry stands; the answer of the customer's queue views and of a supervisor's move."""

    entry = serializers.IntegerField(source="entry.pk")
    queue = serializers.IntegerField(source="entry.queue_id")
    queue_name = serializers.CharField(source="entry.queue.name")
    state = serializers.CharField(source="entry.state")
    position = serializers.IntegerField()
    priority_key = serializers.FloatField(source="entry.priority_key")
    estimated_wait_seconds = serializers.IntegerField()


class AgentMeApi(APIView):
    """``GET``: the agent's state, and the entry ringing at them or in their call (null if none)."""

    permission_classes = (_SERVE,)

    class AgentMeOutputSerializer(serializers.Serializer[AgentDesk]):
        class AgentMeEntrySerializer(serializers.Serializer[QueueEntry]):
            id = serializers.IntegerField(source="pk")
            state = serializers.CharField()
            business = serializers.CharField(source="business_code")
            level = serializers.CharField()
            expires_at = _instant(source="offer_expires_at")
            customer = serializers.SerializerMethodField()

            def get_customer(self, entry: QueueEntry) -> str:
                return entry.visit.customer.name if entry.visit.customer else ""

        state = serializers.CharField()
        entry = AgentMeEntrySerializer(allow_null=True)

    @extend_schema(responses=AgentMeOutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(self.AgentMeOutputSerializer(agent_desk(staff=_staff(request))).data)


class AgentStateApi(APIView):
    """``POST {"state"}``: the agent sets themselves available, away or offline."""

    permission_classes = (_SERVE,)

    class InputSerializer(serializers.Serializer):
        state = serializers.ChoiceField(choices=[AgentState.AVAILABLE, AgentState.AWAY, AgentState.OFFLINE])

    class AgentStateOutputSerializer(serializers.Serializer[Any]):
        state = serializers.CharField()

    @extend_schema(request=InputSerializer, responses=AgentStateOutputSerializer)
    def post(self, request: Request) -> Response:
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        presence = agent_state_set(
            actor=request_staff_user(request), staff=_staff(request), state=AgentState(payload.validated_data["state"])
        )
        return Response(self.AgentStateOutputSerializer(presence).data)


class OfferAcceptApi(APIView):
    """``POST``: the agent takes the customer ringing at them."""

    permission_classes = (_SERVE,)

    class OfferOutputSerializer(serializers.Serializer[QueueEntry]):
        entry = serializers.IntegerField(source="pk")
        state = serializers.CharField()

    @extend_schema(request=None, responses=OfferOutputSerializer)
    def post(self, request: Request, entry_id: int) -> Response:
        entry = offer_accept(actor=request_staff_user(request), staff=_staff(request), entry_id=entry_id)
        return Response(self.OfferOutputSerializer(entry).data)


class OfferDeclineApi(APIView):
    """``POST``: the agent declines; the customer goes back to the front of the queue."""

    permission_classes = (_SERVE,)

    @extend_schema(request=None, responses=OfferAcceptApi.OfferOutputSerializer)
    def post(self, request: Request, entry_id: int) -> Response:
        entry = offer_decline(actor=request_staff_user(request), staff=_staff(request), entry_id=entry_id)
        return Response(OfferAcceptApi.OfferOutputSerializer(entry).data)


class AgentServiceEndApi(APIView):
    """``POST``: the agent ends the service: their live call is hung up and wrap-up starts."""

    permission_classes = (_SERVE,)

    @extend_schema(request=None, responses=AgentStateApi.AgentStateOutputSerializer)
    def post(self, request: Request) -> Response:
        presence = agent_service_close(actor=request_staff_user(request), staff=_staff(request))
        return Response(AgentStateApi.AgentStateOutputSerializer(presence).data)


class FiguresApi(APIView):
    """Live figures for supervisors (R2.6)."""

    permission_classes = (_SUPERVISE,)

    class FiguresOutputSerializer(serializers.Serializer[SupervisorFigures]):
        class FiguresQueueSerializer(serializers.Serializer[QueueFigures]):
            queue_id = serializers.IntegerField()
            code = serializers.CharField()
            name = serializers.CharField()
            waiting = serializers.IntegerField()
            offered = serializers.IntegerField()
            longest_wait_seconds = serializers.FloatField()
            average_wait_seconds = serializers.FloatField()
            service_level = serializers.FloatField(allow_null=True)
            abandon_rate = serializers.FloatField(allow_null=True)
            paused = serializers.BooleanField()

        class FiguresWaitingSerializer(serializers.Serializer[QueueEntry]):
            entry = serializers.IntegerField(source="pk")
            queue = serializers.CharField(source="queue.code")
            business = serializers.CharField(source="business_code")
            level = serializers.CharField()
            enqueued_at = _instant()
            state = serializers.CharField()
            pending_reason = serializers.SerializerMethodField()

            def get_pending_reason(self, entry: QueueEntry) -> str:
                return str(pending_reason(entry=entry))

        queues = FiguresQueueSerializer(many=True)
        agents = serializers.DictField(child=serializers.IntegerField())
        waiting = FiguresWaitingSerializer(many=True)

    @extend_schema(responses=FiguresOutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(self.FiguresOutputSerializer(supervisor_figures()).data)


class EntryMoveApi(APIView):
    """``POST {"queue"}``: a supervisor moves a waiting customer to another queue."""

    permission_classes = (_SUPERVISE,)

    class InputSerializer(serializers.Serializer):
        queue = serializers.IntegerField()

    @extend_schema(request=InputSerializer, responses=EntryStandingOutputSerializer)
    def post(self, request: Request, entry_id: int) -> Response:
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        entry = queue_entry_move(
            actor=request_staff_user(request), entry_id=entry_id, queue_id=payload.validated_data["queue"]
        )
        return Response(EntryStandingOutputSerializer(entry_standing(entry=entry)).data)


class AgentStateBySupervisorApi(APIView):
    """``POST {"state"}``: a supervisor sets an agent available, away or offline."""

    permission_classes = (_SUPERVISE,)

    @extend_schema(request=AgentStateApi.InputSerializer, responses=AgentStateApi.AgentStateOutputSerializer)
    def post(self, request: Request, staff_id: int) -> Response:
        payload = AgentStateApi.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        staff = staff_member(staff_id=staff_id)
        if staff is None:
            raise NotFound(_("No such staff member."), code="staff_not_found")
        if not staff_in_team_of(staff=staff, user=request.user):
            raise PermissionDenied(_("You can only change the state of agents in your own team."), code="not_your_team")
        presence = agent_state_set(
            actor=request_staff_user(request), staff=staff, state=AgentState(payload.validated_data["state"])
        )
        return Response(AgentStateApi.AgentStateOutputSerializer(presence).data)


# The customer's queue: the visit bound to the browser's session, never an id from the request.


def _latest_entry(request: Request) -> QueueEntry:
    entry = visit_latest_entry(visit_id=request_visit(request).pk)
    if entry is None:
        raise NotFound(_("You are not in a queue."), code="not_queued")
    return entry


class VisitQueueGetApi(CustomerApi):
    """``GET``: where the customer's latest queue entry stands."""

    @extend_schema(responses=EntryStandingOutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(EntryStandingOutputSerializer(entry_standing(entry=_latest_entry(request))).data)


class VisitQueueJoinApi(CustomerApi):
    """``POST``: the customer joins the queue after Gate 1 and the recording consent (a visit already queued gets its entry back)."""

    @extend_schema(request=None, responses={201: EntryStandingOutputSerializer})
    def post(self, request: Request) -> Response:
        entry = queue_entry_enqueue(visit_id=request_visit(request).pk)
        return Response(EntryStandingOutputSerializer(entry_standing(entry=entry)).data, status=status.HTTP_201_CREATED)


class VisitQueueLeaveApi(CustomerApi):
    """``POST``: the customer leaves the queue; the visit ends as abandoned."""

    @extend_schema(request=None, responses=EntryStandingOutputSerializer)
    def post(self, request: Request) -> Response:
        entry = queue_entry_leave(entry_id=_latest_entry(request).pk)
        return Response(EntryStandingOutputSerializer(entry_standing(entry=entry)).data)
