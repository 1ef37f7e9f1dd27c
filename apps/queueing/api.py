"""Queueing API: agents take offers, supervisors watch and steer, customers join."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.api import request_staff_user, require_permission
from apps.common.errors import NotFound
from apps.queueing.models import AgentPresence, AgentState, EntryState, QueueEntry
from apps.queueing.selectors import (
    agents_by_state,
    entry_position,
    pending_reason,
    queue_figures,
    seconds_per_position,
)
from apps.queueing.services.agents import agent_service_end, agent_state_set
from apps.queueing.services.entries import queue_entry_enqueue, queue_entry_leave, queue_entry_move
from apps.queueing.services.offers import offer_accept, offer_decline
from apps.staff.models import StaffProfile
from apps.staff.selectors import staff_profile_for
from apps.verification.api import CsrfEnforced, current_visit

_SERVE = require_permission("queueing.serve_customers")
_SUPERVISE = require_permission("queueing.supervise_queues")


def _staff(request: Request) -> StaffProfile:
    profile = staff_profile_for(request_staff_user(request))
    if profile is None:
        raise NotFound(_("No staff profile for this login."), code="no_staff_profile")
    return profile


def entry_representation(entry: QueueEntry) -> dict[str, Any]:
    position = entry_position(entry=entry)
    return {
        "entry": entry.pk,
        "queue": entry.queue_id,
        "queue_name": entry.queue.name,
        "state": entry.state,
        "position": position,
        "priority_key": entry.priority_key,
        "estimated_wait_seconds": round(position * seconds_per_position(queue=entry.queue)) if position else 0,
    }


class AgentMeApi(APIView):
    permission_classes = (_SERVE,)

    def get(self, request: Request) -> Response:
        staff = _staff(request)
        presence = AgentPresence.objects.filter(staff=staff).first()
        offer = (
            QueueEntry.objects.filter(agent=presence, state__in=(EntryState.OFFERED, EntryState.CONNECTED))
            .select_related("visit__customer")
            .first()
            if presence
            else None
        )
        body: dict[str, Any] = {"state": presence.state if presence else AgentState.OFFLINE, "entry": None}
        if offer is not None:
            body["entry"] = {
                "id": offer.pk,
                "state": offer.state,
                "business": offer.business_code,
                "level": offer.level,
                "expires_at": offer.offer_expires_at,
                "customer": offer.visit.customer.name if offer.visit.customer else "",
            }
        return Response(body)


class AgentStateApi(APIView):
    permission_classes = (_SERVE,)

    class InputSerializer(serializers.Serializer):
        state = serializers.ChoiceField(choices=[AgentState.AVAILABLE, AgentState.AWAY, AgentState.OFFLINE])

    @extend_schema(request=InputSerializer)
    def post(self, request: Request) -> Response:
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        presence = agent_state_set(
            actor=request_staff_user(request), staff=_staff(request), state=AgentState(payload.validated_data["state"])
        )
        return Response({"state": presence.state})


class OfferAcceptApi(APIView):
    permission_classes = (_SERVE,)

    def post(self, request: Request, entry_id: int) -> Response:
        entry = offer_accept(actor=request_staff_user(request), staff=_staff(request), entry_id=entry_id)
        return Response({"entry": entry.pk, "state": entry.state})


class OfferDeclineApi(APIView):
    permission_classes = (_SERVE,)

    def post(self, request: Request, entry_id: int) -> Response:
        entry = offer_decline(actor=request_staff_user(request), staff=_staff(request), entry_id=entry_id)
        return Response({"entry": entry.pk, "state": entry.state})


class AgentServiceEndApi(APIView):
    permission_classes = (_SERVE,)

    def post(self, request: Request) -> Response:
        presence = agent_service_end(actor=request_staff_user(request), staff=_staff(request))
        return Response({"state": presence.state})


class FiguresApi(APIView):
    """Live figures for supervisors (R2.6)."""

    permission_classes = (_SUPERVISE,)

    def get(self, request: Request) -> Response:
        waiting = (
            QueueEntry.objects.filter(state__in=(EntryState.WAITING, EntryState.OFFERED))
            .select_related("queue")
            .order_by("queue__code", "priority_key")[:500]
        )
        return Response(
            {
                "queues": [asdict(figures) for figures in queue_figures()],
                "agents": agents_by_state(),
                "waiting": [
                    {
                        "entry": entry.pk,
                        "queue": entry.queue.code,
                        "business": entry.business_code,
                        "level": entry.level,
                        "enqueued_at": entry.enqueued_at,
                        "state": entry.state,
                        "pending_reason": str(pending_reason(entry=entry)),
                    }
                    for entry in waiting
                ],
            }
        )


class EntryMoveApi(APIView):
    permission_classes = (_SUPERVISE,)

    class InputSerializer(serializers.Serializer):
        queue = serializers.IntegerField()

    @extend_schema(request=InputSerializer)
    def post(self, request: Request, entry_id: int) -> Response:
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        entry = queue_entry_move(
            actor=request_staff_user(request), entry_id=entry_id, queue_id=payload.validated_data["queue"]
        )
        return Response(entry_representation(entry))


class AgentStateBySupervisorApi(APIView):
    permission_classes = (_SUPERVISE,)

    @extend_schema(request=AgentStateApi.InputSerializer)
    def post(self, request: Request, staff_id: int) -> Response:
        payload = AgentStateApi.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        staff = StaffProfile.objects.filter(pk=staff_id).first()
        if staff is None:
            raise NotFound(_("No such staff member."), code="staff_not_found")
        presence = agent_state_set(
            actor=request_staff_user(request), staff=staff, state=AgentState(payload.validated_data["state"])
        )
        return Response({"state": presence.state})


class VisitQueueApi(APIView):
    """The customer joins the queue after Gate 1, and can leave it."""

    authentication_classes = ()
    permission_classes = (CsrfEnforced,)

    def get(self, request: Request) -> Response:
        entry = QueueEntry.objects.filter(visit=current_visit(request)).select_related("queue").order_by("-pk").first()
        if entry is None:
            raise NotFound(_("You are not in a queue."), code="not_queued")
        return Response(entry_representation(entry))

    def post(self, request: Request) -> Response:
        entry = queue_entry_enqueue(visit_id=current_visit(request).pk)
        return Response(entry_representation(entry), status=status.HTTP_201_CREATED)

    def delete(self, request: Request) -> Response:
        entry = QueueEntry.objects.filter(visit=current_visit(request)).order_by("-pk").first()
        if entry is None:
            raise NotFound(_("You are not in a queue."), code="not_queued")
        entry = queue_entry_leave(entry_id=entry.pk)
        return Response(entry_representation(entry))
