"""The customer's mobile API for Gate 1.

Customers are not users: the visit is bound to the browser's session and
reaches these views as ``request.auth`` (``apps.visits.authentication``), so
one browser can only act on its own visit. CSRF is enforced on every write
although the caller is anonymous.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from apps.businesses.registry import BUSINESSES, business_get
from apps.common.errors import ValidationFailed
from apps.common.masking import mask_account_number, mask_mobile
from apps.common.uploads import LimitedMemoryUploadHandler
from apps.verification.messages import message_for
from apps.verification.models import AccountPhotoState, RefusalCode, Verification, VerificationState
from apps.verification.services import (
    PayloadTooLarge,
    account_status_message,
    verification_account_photo_upload,
    verification_account_submit,
    verification_id_card_retake,
    verification_id_card_upload,
    verification_identity_confirm,
    verification_sms_send,
    verification_sms_verify,
    verification_start,
)
from apps.visits.authentication import CustomerApi, request_visit, visit_session_bind


def _upload_bytes(request: Request, field: str) -> bytes:
    """The uploaded file's bytes, refused with 413 before being read when over GATE1_MAX_UPLOAD_BYTES.

    The upload handler keeps the file in memory only (nothing on disk) and
    stops reading at the limit; Daphne's bodies are already bounded by
    ``apps.common.uploads.request_body_limit``.
    """
    limit = settings.GATE1_MAX_UPLOAD_BYTES
    handler = next(h for h in request._request.upload_handlers if isinstance(h, LimitedMemoryUploadHandler))
    upload = request.FILES.get(field)
    if handler.exceeded or (upload is not None and upload.size is not None and upload.size > limit):
        raise PayloadTooLarge(message_for("too_large_bytes"), code="too_large_bytes")
    if upload is None:
        raise ValidationFailed(_("Please attach a photo."), code="photo_missing")
    return upload.read()


class VisitOutputSerializer(serializers.Serializer):
    """What the customer's own page may know about the visit and its Gate 1.

    Never which blacklist hit, never another person's data. The ID number
    read from the card is shown in full only to the session that uploaded it,
    for the customer to check it against their card. Optional parts are left
    out (not null) when they do not apply.
    """

    OPTIONAL = ("id_card_problem", "id_card", "customer_name", "account", "refusal", "mobile_proof", "account_photo")

    id = serializers.UUIDField(source="visit.public_id")
    state = serializers.CharField()
    state_label = serializers.SerializerMethodField()
    business = serializers.CharField(source="visit.business_code")
    business_name = serializers.SerializerMethodField()
    id_card_attempts = serializers.IntegerField()
    id_card_problem = serializers.SerializerMethodField()
    id_card = serializers.SerializerMethodField()
    customer_name = serializers.CharField(source="visit.customer.name", default=None)
    account = serializers.SerializerMethodField()
    refusal = serializers.SerializerMethodField()
    mobile_proof = serializers.SerializerMethodField()
    account_photo = serializers.SerializerMethodField()

    def get_mobile_proof(self, verification: Verification) -> dict[str, Any] | None:
        """Where the SMS proof stands, from the identity match on (never the code, only the masked number)."""
        if verification.state != VerificationState.IDENTITY_MATCHED and verification.mobile_proven_at is None:
            return None
        customer = verification.visit.customer
        now = timezone.now()
        resend_in = 0
        if verification.sms_last_sent_at is not None:
            waited = (now - verification.sms_last_sent_at).total_seconds()
            resend_in = max(0, int(settings.GATE1_SMS_RESEND_SECONDS - waited + 0.999))
        return {
            "proven": verification.mobile_proven_at is not None,
            "mobile": mask_mobile(customer.mobile) if customer is not None else "",
            "code_sent": bool(verification.sms_code_hash)
            and verification.sms_expires_at is not None
            and verification.sms_expires_at > now,
            "resend_in_seconds": resend_in,
            "tries_left": max(0, settings.GATE1_SMS_MAX_TRIES - verification.sms_wrong_tries),
            "sends_left": max(0, settings.GATE1_SMS_MAX_SENDS - verification.sms_sent_count),
        }

    def get_account_photo(self, verification: Verification) -> dict[str, Any] | None:
        state = verification.account_photo_state
        if not state or verification.state != VerificationState.IDENTITY_MATCHED:
            return None
        body: dict[str, Any] = {
            "state": state,
            "attempts_left": max(0, settings.GATE1_MAX_ACCOUNT_PHOTO_UPLOADS - verification.account_photo_attempts),
        }
        if state == AccountPhotoState.READ:
            body.update(number=verification.account_photo_number, source=verification.account_photo_source)
        elif state == AccountPhotoState.FAILED:
            code = verification.account_photo_failure_code
            body.update(code=code, message=message_for(code))
        return body

    def get_state_label(self, verification: Verification) -> str:
        return str(VerificationState(verification.state).label)

    def get_business_name(self, verification: Verification) -> str:
        return str(business_get(verification.visit.business_code).name)

    def get_id_card_problem(self, verification: Verification) -> dict[str, str] | None:
        code = verification.id_card_failure_code
        return {"code": code, "message": message_for(code)} if code else None

    def get_id_card(self, verification: Verification) -> dict[str, Any] | None:
        if verification.state != VerificationState.ID_CARD_READ:
            return None
        return {
            "name": verification.read_name,
            # Positions of characters OCR was not sure of: the page marks them for the customer to check.
            "name_uncertain": verification.read_name_uncertain,
            "sex": verification.read_sex,
            "ethnicity": verification.read_ethnicity,
            "birth_date": verification.read_birth_date.isoformat() if verification.read_birth_date else None,
            "address": verification.read_address,
            "id_number": verification.read_id_number,
        }

    def get_account(self, verification: Verification) -> dict[str, str] | None:
        visit = verification.visit
        if visit.account is None:
            return None
        return {
            "number": mask_account_number(visit.account.number),
            "kind": visit.account.kind,
            "status": visit.account.status,
            "status_message": account_status_message(
                status=visit.account.status, business=business_get(visit.business_code)
            ),
        }

    def get_refusal(self, verification: Verification) -> dict[str, str] | None:
        if verification.state != VerificationState.REFUSED:
            return None
        code = verification.refusal_code
        account = self.get_account(verification)
        message = account["status_message"] if code == RefusalCode.ACCOUNT_STATUS and account else message_for(code)
        return {"code": code, "message": message}

    def to_representation(self, instance: Verification) -> dict[str, Any]:
        body = super().to_representation(instance)
        return {key: value for key, value in body.items() if key not in self.OPTIONAL or value is not None}


def _answer(verification: Verification, code: int = status.HTTP_200_OK) -> Response:
    return Response(VisitOutputSerializer(verification).data, status=code)


class BusinessListApi(CustomerApi):
    permission_classes = (AllowAny,)

    class OutputSerializer(serializers.Serializer):
        code = serializers.CharField()
        name = serializers.CharField()

    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(BUSINESSES, many=True).data)


class VisitStartApi(CustomerApi):
    permission_classes = (AllowAny,)

    class VisitStartInputSerializer(serializers.Serializer):
        business = serializers.CharField(max_length=32)
        mobile = serializers.CharField(max_length=20)

    @extend_schema(request=VisitStartInputSerializer)
    def post(self, request: Request) -> Response:
        payload = self.VisitStartInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        verification = verification_start(
            business_code=payload.validated_data["business"], mobile=payload.validated_data["mobile"]
        )
        visit_session_bind(request, verification.visit)
        return _answer(verification, status.HTTP_201_CREATED)


class VisitCurrentApi(CustomerApi):
    def get(self, request: Request) -> Response:
        return _answer(verification_of(request))


def verification_of(request: Request) -> Verification:
    """The session's visit's Gate 1 row, with the visit the request carries."""
    visit = request_visit(request)
    verification = Verification.objects.get(visit=visit)
    verification.visit = visit
    return verification


_PHOTO_UPLOAD = {
    "multipart/form-data": {
        "type": "object",
        "properties": {"photo": {"type": "string", "format": "binary"}},
        "required": ["photo"],
    }
}


class _PhotoUploadApi(CustomerApi):
    """A customer endpoint that takes one photo: the bounded in-memory upload handler is set first.

    It must be in place before anything reads the body; the CSRF check of the
    session authentication may read the form, so ``dispatch`` (before DRF's
    authentication) installs it, not the handler method.
    """

    parser_classes = (MultiPartParser, FormParser)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        request.upload_handlers = [LimitedMemoryUploadHandler(request, limit=settings.GATE1_MAX_UPLOAD_BYTES)]
        return super().dispatch(request, *args, **kwargs)


class VisitIdCardApi(_PhotoUploadApi):
    @extend_schema(request=_PHOTO_UPLOAD)
    def post(self, request: Request) -> Response:
        data = _upload_bytes(request, "photo")
        verification = verification_id_card_upload(visit_id=request_visit(request).pk, data=data)
        return _answer(verification, status.HTTP_202_ACCEPTED)


class VisitIdCardRetakeApi(CustomerApi):
    def post(self, request: Request) -> Response:
        return _answer(verification_id_card_retake(visit_id=request_visit(request).pk))


class VisitIdentityConfirmApi(CustomerApi):
    def post(self, request: Request) -> Response:
        return _answer(verification_identity_confirm(visit_id=request_visit(request).pk))


class VisitAccountPhotoApi(_PhotoUploadApi):
    """Upload a photo of the bank card or passbook; the number is read in Celery (poll ``current/``)."""

    @extend_schema(request=_PHOTO_UPLOAD)
    def post(self, request: Request) -> Response:
        data = _upload_bytes(request, "photo")
        verification = verification_account_photo_upload(visit_id=request_visit(request).pk, data=data)
        return _answer(verification, status.HTTP_202_ACCEPTED)


class VisitSmsSendApi(CustomerApi):
    def post(self, request: Request) -> Response:
        return _answer(verification_sms_send(visit_id=request_visit(request).pk))


class VisitSmsVerifyApi(CustomerApi):
    parser_classes = (JSONParser, FormParser)

    class VisitSmsVerifyInputSerializer(serializers.Serializer):
        code = serializers.RegexField(r"^\s*[0-9]{6}\s*$", max_length=12)

    @extend_schema(request=VisitSmsVerifyInputSerializer)
    def post(self, request: Request) -> Response:
        payload = self.VisitSmsVerifyInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        verification = verification_sms_verify(visit_id=request_visit(request).pk, code=payload.validated_data["code"])
        return _answer(verification)


class VisitAccountApi(CustomerApi):
    parser_classes = (JSONParser, FormParser)

    class VisitAccountInputSerializer(serializers.Serializer):
        number = serializers.RegexField(r"^[0-9 ]{8,40}$", max_length=40)

    @extend_schema(request=VisitAccountInputSerializer)
    def post(self, request: Request) -> Response:
        payload = self.VisitAccountInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        verification = verification_account_submit(
            visit_id=request_visit(request).pk, number=payload.validated_data["number"]
        )
        return _answer(verification)
