"""Gates API: the agent's console runs gates 2–4 of the call; the customer answers Gate 4 on their own page.

Staff endpoints take the call's public id and require a staff participant
still present in the connected call (checked by the services). Customer
endpoints act on the visit bound to the browser's session only.
"""

from __future__ import annotations

from datetime import UTC
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
from apps.gates.models import AttemptStatus, Gate, GateAttempt
from apps.gates.selectors import (
    CustomerGatesStatus,
    GatesStatus,
    GateStatus,
    gate_attempt_result_message,
    gate_progress_for_visit,
    gates_status_for_customer,
    gates_status_for_staff,
)
from apps.gates.services import (
    gate_face_liveness_start,
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


class GatesStaffOutputSerializer(serializers.Serializer[GatesStatus]):
    """Gates 2–4 of the call's service as the agent's console shows them: every attempt, score and time."""

    class GateOutputSerializer(serializers.Serializer[GateStatus]):
        class AttemptOutputSerializer(serializers.Serializer[GateAttempt]):
            number = serializers.IntegerField()
            status = serializers.CharField()
            result = serializers.CharField(source="result_code")
            message = serializers.SerializerMethodField()
            started_at = serializers.DateTimeField(default_timezone=UTC)
            finished_at = serializers.DateTimeField(default_timezone=UTC)
            reference = serializers.CharField()
            scores = serializers.JSONField(help_text="Gate 3 only.")
            snapshot = serializers.SerializerMethodField(help_text="Gate 3 only.")
            asked = serializers.SerializerMethodField(help_text="Gate 4 only.")

            _ONLY_FOR = {"scores": Gate.FACE, "snapshot": Gate.FACE, "asked": Gate.QUESTIONS}

            def get_message(self, attempt: GateAttempt) -> str:
                return gate_attempt_result_message(attempt)

            def get_snapshot(self, attempt: GateAttempt) -> str | None:
                return str(attempt.snapshot.public_id) if attempt.snapshot else None

            def get_asked(self, attempt: GateAttempt) -> Any:
                # Pass or fail only: never which answer was right, nor the customer's answers.
                return attempt.scores.get("asked")

            def to_representation(self, instance: GateAttempt) -> dict[str, Any]:
                data = super().to_representation(instance)
                return {
                    key: value for key, value in data.items() if self._ONLY_FOR.get(key, instance.gate) == instance.gate
                }

        gate = serializers.CharField()
        label = serializers.CharField(source="gate.label")  # type: ignore[assignment]  # a field, not Field.label
        status = serializers.CharField()
        passed_at = serializers.DateTimeField(default_timezone=UTC)
        attempts = AttemptOutputSerializer(many=True)

    state = serializers.CharField()
    all_passed = serializers.BooleanField()
    failed_gate = serializers.CharField()
    failure_reason = serializers.CharField()
    has_registry_photo = serializers.BooleanField()
    gates = GateOutputSerializer(many=True)


class GatesCustomerOutputSerializer(serializers.Serializer[CustomerGatesStatus]):
    """The customer's page: which checks passed, and the questions to answer, if any (never the answers)."""

    state = serializers.CharField()
    failed_gate = serializers.CharField()
    questions = serializers.ListField(child=serializers.DictField())


class CallGatesApi(APIView):
    """``GET``: gates 2–4 of the call's service, with every attempt, score and time."""

    permission_classes = (_SERVE,)

    @extend_schema(responses=GatesStaffOutputSerializer)
    def get(self, request: Request, public_id: str) -> Response:
        call = _call_for_staff(request, public_id)
        return Response(GatesStaffOutputSerializer(gates_status_for_staff(visit=call.visit)).data)


class GateIdentityApi(APIView):
    """``POST``: ask the identity registry (Gate 2). The result fills in by itself."""

    permission_classes = (_SERVE,)

    @extend_schema(request=None, responses={202: GatesStaffOutputSerializer})
    def post(self, request: Request, public_id: str) -> Response:
        call = _call_for_staff(request, public_id)
        gate_identity_check_start(actor=request_staff_user(request), call_id=call.pk)
        return Response(GatesStaffOutputSerializer(gates_status_for_staff(visit=call.visit)).data, status=202)


class GateFaceApi(APIView):
    """``POST {}``: Gate 3 with active liveness: a challenge on the customer's page, a burst the server captures,
    its best frame compared with the ID-card portrait and the registry photo.

    ``{"snapshot": id}`` (compare a snapshot taken earlier, no liveness) is
    refused while GATE_FACE_LIVENESS_REQUIRED is on (409 ``liveness_required``).
    """

    permission_classes = (_SERVE,)
    parser_classes = (JSONParser,)

    class GateFaceInputSerializer(serializers.Serializer[Any]):
        snapshot = serializers.UUIDField(required=False)

    @extend_schema(request=GateFaceInputSerializer, responses={202: GatesStaffOutputSerializer})
    def post(self, request: Request, public_id: str) -> Response:
        call = _call_for_staff(request, public_id)
        data = self.GateFaceInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        snapshot = data.validated_data.get("snapshot")
        if snapshot is None:
            gate_face_liveness_start(actor=request_staff_user(request), call_id=call.pk)
        else:
            gate_face_verify_start(actor=request_staff_user(request), call_id=call.pk, snapshot_public_id=str(snapshot))
        return Response(GatesStaffOutputSerializer(gates_status_for_staff(visit=call.visit)).data, status=202)


class GateQuestionsApi(APIView):
    """``POST``: draw the private questions (Gate 4); they appear on the customer's page."""

    permission_classes = (_SERVE,)

    @extend_schema(request=None, responses={201: GatesStaffOutputSerializer})
    def post(self, request: Request, public_id: str) -> Response:
        call = _call_for_staff(request, public_id)
        gate_questions_draw(actor=request_staff_user(request), call_id=call.pk)
        return Response(GatesStaffOutputSerializer(gates_status_for_staff(visit=call.visit)).data, status=201)


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


class GateIdPortraitApi(APIView):
    """``GET``: the portrait cut from the customer's ID card (Gate 1), for staff in the call: Gate 3's second image."""

    permission_classes = (_SERVE,)

    def get(self, request: Request, public_id: str) -> FileResponse:
        call = _call_for_staff(request, public_id)
        verification = getattr(call.visit, "verification", None)
        portrait = verification.id_card_portrait if verification is not None else None
        if not portrait:
            raise NotFound(_("There is no ID-card portrait for this service."), code="no_id_portrait")
        response = FileResponse(portrait.open("rb"), content_type="image/jpeg")
        response["Cache-Control"] = "private, no-store"
        return response


class VisitGatesApi(CustomerApi):
    """The customer's own page: ``GET`` the checks' progress and any questions to answer."""

    @extend_schema(responses=GatesCustomerOutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(GatesCustomerOutputSerializer(gates_status_for_customer(visit=request_visit(request))).data)


class VisitGateAnswersApi(CustomerApi):
    """``POST {"answers": [option index, …]}``: the customer's answers to Gate 4."""

    parser_classes = (JSONParser,)

    class GateAnswersInputSerializer(serializers.Serializer[Any]):
        answers = serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=20), max_length=20)

    class OutputSerializer(serializers.Serializer[Any]):
        passed = serializers.BooleanField()
        state = serializers.CharField(source="status.state")
        failed_gate = serializers.CharField(source="status.failed_gate")
        questions = serializers.ListField(child=serializers.DictField(), source="status.questions")

    @extend_schema(request=GateAnswersInputSerializer, responses=OutputSerializer)
    def post(self, request: Request) -> Response:
        visit = request_visit(request)
        data = self.GateAnswersInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        attempt = gate_questions_answer(visit_id=visit.pk, answers=data.validated_data["answers"])
        status = gates_status_for_customer(visit=visit)
        return Response(
            self.OutputSerializer({"passed": attempt.status == AttemptStatus.PASSED, "status": status}).data
        )
