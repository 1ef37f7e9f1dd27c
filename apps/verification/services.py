"""Gate 1 (R6.1): the customer's journey from choosing a business to the queue's door.

Every step is a service that locks the visit, calls one FSM transition, saves,
audits and schedules side effects after commit. Steps called out of order are
refused by the state machine (``out_of_order``), whatever the client sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import TransitionNotAllowed

from apps.audit.actions import AuditAction
from apps.audit.models import ActorKind
from apps.audit.services import Actor, AnyActor, audit_record
from apps.businesses.registry import BusinessType, business_get
from apps.common.crypto import normalize_mobile
from apps.common.errors import ApplicationError, NotAllowed, NotFound, ValidationFailed
from apps.common.images import ImageRejected, downscale_for_ocr, image_to_jpeg_bytes, load_untrusted_image
from apps.common.masking import mask_account_number, mask_id_number, mask_mobile
from apps.customers.models import AccountStatus
from apps.customers.selectors import account_get_by_number, blacklist_hits, customer_match_three_elements
from apps.verification.idcard import (
    CardNumberUnreadable,
    IdCardUnreadable,
    crop_portrait,
    ensure_card_photo_is_sharp,
    parse_bank_card_number,
    parse_id_card_front,
)
from apps.verification.integrations.barcode import decode_barcodes
from apps.verification.integrations.ocr import get_ocr_engine
from apps.verification.messages import message_for
from apps.verification.models import RefusalCode, ServiceOutcome, ServiceSession, VisitState


class UploadRejected(ApplicationError):
    default_code = "upload_rejected"


class TooManyRequests(ApplicationError):
    status_code = 429
    default_code = "too_many_requests"


def _visit_actor(visit: ServiceSession) -> Actor:
    """The customer once identified; before that, the anonymous visit itself."""
    if visit.customer_id is not None:
        assert visit.customer is not None
        return visit.customer.as_audit_actor()
    return Actor(ActorKind.CUSTOMER, "", f"visit {visit.public_id}")


def _locked(visit_id: int) -> ServiceSession:
    try:
        # of=("self",): PostgreSQL cannot lock the nullable side of the
        # customer join, and only the visit row needs the lock.
        return ServiceSession.objects.select_for_update(of=("self",)).select_related("customer").get(pk=visit_id)
    except ServiceSession.DoesNotExist as exc:
        raise NotFound(_("This visit does not exist."), code="visit_not_found") from exc


def _apply(visit: ServiceSession, transition_name: str, *args: Any) -> None:
    """Run one FSM transition, turning an illegal one into a clear 409."""
    try:
        getattr(visit, transition_name)(*args)
    except TransitionNotAllowed as exc:
        raise NotAllowed(
            _("This step is not available now. Please follow the steps in order."),
            code="out_of_order",
            extra={"state": visit.state},
        ) from exc


def _refuse(visit: ServiceSession, code: RefusalCode, audit_data: dict[str, Any]) -> ServiceSession:
    from_state = visit.state
    _apply(visit, "refuse", code)
    visit.outcome = ServiceOutcome.REFUSED
    visit.outcome_reason = code.value
    visit.closed_at = timezone.now()
    visit.save()
    audit_record(
        actor=_visit_actor(visit),
        action=AuditAction.VISIT_REFUSED,
        target=visit,
        data={"from": from_state, "reason": code.value, **audit_data},
    )
    return visit


@transaction.atomic
def visit_start(*, business_code: str, mobile: str) -> ServiceSession:
    try:
        business_get(business_code)
    except KeyError as exc:
        raise ValidationFailed(_("Please choose one of the listed businesses."), code="unknown_business") from exc
    normalized = normalize_mobile(mobile)
    if len(normalized) != 11 or not normalized.startswith("1"):
        raise ValidationFailed(_("Please enter an 11-digit mainland mobile number."), code="invalid_mobile")
    visit = ServiceSession.objects.create(business_code=business_code, mobile=normalized)
    audit_record(
        actor=_visit_actor(visit),
        action=AuditAction.VISIT_STARTED,
        target=visit,
        data={"business": business_code, "mobile": mask_mobile(normalized)},
    )
    return visit


def visit_id_card_upload(*, visit_id: int, data: bytes) -> ServiceSession:
    """Accept an ID-card photo, store it and have it read (OCR in Celery).

    The image is checked before anything is stored. A rejected file moves no
    state but still counts as an attempt (rate limit) and is audited; the
    error is raised after that bookkeeping has committed.
    """
    from apps.verification.tasks import ocr_read_id_card

    rejection: ImageRejected | None = None
    with transaction.atomic():
        visit = _locked(visit_id)
        if visit.state != VisitState.BUSINESS_CHOSEN:
            _apply(visit, "id_card_uploaded")  # raises out_of_order, naming the current state
        now = timezone.now()
        if visit.id_card_attempts >= settings.GATE1_MAX_ID_CARD_UPLOADS:
            return _refuse(visit, RefusalCode.TOO_MANY_ATTEMPTS, {"uploads": visit.id_card_attempts})
        cooldown = timedelta(seconds=settings.GATE1_UPLOAD_COOLDOWN_SECONDS)
        if visit.id_card_last_upload_at and now - visit.id_card_last_upload_at < cooldown:
            raise TooManyRequests(_("Please wait a moment before uploading again."))
        visit.id_card_attempts += 1
        visit.id_card_last_upload_at = now
        try:
            image = load_untrusted_image(data)
        except ImageRejected as rejected:
            rejection = rejected
            visit.save(update_fields=["id_card_attempts", "id_card_last_upload_at", "updated_at"])
            audit_record(
                actor=_visit_actor(visit),
                action=AuditAction.VISIT_ID_CARD_REJECTED,
                target=visit,
                data={"reason": rejected.code, "attempt": visit.id_card_attempts},
            )
        else:
            # What is kept is a clean re-encoded JPEG, never the raw upload.
            visit.id_card_photo.save(
                f"{visit.public_id}-{visit.id_card_attempts}.jpg", ContentFile(image_to_jpeg_bytes(image)), save=False
            )
            _apply(visit, "id_card_uploaded")
            visit.save()
            audit_record(
                actor=_visit_actor(visit),
                action=AuditAction.VISIT_ID_CARD_UPLOADED,
                target=visit,
                data={"attempt": visit.id_card_attempts, "width": image.width, "height": image.height},
            )
            visit_pk, attempt = visit.pk, visit.id_card_attempts
            transaction.on_commit(lambda: ocr_read_id_card.delay(visit_pk, attempt))
    if rejection is not None:
        raise UploadRejected(message_for(rejection.code), code=rejection.code)
    # Re-read: with eager Celery the OCR has already moved the state on commit.
    return ServiceSession.objects.select_related("customer").get(pk=visit_id)


def visit_id_card_process(*, visit_id: int, attempt: int) -> ServiceSession:
    """Read the stored photo of upload ``attempt`` and record the result.

    OCR (about half a second) runs outside any transaction; the result is
    applied under the row lock only if the visit is still waiting for this
    very attempt, so a redelivered task or a stale one changes nothing.
    """
    visit = ServiceSession.objects.get(pk=visit_id)
    if visit.state != VisitState.ID_CARD_PROCESSING or visit.id_card_attempts != attempt:
        return visit
    with visit.id_card_photo.open("rb") as handle:
        image = downscale_for_ocr(load_untrusted_image(handle.read()))
    front = None
    failure: IdCardUnreadable | None = None
    try:
        # Before OCR: on a blurred photo the recogniser guesses plausible
        # wrong names with high confidence, and a name has no checksum.
        ensure_card_photo_is_sharp(image)
        front = parse_id_card_front(get_ocr_engine().read(image))
    except IdCardUnreadable as unreadable:
        failure = unreadable

    with transaction.atomic():
        visit = _locked(visit_id)
        if visit.state != VisitState.ID_CARD_PROCESSING or visit.id_card_attempts != attempt:
            return visit
        if failure is not None:
            _apply(visit, "id_card_unreadable", failure.code)
            visit.save()
            audit_record(
                actor=_visit_actor(visit),
                action=AuditAction.VISIT_ID_CARD_UNREADABLE,
                target=visit,
                data={"reason": failure.code, "attempt": attempt},
            )
            return visit
        assert front is not None
        visit.read_name = front.name
        visit.read_id_number = front.id_number
        visit.read_sex = front.sex
        visit.read_ethnicity = front.ethnicity
        visit.read_birth_date = front.birth_date
        visit.read_address = front.address
        # The portrait is kept for face verification (Gate 3).
        visit.id_card_portrait.save(
            f"{visit.public_id}-{attempt}-portrait.jpg",
            ContentFile(image_to_jpeg_bytes(crop_portrait(image))),
            save=False,
        )
        _apply(visit, "id_card_read")
        visit.save()
        audit_record(
            actor=_visit_actor(visit),
            action=AuditAction.VISIT_ID_CARD_READ,
            target=visit,
            data={"attempt": attempt, "id_number": mask_id_number(front.id_number), "name": front.name},
        )
        return visit


@transaction.atomic
def visit_id_card_retake(*, visit_id: int) -> ServiceSession:
    visit = _locked(visit_id)
    _apply(visit, "id_card_retake")
    visit.save()
    audit_record(actor=_visit_actor(visit), action=AuditAction.VISIT_ID_CARD_RETAKE, target=visit)
    return visit


@transaction.atomic
def visit_identity_confirm(*, visit_id: int) -> ServiceSession:
    """The customer confirmed what was read: match name, ID number and mobile number.

    No match refuses the visit: a person who cannot be matched may not
    proceed (R6.1), and the attempt is audited with masked values.
    """
    visit = _locked(visit_id)
    if visit.state != VisitState.ID_CARD_READ:
        _apply(visit, "identity_matched", None)  # raises out_of_order
    assert visit.read_id_number is not None
    customer = customer_match_three_elements(name=visit.read_name, id_number=visit.read_id_number, mobile=visit.mobile)
    facts = {
        "name": visit.read_name,
        "id_number": mask_id_number(visit.read_id_number),
        "mobile": mask_mobile(visit.mobile),
    }
    if customer is None:
        return _refuse(visit, RefusalCode.NO_MATCHING_CUSTOMER, facts)
    _apply(visit, "identity_matched", customer)
    visit.save()
    audit_record(
        actor=_visit_actor(visit),
        action=AuditAction.VISIT_IDENTITY_MATCHED,
        target=visit,
        data={**facts, "customer": customer.customer_number},
    )
    return visit


@dataclass(frozen=True)
class AccountReading:
    number: str
    source: str  # "card_ocr" or "barcode"


def visit_account_photo_read(*, visit_id: int, data: bytes) -> AccountReading:
    """Read an account number from a photo (bank card by OCR, passbook or
    certificate barcode/QR by zbar) for the customer to confirm. Changes nothing."""
    visit = ServiceSession.objects.get(pk=visit_id)
    if visit.state != VisitState.IDENTITY_MATCHED:
        raise NotAllowed(_("This step is not available now. Please follow the steps in order."), code="out_of_order")
    try:
        image = load_untrusted_image(data)
    except ImageRejected as rejected:
        raise UploadRejected(message_for(rejected.code), code=rejected.code) from rejected
    codes = [code for code in decode_barcodes(image) if code.strip().isdigit()]
    if codes:
        return AccountReading(codes[0].strip(), "barcode")
    try:
        return AccountReading(parse_bank_card_number(get_ocr_engine().read(image)), "card_ocr")
    except CardNumberUnreadable as unreadable:
        raise UploadRejected(message_for(unreadable.code), code=unreadable.code) from unreadable


def account_status_message(*, status: str, business: BusinessType) -> str:
    """What the customer is told about the account's status for the chosen business."""
    label = AccountStatus(status).label
    if status in business.allowed_statuses:
        if status == AccountStatus.NORMAL:
            return str(_("Account status: normal."))
        return str(
            _("Account status: %(status)s. %(business)s can go ahead.") % {"status": label, "business": business.name}
        )
    if status == AccountStatus.CLOSED:
        return str(_("This account is closed and cannot be served."))
    return str(
        _("Account status: %(status)s. %(business)s cannot be done with this status; please visit a branch.")
        % {"status": label, "business": business.name}
    )


