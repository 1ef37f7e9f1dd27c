"""Gate 1 (R6.1): the customer's journey from choosing a business to the queue's door.

Every step is a service that locks the visit and its ``Verification`` (in that
order, ``apps.visits.services``), steps the Gate 1 state machine, saves,
audits and schedules side effects after commit. Steps called out of order are
refused by the state machine (``out_of_order``), whatever the client sends.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.audit.actions import AuditAction
from apps.audit.services import Actor, audit_record
from apps.businesses.registry import BusinessType, business_get
from apps.common.errors import ApplicationError, NotAllowed, NotFound
from apps.common.fsm import fsm_step
from apps.common.images import ImageRejected, downscale_for_ocr, image_to_jpeg_bytes, load_untrusted_image
from apps.common.locking import lock_object
from apps.common.masking import mask_account_number, mask_id_number, mask_mobile, mask_name
from apps.common.transactions import enqueue_on_commit
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
from apps.verification.models import RefusalCode, Verification, VerificationState
from apps.visits.models import VisitOutcome
from apps.visits.services import visit_actor, visit_close, visit_customer_bind, visit_lock, visit_start


class UploadRejected(ApplicationError):
    default_code = "upload_rejected"


class TooManyRequests(ApplicationError):
    status_code = 429
    default_code = "too_many_requests"


def _lock(visit_id: int, *, refuse_closed: bool = True) -> Verification:
    """Lock the visit, then its Gate 1 row (the lock order of ``apps.visits.services``).

    A visit closed by something other than Gate 1 itself (idle for too long:
    ``visits_idle_close``) goes no further: ``visit_closed``. One that Gate 1
    refused answers ``out_of_order`` from its state machine, as before.
    """
    visit = visit_lock(visit_id=visit_id)
    if refuse_closed and visit.outcome and visit.outcome != VisitOutcome.REFUSED:
        raise NotAllowed(_("This visit has ended. Please start again."), code="visit_closed")
    verification = lock_object(
        Verification.objects,
        visit_id=visit_id,
        not_found=lambda: NotFound(_("This visit does not exist."), code="visit_not_found"),
    )
    verification.visit = visit  # the locked instance, so both sides see the same fields
    return verification


def _refuse(verification: Verification, code: RefusalCode, audit_data: dict[str, Any]) -> Verification:
    """Gate 1 says no: the state machine ends in ``refused`` and the visit closes with that outcome."""
    visit = verification.visit
    from_state = verification.state
    fsm_step(verification.refuse, code)
    verification.save()
    audit_record(
        actor=visit_actor(visit),
        action=AuditAction.VISIT_REFUSED,
        target=visit,
        data={"from": from_state, "reason": code.value, **audit_data},
    )
    verification.visit = visit_close(
        visit_id=visit.pk, actor=visit_actor(visit), outcome=VisitOutcome.REFUSED, reason=code.value
    )
    return verification


@transaction.atomic(durable=True)
def verification_start(*, business_code: str, mobile: str) -> Verification:
    """Open a visit for the business chosen, with its Gate 1 at the first step."""
    visit = visit_start(business_code=business_code, mobile=mobile)
    return Verification.objects.create(visit=visit)


def verification_id_card_upload(*, visit_id: int, data: bytes) -> Verification:
    """Accept an ID-card photo, store it and have it read (OCR in Celery).

    The image is checked before anything is stored. A rejected file moves no
    state but still counts as an attempt (rate limit) and is audited; the
    error is raised after that bookkeeping has committed.
    """
    from apps.verification.tasks import ocr_read_id_card

    rejection: ImageRejected | None = None
    with transaction.atomic(durable=True):
        verification = _lock(visit_id)
        visit = verification.visit
        if verification.state != VerificationState.BUSINESS_CHOSEN:
            fsm_step(verification.id_card_uploaded)  # raises out_of_order, naming the current state
        now = timezone.now()
        if verification.id_card_uploads_counted >= settings.GATE1_MAX_ID_CARD_UPLOADS:
            return _refuse(verification, RefusalCode.TOO_MANY_ATTEMPTS, {"uploads": verification.id_card_attempts})
        cooldown = timedelta(seconds=settings.GATE1_UPLOAD_COOLDOWN_SECONDS)
        if verification.id_card_last_upload_at and now - verification.id_card_last_upload_at < cooldown:
            raise TooManyRequests(_("Please wait a moment before uploading again."))
        verification.id_card_attempts += 1
        verification.id_card_last_upload_at = now
        try:
            image = load_untrusted_image(data)
        except ImageRejected as rejected:
            rejection = rejected
            verification.save(update_fields=["id_card_attempts", "id_card_last_upload_at", "updated_at"])
            audit_record(
                actor=visit_actor(visit),
                action=AuditAction.VISIT_ID_CARD_REJECTED,
                target=visit,
                data={"reason": rejected.code, "attempt": verification.id_card_attempts},
            )
        else:
            # What is kept is a clean re-encoded JPEG, never the raw upload.
            jpeg = image_to_jpeg_bytes(image)
            verification.id_card_photo.save(
                f"{visit.public_id}-{verification.id_card_attempts}.jpg", ContentFile(jpeg), save=False
            )
            verification.id_card_photo_sha256 = hashlib.sha256(jpeg).hexdigest()
            fsm_step(verification.id_card_uploaded)
            verification.save()
            audit_record(
                actor=visit_actor(visit),
                action=AuditAction.VISIT_ID_CARD_UPLOADED,
                target=visit,
                data={"attempt": verification.id_card_attempts, "width": image.width, "height": image.height},
            )
            enqueue_on_commit(ocr_read_id_card, visit.pk, verification.id_card_attempts)
    if rejection is not None:
        raise UploadRejected(message_for(rejection.code), code=rejection.code)
    # Re-read: with eager Celery the OCR has already moved the state on commit.
    return Verification.objects.select_related("visit__customer").get(visit_id=visit_id)


def verification_id_card_process(*, visit_id: int, attempt: int) -> Verification:
    """Read the stored photo of upload ``attempt`` and record the result.

    OCR (about half a second) runs outside any transaction; the result is
    applied under the row lock only if Gate 1 is still waiting for this very
    attempt, so a redelivered task or a stale one changes nothing.
    """
    verification = Verification.objects.select_related("visit").get(visit_id=visit_id)
    if verification.state != VerificationState.ID_CARD_PROCESSING or verification.id_card_attempts != attempt:
        return verification
    with verification.id_card_photo.open("rb") as handle:
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

    with transaction.atomic(durable=True):
        verification = _lock(visit_id, refuse_closed=False)
        visit = verification.visit
        stale = verification.state != VerificationState.ID_CARD_PROCESSING or verification.id_card_attempts != attempt
        if stale or visit.outcome:
            return verification
        if failure is not None:
            fsm_step(verification.id_card_unreadable, failure.code)
            verification.save()
            audit_record(
                actor=visit_actor(visit),
                action=AuditAction.VISIT_ID_CARD_UNREADABLE,
                target=visit,
                data={"reason": failure.code, "attempt": attempt},
            )
            return verification
        assert front is not None
        verification.read_name = front.name
        verification.read_id_number = front.id_number
        verification.read_sex = front.sex
        verification.read_ethnicity = front.ethnicity
        verification.read_birth_date = front.birth_date
        verification.read_address = front.address
        # The portrait is kept for face verification (Gate 3).
        portrait = image_to_jpeg_bytes(crop_portrait(image))
        verification.id_card_portrait.save(
            f"{visit.public_id}-{attempt}-portrait.jpg", ContentFile(portrait), save=False
        )
        verification.id_card_portrait_sha256 = hashlib.sha256(portrait).hexdigest()
        fsm_step(verification.id_card_read)
        verification.save()
        audit_record(
            actor=visit_actor(visit),
            action=AuditAction.VISIT_ID_CARD_READ,
            target=visit,
            data={"attempt": attempt, "id_number": mask_id_number(front.id_number), "name": mask_name(front.name)},
        )
        return verification


# Who the audit trail names for what the dispatcher's clock moves on.
OCR_DEADLINE = Actor.system("gate1_ocr_deadline")


def verifications_ocr_expire(*, now: datetime | None = None) -> int:
    """Move on ID cards still being read past GATE1_OCR_DEADLINE_SECONDS; returns how many moved.

    The read is lost when the OCR worker died or its message was lost (a
    whole worker gone leaves its message to the broker's visibility timeout).
    Past the deadline after the upload, the read is queued again, once (the
    task is idempotent per upload attempt: a late first delivery and the new
    one apply one result). Past the deadline again, Gate 1 goes back to
    ``business_chosen`` with ``ocr_timeout`` so the customer can upload again;
    the lost upload does not count against their limit. Called on every
    dispatcher round (``apps.common.signals.housekeeping_due``).
    """
    from apps.verification.tasks import ocr_read_id_card

    now = now or timezone.now()
    deadline = timedelta(seconds=settings.GATE1_OCR_DEADLINE_SECONDS)
    overdue = list(
        Verification.objects.filter(
            state=VerificationState.ID_CARD_PROCESSING, id_card_last_upload_at__lt=now - deadline
        ).values_list("visit_id", flat=True)
    )
    moved = 0
    for visit_id in overdue:
        with transaction.atomic(durable=True):
            verification = (
                Verification.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("visit")
                .filter(visit_id=visit_id, state=VerificationState.ID_CARD_PROCESSING)
                .first()
            )
            if verification is None or verification.id_card_last_upload_at is None:
                continue  # read meanwhile, or another dispatcher has it
            visit = verification.visit
            attempt = verification.id_card_attempts
            requeued_at = verification.id_card_ocr_requeued_at
            if requeued_at is None:
                verification.id_card_ocr_requeued_at = now
                verification.save(update_fields=["id_card_ocr_requeued_at", "updated_at"])
                waited = (now - verification.id_card_last_upload_at).total_seconds()
                audit_record(
                    actor=OCR_DEADLINE,
                    action=AuditAction.VISIT_ID_CARD_OCR_REQUEUED,
                    target=visit,
                    data={"attempt": attempt, "waited_seconds": round(waited, 1)},
                )
                enqueue_on_commit(ocr_read_id_card, visit_id, attempt)
            elif now - requeued_at > deadline:
                fsm_step(verification.id_card_ocr_timed_out)
                verification.save()
                audit_record(
                    actor=OCR_DEADLINE,
                    action=AuditAction.VISIT_ID_CARD_OCR_TIMED_OUT,
                    target=visit,
                    data={"attempt": attempt},
                )
            else:
                continue
            moved += 1
    return moved


@transaction.atomic(durable=True)
def verification_id_card_retake(*, visit_id: int) -> Verification:
    verification = _lock(visit_id)
    fsm_step(verification.id_card_retake)
    verification.save()
    audit_record(
        actor=visit_actor(verification.visit), action=AuditAction.VISIT_ID_CARD_RETAKE, target=verification.visit
    )
    return verification


@transaction.atomic(durable=True)
def verification_identity_confirm(*, visit_id: int) -> Verification:
    """The customer confirmed what was read: match name, ID number and mobile number.

    No match refuses the visit: a person who cannot be matched may not
    proceed (R6.1), and the attempt is audited with masked values.
    """
    verification = _lock(visit_id)
    visit = verification.visit
    if verification.state != VerificationState.ID_CARD_READ:
        fsm_step(verification.identity_matched)  # raises out_of_order
    assert verification.read_id_number is not None
    customer = customer_match_three_elements(
        name=verification.read_name, id_number=verification.read_id_number, mobile=visit.mobile
    )
    facts = {
        "name": mask_name(verification.read_name),
        "id_number": mask_id_number(verification.read_id_number),
        "mobile": mask_mobile(visit.mobile),
    }
    if customer is None:
        return _refuse(verification, RefusalCode.NO_MATCHING_CUSTOMER, facts)
    fsm_step(verification.identity_matched)
    verification.save()
    visit_customer_bind(visit=visit, customer=customer)
    audit_record(
        actor=visit_actor(visit),
        action=AuditAction.VISIT_IDENTITY_MATCHED,
        target=visit,
        data={**facts, "customer": customer.customer_number},
    )
    return verification


@dataclass(frozen=True)
class AccountReading:
    number: str
    source: str  # "card_ocr" or "barcode"


def verification_account_photo_read(*, visit_id: int, data: bytes) -> AccountReading:
    """Read an account number from a photo (bank card by OCR, passbook or
    certificate barcode/QR by zbar) for the customer to confirm. Changes nothing."""
    verification = Verification.objects.get(visit_id=visit_id)
    if verification.state != VerificationState.IDENTITY_MATCHED:
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


@transaction.atomic(durable=True)
def verification_account_submit(*, visit_id: int, number: str) -> Verification:  # noqa: PLR0911 - one return per refusal
    """Check the account (owner, kind, status for the business), then screen
    customer and account against the blacklists."""
    verification = _lock(visit_id)
    visit = verification.visit
    if verification.state != VerificationState.IDENTITY_MATCHED:
        fsm_step(verification.account_accepted)  # raises out_of_order
    business = business_get(visit.business_code)
    account = account_get_by_number(number=number)
    masked = mask_account_number("".join(number.split()))
    if account is None:
        verification.match_attempts += 1
        if verification.match_attempts >= settings.GATE1_MAX_ACCOUNT_ATTEMPTS:
            return _refuse(verification, RefusalCode.TOO_MANY_ATTEMPTS, {"account": masked})
        verification.save(update_fields=["match_attempts", "updated_at"])
        audit_record(
            actor=visit_actor(visit),
            action=AuditAction.VISIT_ACCOUNT_NOT_FOUND,
            target=visit,
            data={"account": masked},
        )
        return verification
    if account.owner_id != visit.customer_id:
        return _refuse(verification, RefusalCode.ACCOUNT_NOT_OWNED, {"account": masked})
    # The customer's own account: kept on the visit even when refused, so the
    # page can say what its status means for the business chosen.
    visit_customer_bind(visit=visit, account=account)
    if account.kind not in business.account_kinds:
        return _refuse(verification, RefusalCode.ACCOUNT_KIND_NOT_SERVED, {"account": masked, "kind": account.kind})
    if account.status not in business.allowed_statuses:
        return _refuse(verification, RefusalCode.ACCOUNT_STATUS, {"account": masked, "status": account.status})
    fsm_step(verification.account_accepted)
    verification.save()
    audit_record(
        actor=visit_actor(visit),
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
            verification,
            RefusalCode.BLACKLISTED,
            {"lists": sorted({hit.kind for hit in hits}), "entries": [hit.pk for hit in hits]},
        )
    fsm_step(verification.screening_passed)
    verification.save()
    audit_record(actor=visit_actor(visit), action=AuditAction.VISIT_SCREENING_PASSED, target=visit)
    return verification
