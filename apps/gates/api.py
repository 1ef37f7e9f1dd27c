"""Gates API: the agent's console runs gates 2–4 of the call; the customer answers Gate 4 on their own page.

Staff endpoints take the call's public id and require a staff participant
still present in the connected call (checked by the services). Customer
endpoints act on the visit bound to the browser's session only.
"""

from __future__ import annotations

from typing import Any

from django.http import FileResponse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.calls.models import Call
from apps.calls.selectors import call_for_staff_participant
from apps.common.api import request_staff_user, require_permission
from apps.common.errors import NotFound
from apps.gates.selectors import gate_progress_for_visit, gates_status_for_customer, gates_status_for_staff
from apps.gates.services import (
    gate_face_verify_start,
    gate_identity_check_start,
    gate_questions_answer,
    gate_questions_draw,
)
from apps.visits.authentication import CustomerApi, request_visit

_SERVE = require_permission("queueing.serve_customers")


def _call_for_staff(request: Request, public_id: Any) -> Call:
    return call_for_staff_participant(
        public_id=public_id, user=request_staff_user(request), denied=_("Only staff in this call can see its checks.")
    )


class CallGatesApi(APIView):
    """``GET``: gates 2–4 of the call's service, with every attempt, score and time."""

    permission_classes = (_SERVE,)

    def get(self, request: Request, public_id: str) -> Response:
        call = _call_for_staff(request, public_id)
        return Response(gates_status_for_staff(visit=call.visit))


class GateIdentityApi(APIView):
    """``POST``: ask the identity registry (Gate 2). The result fills in by itself."""

    permission_classes = (_SERVE,)

    def post(self, request: Request, public_id: str) -> Response:
        call = _call_for_staff(request, public_id)
        gate_identity_check_start(actor=request_staff_user(request), call_id=call.pk)
        return Response(gates_status_for_staff(visit=call.visit), status=202)


class GateFaceApi(APIView):
    """``POST {"snapshot": id}``: compare that snapshot with the ID-card portrait and the registry photo (Gate 3)."""

    permission_classes = (_SERVE,)
    parser_classes = (JSONParser,)

    class GateFaceInputSerializer(serializers.Serializer[Any]):
        snapshot = serializers.UUIDField()

    @extend_schema(request=GateFaceInputSerializer)
    def post(self, request: Request, public_id: str) -> Response:
        call = _call_for_staff(request, public_id)
        data = self.GateFaceInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        gate_face_verify_start(
            actor=request_staff_user(request), call_id=call.pk, snapshot_public_id=str(data.validated_data["snapshot"])
        )
        return Response(gates_status_for_staff(visit=call.visit), status=202)


class GateQuestionsApi(APIView):
    """``POST``: draw the private questions (Gate 4); they appear on the customer's page."""

    permission_classes = (_SERVE,)

    def post(self, request: Request, public_id: str) -> Response:
        call = _call_for_staff(request, public_id)
        gate_questions_draw(actor=request_staff_user(request), call_id=call.pk)
        return Response(gates_status_for_staff(visit=call.visit), status=201)


class GateRegistryPhotoApi(APIView):
    """``GET``: the photo on file returned by the registry (Gate 2), for staff in the call."""

    permission_classes = (_SERVE,)

    def get(self, request: Request, public_id: str) -> FileResponse:
        call = _call_for_staff(request, public_id)
        progress = gate_progress_for_visit(visit=call.visit)
        if progress is None or not progress.registry_photo:
            raise NotFound(_("The registry has returned no photo yet."), code="no_registry_photo")
        response = FileResponse(progress.registry_photo.open("rb"), content_type="image/jpeg")
        response["Cache-Control"] = "private, no-store"
        return response


class VisitGatesApi(CustomerApi):
    """The customer's own page: ``GET`` the checks' progress and any questions to answer."""

    def get(self, request: Request) -> Response:
        return Response(gates_status_for_customer(visit=request_visit(request)))


class VisitGateAnswersApi(CustomerApi):
    """``POST {"answers": [option index, …]}``: the customer's answers to Gate 4."""

    parser_classes = (JSONParser,)

    class GateAnswersInputSerializer(serializers.Serializer[Any]):
        answers = serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=20), max_length=20)

    @extend_schema(request=GateAnswersInputSerializer)
    def post(self, request: Request) -> Response:
        visit = request_visit(request)
        data = self.GateAnswersInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        attempt = gate_questions_answer(visit_id=visit.pk, answers=data.validated_data["answers"])
        return Response({"passed": attempt.status == "passed", **gates_status_for_customer(visit=visit)})
