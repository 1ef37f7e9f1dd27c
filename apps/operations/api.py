"""Operations API: the agent starts and confirms the business in the call; the customer sets a PIN or confirms on their page.

Every endpoint goes through a service that first checks that all four gates
passed for the service (R6.5). Creating requests carry an ``Idempotency-Key``
header: a double submission returns the same operation.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from django.http import FileResponse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.calls.selectors import call_for_staff_participant
from apps.common.api import request_staff_user, require_permission
from apps.operations.handlers import INTENT_SCRIPT, masked_for_agent
from apps.operations.models import Operation
from apps.operations.selectors import (
    operation_for_staff_participant,
    operation_result_label,
    operation_waiting_for_customer,
    operations_for_visit,
)
from apps.operations.services import (
    operation_agent_confirm,
    operation_cancel,
    operation_certificate_download,
    operation_customer_confirm,
    operation_customer_intent,
    operation_customer_pin,
    operation_start,
)
from apps.visits.authentication import CustomerApi, request_visit

_SERVE = require_permission("queueing.serve_customers")
_DENIED = _("Only staff in this call can see its operations.")

_START_BODY = {
    "application/json": {
        "type": "object",
        "properties": {
            "changes": {
                "type": "object",
                "description": "information maintenance only: new address, mobile, occupation, id_valid_until",
                "additionalProperties": {"type": "string"},
            }
        },
    }
}
_CONFIRM_BODY = {
    "application/json": {
        "type": "object",
        "properties": {
            "answers": {
                "type": "object",
                "description": "intent verification only",
                "properties": {
                    "company_confirmed": {"type": "boolean"},
                    "purpose": {"type": "string"},
                    "intent": {"type": "boolean"},
                },
            }
        },
    }
}


class OperationAgentOutputSerializer(serializers.Serializer[Operation]):
    """What the agent's console shows: states, before/after (mobile masked), the loss date; never a PIN."""

    id = serializers.CharField(source="public_id")
    business = serializers.CharField(source="business_code")
    state = serializers.CharField()
    confirm_by = serializers.CharField()
    result = serializers.CharField(source="result_code")
    result_label = serializers.SerializerMethodField()
    before = serializers.SerializerMethodField()
    after = serializers.SerializerMethodField()
    details = serializers.SerializerMethodField()
    certificate_sha256 = serializers.CharField()
    has_certificate = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(default_timezone=UTC)
    finished_at = serializers.DateTimeField(default_timezone=UTC)
    script = serializers.SerializerMethodField(help_text="Intent verification only: the script the agent reads.")

    def get_result_label(self, operation: Operation) -> str:
        return operation_result_label(operation.result_code)

    def get_before(self, operation: Operation) -> dict[str, str]:
        return {name: masked_for_agent(name, str(value)) for name, value in operation.before.items()}

    def get_after(self, operation: Operation) -> dict[str, str]:
        return {name: masked_for_agent(name, str(value)) for name, value in operation.after.items()}

    def get_details(self, operation: Operation) -> dict[str, Any]:
        return {key: value for key, value in operation.details.items() if key != "certificate_sha256"}

    def get_has_certificate(self, operation: Operation) -> bool:
        return bool(operation.certificate)

    def get_script(self, operation: Operation) -> list[dict[str, str]] | None:
        return intent_script(operation)

    def to_representation(self, instance: Operation) -> dict[str, Any]:
        data = super().to_representation(instance)
        if data["script"] is None:  # absent, not null, for the businesses without a script
            del data["script"]
        return dict(data)


class OperationResultOutputSerializer(serializers.Serializer[Operation]):
    """What the customer's page learns after a PIN or a confirmation: the state and result, nothing else."""

    class ResultSerializer(serializers.Serializer[Operation]):
        id = serializers.CharField(source="public_id")
        state = serializers.CharField()
        result = serializers.CharField(source="result_code")

    operation = ResultSerializer(source="*")


def intent_script(operation: Operation) -> list[dict[str, str]] | None:
    if operation.business_code != "corporate_intent":
        return None
    company = operation.details.get("company", "")
    return [{"key": key, "text": str(text) % {"company": company}} for key, text in INTENT_SCRIPT]


class CallOperationsApi(APIView):
    """``GET``: the service's operations."""

    permission_classes = (_SERVE,)

    class OutputSerializer(serializers.Serializer[Any]):
        operations = OperationAgentOutputSerializer(many=True)

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request, public_id: str) -> Response:
        call = call_for_staff_participant(public_id=public_id, user=request_staff_user(request), denied=_DENIED)
        return Response(self.OutputSerializer({"operations": operations_for_visit(visit=call.visit)}).data)


class CallOperationStartApi(APIView):
    """``POST`` (with ``Idempotency-Key``): start the service's business."""

    permission_classes = (_SERVE,)
    parser_classes = (JSONParser,)

    @extend_schema(
        request=_START_BODY,
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=True)],
        responses={201: OperationAgentOutputSerializer},
    )
    def post(self, request: Request, public_id: str) -> Response:
        call = call_for_staff_participant(public_id=public_id, user=request_staff_user(request), denied=_DENIED)
        operation = operation_start(
            actor=request_staff_user(request),
            call_id=call.pk,
            idempotency_key=request.headers.get("Idempotency-Key", ""),
            data=request.data if isinstance(request.data, dict) else {},
        )
        return Response(OperationAgentOutputSerializer(operation).data, status=201)


