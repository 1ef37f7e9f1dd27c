"""Operations API: the agent starts and confirms the business in the call; the customer sets a PIN or confirms on their page.

Every endpoint goes through a service that first checks that all four gates
passed for the service (R6.5). Creating requests carry an ``Idempotency-Key``
header: a double submission returns the same operation.
"""

from __future__ import annotations

from typing import Any

from django.http import FileResponse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.actions import AuditAction
from apps.audit.services import audit_record
from apps.calls.models import Call
from apps.calls.selectors import call_for_staff_participant
from apps.common.api import request_staff_user, require_permission
from apps.common.errors import NotFound
from apps.gates.services import gates_require_passed
from apps.operations.models import Operation
from apps.operations.selectors import operation_for_agent, operation_for_customer, operations_for_visit
from apps.operations.services import (
    operation_agent_confirm,
    operation_cancel,
    operation_customer_confirm,
    operation_customer_pin,
    operation_start,
)
from apps.visits.authentication import CustomerApi, request_visit

_SERVE = require_permission("queueing.serve_customers")

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


def _call_for_staff(request: Request, public_id: Any) -> Call:
    return call_for_staff_participant(
        public_id=public_id,
        user=request_staff_user(request),
        denied=_("Only staff in this call can see its operations."),
    )


class CallOperationsApi(APIView):
    """``GET``: the service's operations; ``POST`` (with ``Idempotency-Key``): start the service's business."""

    permission_classes = (_SERVE,)
    parser_classes = (JSONParser,)

    def get(self, request: Request, public_id: str) -> Response:
        call = _call_for_staff(request, public_id)
        return Response({"operations": [operation_for_agent(item) for item in operations_for_visit(visit=call.visit)]})

    @extend_schema(
        request=_START_BODY,
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=True)],
    )
    def post(self, request: Request, public_id: str) -> Response:
        call = _call_for_staff(request, public_id)
        data = request.data if isinstance(request.data, dict) else {}
        operation = operation_start(
            actor=request_staff_user(request),
            call_id=call.pk,
            idempotency_key=request.headers.get("Idempotency-Key", ""),
            data=data,
        )
        return Response(operation_for_agent(operation), status=201)


def _operation_for_staff(request: Request, operation_id: Any) -> Operation:
    operation = Operation.objects.select_related("call", "visit").filter(public_id=operation_id).first()
    if operation is None or operation.call is None:
        raise NotFound(_("This operation does not exist."), code="operation_not_found")
    _call_for_staff(request, operation.call.public_id)
    return operation


class OperationConfirmApi(APIView):
    """``POST``: the agent confirms (lost-report release; intent verification with ``answers``)."""

    permission_classes = (_SERVE,)
    # A confirmation without answers may come as an empty form post.
    parser_classes = (JSONParser, FormParser, MultiPartParser)

    @extend_schema(request=_CONFIRM_BODY)
    def post(self, request: Request, operation_id: str) -> Response:
        # The service checks the operation and that the agent is in its live call.
        data = request.data if isinstance(request.data, dict) else {}
        operation = operation_agent_confirm(actor=request_staff_user(request), public_id=operation_id, data=data)
        return Response(operation_for_agent(operation))


class OperationCancelApi(APIView):
    permission_classes = (_SERVE,)

    def post(self, request: Request, operation_id: str) -> Response:
        operation = operation_cancel(actor=request_staff_user(request), public_id=operation_id)
        return Response(operation_for_agent(operation))


class OperationCertificateApi(APIView):
    """``GET``: the intent verification certificate (PDF), for staff in the call. Audited."""

    permission_classes = (_SERVE,)

    def get(self, request: Request, operation_id: str) -> FileResponse:
        operation = _operation_for_staff(request, operation_id)
        user = request_staff_user(request)
        gates_require_passed(visit_id=operation.visit_id, actor=user, operation="certificate")
        if not operation.certificate:
            raise NotFound(_("This operation has no certificate."), code="no_certificate")
        audit_record(
            actor=user,
            action=AuditAction.OPERATION_CERTIFICATE_DOWNLOADED,
            target=operation.visit,
            data={"operation": str(operation.public_id), "sha256": operation.certificate_sha256},
        )
        response = FileResponse(
            operation.certificate.open("rb"),
            content_type="application/pdf",
            as_attachment=True,
            filename=f"intent-{operation.public_id}.pdf",
        )
        response["Cache-Control"] = "private, no-store"
        return response


def _answer_to_customer(operation: Operation) -> dict[str, Any]:
    """What the customer's page learns after a PIN or a confirmation: the state and result, nothing else."""
    return {"operation": {"id": str(operation.public_id), "state": operation.state, "result": operation.result_code}}


class VisitOperationApi(CustomerApi):
    """The customer's page: ``GET`` the operation waiting for their PIN or confirmation, if any."""

    def get(self, request: Request) -> Response:
        return Response({"operation": operation_for_customer(visit=request_visit(request))})


class VisitOperationPinApi(CustomerApi):
    """``POST {"pin", "pin_repeat"}``: the new PIN, typed twice on the customer's own PIN pad."""

    parser_classes = (JSONParser,)

    class OperationPinInputSerializer(serializers.Serializer[Any]):
        # Plain strings, checked by the service; never echoed in errors.
        pin = serializers.CharField(max_length=12, trim_whitespace=False)
        pin_repeat = serializers.CharField(max_length=12, trim_whitespace=False)

    @extend_schema(request=OperationPinInputSerializer)
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
        return Response(_answer_to_customer(operation))


class VisitOperationConfirmApi(CustomerApi):
    """``POST {"accept": true|false}``: the customer confirms or declines the before/after shown."""

    parser_classes = (JSONParser,)

    class OperationCustomerConfirmInputSerializer(serializers.Serializer[Any]):
        accept = serializers.BooleanField()

    @extend_schema(request=OperationCustomerConfirmInputSerializer)
    def post(self, request: Request, operation_id: str) -> Response:
        visit = request_visit(request)
        data = self.OperationCustomerConfirmInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        operation = operation_customer_confirm(
            visit_id=visit.pk, public_id=operation_id, accept=data.validated_data["accept"]
        )
        return Response(_answer_to_customer(operation))
