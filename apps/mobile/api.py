"""The customer page's own endpoints: the recording consent before the call, and the end summary.

The mobile app sits at the top of the stack, so the summary can read every
app below (the visit's outcome, the gate that failed, the business's result)
and put it in the customer's words: no code reaches the customer.
"""

from __future__ import annotations

from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.businesses.registry import business_get
from apps.operations.models import OperationState
from apps.operations.selectors import operation_result_label, operations_for_visit
from apps.queueing.models import AgentPresence, AgentState
from apps.visits.authentication import CustomerApi, request_visit
from apps.visits.models import Visit, VisitOutcome
from apps.visits.services import RECORDING_NOTICE_VERSION, visit_recording_consent

# What a failed gate means for the customer, and what to do next (R6.2–R6.4).
GATE_FAILED_MESSAGES: dict[str, Promise] = {
    "identity": _(
        "The networked identity check could not confirm your identity. "
        "Please bring your own valid ID card to any branch of the bank."
    ),
    "face": _(
        "Face verification failed: we could not confirm that you are the holder of the ID card. "
        "Please bring your own ID card to any branch, or start again later in good light."
    ),
    "questions": _(
        "The security questions were not answered correctly. "
        "To protect your account, please bring your own ID card to any branch."
    ),
}
OUTCOME_MESSAGES: dict[str, Promise] = {
    VisitOutcome.COMPLETED: _("Your business is done."),
    VisitOutcome.REFUSED: _("This service cannot be done by video. Please go to a branch of the bank."),
    VisitOutcome.ABANDONED: _("You left before the business was done. Start again whenever you are ready."),
    VisitOutcome.CANCELLED: _(
        "The call ended before the business was done. Start again to finish it, or visit a branch."
    ),
}
OPEN_MESSAGE = _("The call was interrupted. You can call an agent again to continue this service.")


def visit_summary(visit: Visit) -> dict[str, Any]:
    """The end screen: the service number, the business, how it ended and what to do next."""
    outcome = visit.outcome
    if outcome == VisitOutcome.GATE_FAILED:
        gate = visit.outcome_reason.split(":", 1)[0]
        message = GATE_FAILED_MESSAGES.get(gate, OUTCOME_MESSAGES[VisitOutcome.CANCELLED])
    elif outcome:
        message = OUTCOME_MESSAGES.get(outcome, OPEN_MESSAGE)
    else:
        message = OPEN_MESSAGE
    done = [op for op in operations_for_visit(visit=visit) if op.state == OperationState.SUCCEEDED]
    return {
        "service_number": str(visit.public_id),
        "business_name": str(business_get(visit.business_code).name),
        "outcome": outcome or "open",
        "outcome_label": str(VisitOutcome(outcome).label) if outcome else str(_("Interrupted")),
        "succeeded": outcome == VisitOutcome.COMPLETED,
        "message": str(message),
        "results": [operation_result_label(op.result_code) for op in done],
        "started_at": visit.created_at,
        "closed_at": visit.closed_at,
    }


class VisitSummaryOutputSerializer(serializers.Serializer):
    service_number = serializers.CharField()
    business_name = serializers.CharField()
    outcome = serializers.CharField()
    outcome_label = serializers.CharField()
    succeeded = serializers.BooleanField()
    message = serializers.CharField()
    results = serializers.ListField(child=serializers.CharField())
    started_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)


class VisitSummaryApi(CustomerApi):
    """``GET``: the session's visit summed up for its end screen."""

    @extend_schema(responses=VisitSummaryOutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(VisitSummaryOutputSerializer(visit_summary(request_visit(request))).data)


class VisitConsentApi(CustomerApi):
    """``POST``: the customer read the recording notice and agreed; audited with the device check's findings."""

    class InputSerializer(serializers.Serializer):
        camera = serializers.BooleanField()
        microphone = serializers.BooleanField()

    class OutputSerializer(serializers.Serializer):
        notice = serializers.CharField()

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request) -> Response:
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        visit_recording_consent(
            visit_id=request_visit(request).pk,
            camera=payload.validated_data["camera"],
            microphone=payload.validated_data["microphone"],
        )
        return Response({"notice": RECORDING_NOTICE_VERSION}, status=status.HTTP_201_CREATED)


# Agents who will serve a customer soon: free, ringing, in a call or wrapping up (not away or offline).
SERVING_STATES = (AgentState.AVAILABLE, AgentState.OFFERED, AgentState.BUSY, AgentState.WRAP_UP)


class VisitWaitApi(CustomerApi):
    """``GET``: whether any agent with the visit's skill is logged in.

    With none, a wait estimate would be a promise nobody keeps: the page
    shows "no agent for this service is online now" instead of minutes.
    """

    class OutputSerializer(serializers.Serializer):
        skilled_agents_online = serializers.IntegerField()

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        visit = request_visit(request)
        online = (
            AgentPresence.objects.filter(state__in=SERVING_STATES, staff__skills__business_code=visit.business_code)
            .distinct()
            .count()
        )
        return Response({"skilled_agents_online": online})