class OperationConfirmApi(APIView):
    """``POST``: the agent confirms (lost-report release; intent verification with ``answers``)."""

    permission_classes = (_SERVE,)
    # A confirmation without answers may come as an empty form post.
    parser_classes = (JSONParser, FormParser, MultiPartParser)

    @extend_schema(request=_CONFIRM_BODY, responses=OperationAgentOutputSerializer)
    def post(self, request: Request, operation_id: str) -> Response:
        # The service checks the operation and that the agent is in its live call.
        operation = operation_agent_confirm(
            actor=request_staff_user(request),
            public_id=operation_id,
            data=request.data if isinstance(request.data, dict) else {},
        )
        return Response(OperationAgentOutputSerializer(operation).data)


class OperationCancelApi(APIView):
    """``POST``: the agent withdraws an operation still waiting for confirmation."""

    permission_classes = (_SERVE,)

    @extend_schema(request=None, responses=OperationAgentOutputSerializer)
    def post(self, request: Request, operation_id: str) -> Response:
        operation = operation_cancel(actor=request_staff_user(request), public_id=operation_id)
        return Response(OperationAgentOutputSerializer(operation).data)


class OperationCertificateApi(APIView):
    """``GET``: the intent verification certificate (PDF), for staff in the call. Audited."""

    permission_classes = (_SERVE,)

    def get(self, request: Request, operation_id: str) -> FileResponse:
        user = request_staff_user(request)
        operation = operation_for_staff_participant(public_id=operation_id, user=user, denied=_DENIED)
        operation = operation_certificate_download(actor=user, operation=operation)
        response = FileResponse(
            operation.certificate.open("rb"),
            content_type="application/pdf",
            as_attachment=True,
            filename=f"intent-{operation.public_id}.pdf",
        )
        response["Cache-Control"] = "private, no-store"
        return response


class VisitOperationApi(CustomerApi):
    """The customer's page: ``GET`` the operation waiting for their PIN or confirmation, if any."""

    class OutputSerializer(serializers.Serializer[Any]):
        class WaitingSerializer(serializers.Serializer[Operation]):
            id = serializers.CharField(source="public_id")
            business = serializers.CharField(source="business_code")
            state = serializers.CharField()
            confirm_by = serializers.CharField()
            result = serializers.CharField(source="result_code")
            # The customer's own values, in full: they are confirming them.
            before = serializers.DictField()
            after = serializers.DictField()
            script = serializers.SerializerMethodField(help_text="Intent verification only: the questions to answer.")

            def get_script(self, operation: Operation) -> list[dict[str, str]] | None:
                return intent_script(operation)

        operation = WaitingSerializer(allow_null=True)

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        operation = operation_waiting_for_customer(visit=request_visit(request))
        return Response(self.OutputSerializer({"operation": operation}).data)


class VisitOperationPinApi(CustomerApi):
    """``POST {"pin", "pin_repeat"}``: the new PIN, typed twice on the customer's own PIN pad."""

    parser_classes = (JSONParser,)

    class OperationPinInputSerializer(serializers.Serializer[Any]):
        # Plain strings, checked by the service; never echoed in errors.
        pin = serializers.CharField(max_length=12, trim_whitespace=False)
        pin_repeat = serializers.CharField(max_length=12, trim_whitespace=False)

    @extend_schema(request=OperationPinInputSerializer, responses=OperationResultOutputSerializer)
    def post(self, request: Request, operation_id: str) -> Response:
        visit = request_visit(request)
        data = self.OperationPinInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        operation = operation_customer_pin(
            visit_id=visit.pk,
            public_id=operation_id,
            pin=data.validated_data["pin"],
            repeat=data.validated_data["pin_repeat"],
        )
        return Response(OperationResultOutputSerializer(operation).data)


class VisitOperationConfirmApi(CustomerApi):
    """``POST {"accept": true|false}``: the customer confirms or declines the before/after shown."""

    parser_classes = (JSONParser,)

    class OperationCustomerConfirmInputSerializer(serializers.Serializer[Any]):
        accept = serializers.BooleanField()

    @extend_schema(request=OperationCustomerConfirmInputSerializer, responses=OperationResultOutputSerializer)
    def post(self, request: Request, operation_id: str) -> Response:
        visit = request_visit(request)
        data = self.OperationCustomerConfirmInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        operation = operation_customer_confirm(
            visit_id=visit.pk, public_id=operation_id, accept=data.validated_data["accept"]
        )
        return Response(OperationResultOutputSerializer(operation).data)


class VisitOperationIntentApi(CustomerApi):
    """``POST {"answers": {"company_confirmed", "purpose", "intent"}}``: the legal representative's own answers."""

    parser_classes = (JSONParser,)

    class OperationIntentInputSerializer(serializers.Serializer[Any]):
        answers = serializers.DictField()

    @extend_schema(request=OperationIntentInputSerializer, responses=OperationResultOutputSerializer)
    def post(self, request: Request, operation_id: str) -> Response:
        visit = request_visit(request)
        data = self.OperationIntentInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        operation = operation_customer_intent(visit_id=visit.pk, public_id=operation_id, data=data.validated_data)
        return Response(OperationResultOutputSerializer(operation).data)