@transaction.atomic
def visit_account_submit(*, visit_id: int, number: str) -> ServiceSession:  # noqa: PLR0911 - one return per refusal
    """Check the account (owner, kind, status for the business), then screen
    customer and account against the blacklists."""
    visit = _locked(visit_id)
    if visit.state != VisitState.IDENTITY_MATCHED:
        _apply(visit, "account_accepted", None)  # raises out_of_order
    business = business_get(visit.business_code)
    account = account_get_by_number(number=number)
    masked = mask_account_number("".join(number.split()))
    if account is None:
        visit.match_attempts += 1
        if visit.match_attempts >= settings.GATE1_MAX_ACCOUNT_ATTEMPTS:
            return _refuse(visit, RefusalCode.TOO_MANY_ATTEMPTS, {"account": masked})
        visit.save(update_fields=["match_attempts", "updated_at"])
        audit_record(
            actor=_visit_actor(visit),
            action=AuditAction.VISIT_ACCOUNT_NOT_FOUND,
            target=visit,
            data={"account": masked},
        )
        return visit
    if account.owner_id != visit.customer_id:
        return _refuse(visit, RefusalCode.ACCOUNT_NOT_OWNED, {"account": masked})
    # The customer's own account: kept on the visit even when refused, so the
    # page can say what its status means for the business chosen.
    visit.account = account
    if account.kind not in business.account_kinds:
        return _refuse(visit, RefusalCode.ACCOUNT_KIND_NOT_SERVED, {"account": masked, "kind": account.kind})
    if account.status not in business.allowed_statuses:
        return _refuse(visit, RefusalCode.ACCOUNT_STATUS, {"account": masked, "status": account.status})
    _apply(visit, "account_accepted", account)
    visit.save()
    audit_record(
        actor=_visit_actor(visit),
        action=AuditAction.VISIT_ACCOUNT_ACCEPTED,
        target=visit,
        data={"account": masked, "status": account.status},
    )

    assert visit.customer is not None
    owned = list(visit.customer.accounts.values_list("number", flat=True))
    hits = list(blacklist_hits(id_number=visit.customer.id_number, account_numbers=owned))
    if hits:
        # Which list hit is for compliance only (audit trail), never for the customer.
        return _refuse(
            visit,
            RefusalCode.BLACKLISTED,
            {"lists": sorted({hit.kind for hit in hits}), "entries": [hit.pk for hit in hits]},
        )
    _apply(visit, "screening_passed")
    visit.save()
    audit_record(actor=_visit_actor(visit), action=AuditAction.VISIT_SCREENING_PASSED, target=visit)
    return visit


def visit_close(*, visit_id: int, actor: AnyActor, outcome: ServiceOutcome, reason: str = "") -> ServiceSession:
    """Write the service's outcome into its record (R4). The first outcome wins.

    Called inside the caller's transaction by whoever ends the service (a
    failed gate, the business done, the customer gone for good). A visit that
    is already closed is returned unchanged, so a late or repeated close
    (a redelivered task, both sides hanging up) cannot rewrite history.
    """
    with transaction.atomic():
        visit = _locked(visit_id)
        if visit.outcome:
            return visit
        visit.outcome = outcome
        visit.outcome_reason = reason[:64]
        visit.closed_at = timezone.now()
        visit.save(update_fields=["outcome", "outcome_reason", "closed_at", "updated_at"])
        audit_record(
            actor=actor,
            action=AuditAction.VISIT_CLOSED,
            target=visit,
            data={"outcome": outcome.value, "reason": reason},
        )
        return visit
