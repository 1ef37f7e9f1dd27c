"""The customer's mobile API for Gate 1.

Customers are not users: the visit is bound to the browser's session (the
visit id is kept server-side in the session), so one browser can only act on
its own visit, and forged ids in URLs are impossible by construction. CSRF is
enforced on every write although the caller is anonymous.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.businesses.registry import BUSINESSES, business_get
from apps.common.errors import NotFound, ValidationFailed
from apps.common.masking import mask_account_number
from apps.verification.messages import message_for
from apps.verification.models import RefusalCode, ServiceSession, VisitState
from apps.verification.services import (
    account_status_message,
    visit_account_photo_read,
    visit_account_submit,
    visit_id_card_retake,
    visit_id_card_upload,
    visit_identity_confirm,
    visit_start,
)

SESSION_KEY = "remotebank_visit_id"


class CsrfEnforced(BasePermission):
    """Anonymous customers still get CSRF protection on writes."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            SessionAuthentication().enforce_csrf(request)
        return True


def current_visit(request: HttpRequest) -> ServiceSession:
    visit_id = request.session.get(SESSION_KEY)
    visit = (
        ServiceSession.objects.select_related("customer", "account").filter(pk=visit_id).first() if visit_id else None
    )
    if visit is None:
        raise NotFound(_("No visit in progress. Please start again."), code="no_visit")
    return visit


def _upload_bytes(request: Request, field: str) -> bytes:
    upload = request.FILES.get(field)
    if upload is None:
        raise ValidationFailed(_("Please attach a photo."), code="photo_missing")
    if upload.size is not None and upload.size > settings.GATE1_MAX_UPLOAD_BYTES:
        raise ValidationFailed(message_for("too_large_bytes"), code="too_large_bytes")
    return upload.read()


def visit_representation(visit: ServiceSession) -> dict[str, Any]:
    """What the customer's own page may know about the visit.

    Never which blacklist hit, never another person's data. The ID number
    read from the card is shown in full only to the session that uploaded it,
    for the customer to check it against their card.
    """
    body: dict[str, Any] = {
        "id": str(visit.public_id),
        "state": visit.state,
        "state_label": str(VisitState(visit.state).label),
        "business": visit.business_code,
        "business_name": str(business_get(visit.business_code).name),
        "id_card_attempts": visit.id_card_attempts,
    }
    if visit.id_card_failure_code:
        body["id_card_problem"] = {
            "code": visit.id_card_failure_code,
            "message": message_for(visit.id_card_failure_code),
        }
    if visit.state == VisitState.ID_CARD_READ:
        body["id_card"] = {
            "name": visit.read_name,
            "sex": visit.read_sex,
            "ethnicity": visit.read_ethnicity,
            "birth_date": visit.read_birth_date.isoformat() if visit.read_birth_date else None,
            "address": visit.read_address,
            "id_number": visit.read_id_number,
        }
    if visit.customer is not None:
        body["customer_name"] = visit.customer.name
    if visit.account is not None:
        body["account"] = {
            "number": mask_account_number(visit.account.number),
            "kind": visit.account.kind,
            "status": visit.account.status,
            "status_message": account_status_message(
                status=visit.account.status, business=business_get(visit.business_code)
            ),
        }
    if visit.state == VisitState.REFUSED:
        code = visit.refusal_code
        message = body["account"]["status_message"] if code == RefusalCode.ACCOUNT_STATUS else message_for(code)
        body["refusal"] = {"code": code, "message": message}
    return body


class _VisitApi(APIView):
    authentication_classes = ()
    permission_classes = (CsrfEnforced,)


class BusinessListApi(_VisitApi):
    def get(self, request: Request) -> Response:
        return Response([{"code": b.code, "name": str(b.name)} for b in BUSINESSES])


class VisitStartApi(_VisitApi):
    class VisitStartInputSerializer(serializers.Serializer):
        business = serializers.CharField(max_length=32)
        mobile = serializers.CharField(max_length=20)

    @extend_schema(request=VisitStartInputSerializer)
    def post(self, request: Request) -> Response:
        payload = self.VisitStartInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        visit = visit_start(business_code=payload.validated_data["business"], mobile=payload.validated_data["mobile"])
        # A new session id: a visit never inherits an earlier one's session.
        request.session.cycle_key()
        request.session[SESSION_KEY] = visit.pk
        return Response(visit_representation(visit), status=status.HTTP_201_CREATED)


class VisitCurrentApi(_VisitApi):
    def get(self, request: Request) -> Response:
        return Response(visit_representation(current_visit(request)))


_PHOTO_UPLOAD = {
    "multipart/form-data": {
        "type": "object",
        "properties": {"photo": {"type": "string", "format": "binary"}},
        "required": ["photo"],
    }
}


class VisitIdCardApi(_VisitApi):
    parser_classes = (MultiPartParser, FormParser)

    @extend_schema(request=_PHOTO_UPLOAD)
    def post(self, request: Request) -> Response:
        visit = current_visit(request)
        visit = visit_id_card_upload(visit_id=visit.pk, data=_upload_bytes(request, "photo"))
        return Response(visit_representation(visit), status=status.HTTP_202_ACCEPTED)


class VisitIdCardRetakeApi(_VisitApi):
    def post(self, request: Request) -> Response:
        return Response(visit_representation(visit_id_card_retake(visit_id=current_visit(request).pk)))


class VisitIdentityConfirmApi(_VisitApi):
    def post(self, request: Request) -> Response:
        return Response(visit_representation(visit_identity_confirm(visit_id=current_visit(request).pk)))


class VisitAccountPhotoApi(_VisitApi):
    parser_classes = (MultiPartParser, FormParser)

    @extend_schema(request=_PHOTO_UPLOAD)
    def post(self, request: Request) -> Response:
        reading = visit_account_photo_read(visit_id=current_visit(request).pk, data=_upload_bytes(request, "photo"))
        return Response({"number": reading.number, "source": reading.source})


class VisitAccountApi(_VisitApi):
    parser_classes = (JSONParser, FormParser)

    class VisitAccountInputSerializer(serializers.Serializer):
        number = serializers.RegexField(r"^[0-9 ]{8,40}$", max_length=40)

    @extend_schema(request=VisitAccountInputSerializer)
    def post(self, request: Request) -> Response:
        payload = self.VisitAccountInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        visit = visit_account_submit(visit_id=current_visit(request).pk, number=payload.validated_data["number"])
        return Response(visit_representation(visit))
