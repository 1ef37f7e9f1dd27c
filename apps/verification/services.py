"""Gate 1 (R6.1): the customer's journey from choosing a business to the queue's door.

Every step is a service that locks the visit and its ``Verification`` (in that
order, ``apps.visits.services``), steps the Gate 1 state machine, saves,
audits and schedules side effects after commit. Steps called out of order are
refused by the state machine (``out_of_order``), whatever the client sends.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
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
from apps.common.crypto import blind_index, mobile_index, normalize_mobile
from apps.common.errors import ApplicationError, NotAllowed, NotFound, ValidationFailed
from apps.common.fsm import fsm_step
from apps.common.images import ImageRejected, image_to_jpeg_bytes, load_untrusted_image
from apps.common.locking import lock_object
from apps.common.masking import mask_account_number, mask_id_number, mask_mobile, mask_name
from apps.common.transactions import enqueue_on_commit
from apps.customers.models import AccountStatus
from apps.customers.selectors import account_get_by_number, blacklist_hits, customer_get_by_id_number
from apps.verification.cardfinder import rectify_card
from apps.verification.idcard import (
    CardNumberUnreadable,
    IdCardUnreadable,
    crop_portrait,
    names_equivalent,
    parse_bank_card_number,
    read_id_card_front,
)
from apps.verification.integrations.barcode import decode_barcodes
from apps.verification.integrations.ocr import get_ocr_engine
from apps.verification.integrations.sms import SmsError, get_sms_gateway
from apps.verification.messages import message_for
from apps.verification.models import AccountPhotoState, RefusalCode, Verification, VerificationState
from apps.visits.models import VisitOutcome
from apps.visits.services import (
    visit_actor,
    visit_block_refuse,
    visit_close,
    visit_customer_bind,
    visit_lock,
    visit_start,
)


class UploadRejected(ApplicationError):
    default_code = "upload_rejected"


class TooManyRequests(ApplicationError):
    status_code = 429
    default_code = "too_many_requests"


class ServiceUnavailable(ApplicationError):
    status_code = 503
    default_code = "unavailable"


class PayloadTooLarge(ApplicationError):
    status_code = 413
    default_code = "too_large_bytes"


def _decode_upload(data: bytes) -> Any:
    """Decode a customer's photo once, straight at the working size (never the full-size pixels)."""
    return load_untrusted_image(data, max_bytes=settings.GATE1_MAX_UPLOAD_BYTES, max_side=settings.GATE1_PHOTO_MAX_SIDE)


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


def verification_start(*, business_code: str, mobile: str) -> Verification:
    """Open a visit for the business chosen, with its Gate 1 at the first step.

    A number or customer blocked after a failed Gate 2 or 3 is refused first,
    outside this service's transaction, so that the refusal's audit record is
    committed although the request fails.
    """
    visit_block_refuse(mobile=normalize_mobile(mobile), business_code=business_code)
    with transaction.atomic(durable=True):
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
            image = _decode_upload(data)
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
            # What is kept is a clean re-encoded JPEG at the working size,
            # encrypted (SealedFileField), never the raw upload.
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
    # Stored at the working size by the upload: this decode is small. The
    # card is then found and straightened; OCR, the sharpness gate and the
    # portrait crop work on the card alone (or on the photo when no outline
    # was found: a card filling the frame).
    photo = load_untrusted_image(verification.id_card_photo.read_plain())
    rectified = rectify_card(photo)
    reading = None
    failure: IdCardUnreadable | None = None
    try:
        # The sharpness gate runs before OCR: on a blurred photo the
        # recogniser guesses plausible wrong names with high confidence, and
        # a name has no checksum. A card upside down is turned and read again.
        reading = read_id_card_front(get_ocr_engine(), rectified or photo, straightened=rectified is not None)
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
        assert reading is not None
        front = reading.front
        verification.read_name = front.name
        verification.read_name_uncertain = list(front.name_uncertain)
        verification.read_id_number = front.id_number
        verification.read_sex = front.sex
        verification.read_ethnicity = front.ethnicity
        verification.read_birth_date = front.birth_date
        verification.read_address = front.address
        # The portrait is kept for face verification (Gate 3).
        portrait = image_to_jpeg_bytes(crop_portrait(reading.image))
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

    All three must match one customer exactly (the name up to the script
    form of a character: 暐 on the card is 𬀩 in a record, ``names_equivalent``).
    When the bank has the ID number under another name, the likeliest cause
    is a misread character (劼 read as 劫 with high confidence): the customer
    is asked to retake the photo (``name_not_on_record``; uploads stay
    limited), not told they are no customer. A name with a character OCR
    was not sure of (``read_name_uncertain``) passes only when the record
    confirms it exactly; otherwise, with or without a record for the ID
    number, the customer is told that character could not be read and asked
    to retake (``name_unclear``). Otherwise (no such ID number, or not with
    that mobile number) the visit is refused, audited with masked values: a
    person who cannot be matched may not proceed (R6.1).
    """
    verification = _lock(visit_id)
    visit = verification.visit
    if verification.state != VerificationState.ID_CARD_READ:
        fsm_step(verification.identity_matched)  # raises out_of_order
    assert verification.read_id_number is not None
    facts = {
        "name": mask_name(verification.read_name),
        "id_number": mask_id_number(verification.read_id_number),
        "mobile": mask_mobile(visit.mobile),
    }
    customer = customer_get_by_id_number(id_number=verification.read_id_number)
    uncertain = bool(verification.read_name_uncertain)
    if (customer is not None and not names_equivalent(verification.read_name, customer.name)) or (
        customer is None and uncertain
    ):
        # A character OCR doubted (``name_unclear``) or one it misread
        # with confidence: retake, never "no matching customer".
        code = "name_unclear" if uncertain else "name_not_on_record"
        fsm_step(verification.id_card_name_not_matched, code)
        verification.save()
        audit_record(
            actor=visit_actor(visit),
            action=AuditAction.VISIT_NAME_NOT_ON_RECORD,
            target=visit,
            data={**facts, "reason": code, "uncertain": len(verification.read_name_uncertain)},
        )
        return verification
    if customer is None or customer.mobile_index != mobile_index(visit.mobile):
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


def _require_mobile_proven(verification: Verification) -> None:
    """Gate 1 goes no further than the identity until the SMS code proved the mobile number."""
    if verification.mobile_proven_at is None:
        raise NotAllowed(message_for("mobile_not_proven"), code="mobile_not_proven")


def verification_account_photo_upload(*, visit_id: int, data: bytes) -> Verification:
    """Accept a photo of the bank card or passbook and have its number read (Celery, ``ocr`` queue).

    Like the ID card: decoded once at the working size, stored encrypted,
    counted (GATE1_MAX_ACCOUNT_PHOTO_UPLOADS, then the customer types the
    number) and spaced (GATE1_UPLOAD_COOLDOWN_SECONDS). The reading is only a
    suggestion for the customer to confirm; it changes no state of Gate 1.
    """
    from apps.verification.tasks import ocr_read_account_photo

    rejection: ImageRejected | None = None
    with transaction.atomic(durable=True):
        verification = _lock(visit_id)
        visit = verification.visit
        if verification.state != VerificationState.IDENTITY_MATCHED:
            fsm_step(verification.account_accepted)  # raises out_of_order
        _require_mobile_proven(verification)
        if verification.account_photo_attempts >= settings.GATE1_MAX_ACCOUNT_PHOTO_UPLOADS:
            raise NotAllowed(message_for("account_photo_limit"), code="account_photo_limit")
        now = timezone.now()
        cooldown = timedelta(seconds=settings.GATE1_UPLOAD_COOLDOWN_SECONDS)
        if verification.account_photo_last_upload_at and now - verification.account_photo_last_upload_at < cooldown:
            raise TooManyRequests(_("Please wait a moment before uploading again."))
        verification.account_photo_attempts += 1
        verification.account_photo_last_upload_at = now
        try:
            image = _decode_upload(data)
        except ImageRejected as rejected:
            rejection = rejected
            verification.save(update_fields=["account_photo_attempts", "account_photo_last_upload_at", "updated_at"])
            audit_record(
                actor=visit_actor(visit),
                action=AuditAction.VISIT_ACCOUNT_PHOTO_REJECTED,
                target=visit,
                data={"reason": rejected.code, "attempt": verification.account_photo_attempts},
            )
        else:
            verification.account_photo.save(
                f"{visit.public_id}-account-{verification.account_photo_attempts}.jpg",
                ContentFile(image_to_jpeg_bytes(image)),
                save=False,
            )
            verification.account_photo_state = AccountPhotoState.READING
            verification.account_photo_failure_code = ""
            verification.account_photo_number = None
            verification.account_photo_source = ""
            verification.save()
            audit_record(
                actor=visit_actor(visit),
                action=AuditAction.VISIT_ACCOUNT_PHOTO_UPLOADED,
                target=visit,
                data={"attempt": verification.account_photo_attempts, "width": image.width, "height": image.height},
            )
            enqueue_on_commit(ocr_read_account_photo, visit.pk, verification.account_photo_attempts)
    if rejection is not None:
        raise UploadRejected(message_for(rejection.code), code=rejection.code)
    return Verification.objects.select_related("visit__customer", "visit__account").get(visit_id=visit_id)


def verification_account_photo_process(*, visit_id: int, attempt: int) -> Verification:
    """Read the account number in the stored photo of ``attempt`` (barcode first, then bank-card OCR).

    OCR runs outside any transaction; the result is applied under the lock
    only if this attempt is still the one being read (safe to run twice).
    """
    verification = Verification.objects.select_related("visit").get(visit_id=visit_id)
    if verification.account_photo_state != AccountPhotoState.READING or verification.account_photo_attempts != attempt:
        return verification
    image = load_untrusted_image(verification.account_photo.read_plain())
    number, source, failure = "", "", ""
    codes = [code.strip() for code in decode_barcodes(image) if code.strip().isdigit()]
    if codes:
        number, source = codes[0], "barcode"
    else:
        try:
            number, source = parse_bank_card_number(get_ocr_engine().read(image)), "card_ocr"
        except CardNumberUnreadable as unreadable:
            failure = unreadable.code
    with transaction.atomic(durable=True):
        verification = _lock(visit_id, refuse_closed=False)
        if (
            verification.account_photo_state != AccountPhotoState.READING
            or verification.account_photo_attempts != attempt
        ):
            return verification
        if failure:
            verification.account_photo_state = AccountPhotoState.FAILED
            verification.account_photo_failure_code = failure
        else:
            verification.account_photo_state = AccountPhotoState.READ
            verification.account_photo_number = number
            verification.account_photo_source = source
        verification.save()
        audit_record(
            actor=visit_actor(verification.visit),
            action=AuditAction.VISIT_ACCOUNT_PHOTO_READ,
            target=verification.visit,
            data={
                "attempt": attempt,
                "result": failure or source,
                "account": mask_account_number(number) if number else "",
            },
        )
        return verification


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


def verification_account_submit(*, visit_id: int, number: str) -> Verification:
    """Check the account (owner, kind, status for the business), then screen
    customer and account against the blacklists.

    A number that is not an account in the customer's name (a typo, or
    someone else's) is not a refusal: the customer is told so with the tries
    left (GATE1_MAX_ACCOUNT_ATTEMPTS), and only running out of tries ends the
    visit. Both cases get the same answer, so nobody learns whether another
    person's account exists; the audit trail tells them apart.
    """
    not_found: ValidationFailed | None = None
    with transaction.atomic(durable=True):
        verification = _lock(visit_id)
        if verification.state == VerificationState.IDENTITY_MATCHED:
            _require_mobile_proven(verification)
        account = (
            account_get_by_number(number=number) if verification.state == VerificationState.IDENTITY_MATCHED else None
        )
        if account is None or account.owner_id != verification.visit.customer_id:
            if verification.state != VerificationState.IDENTITY_MATCHED:
                fsm_step(verification.account_accepted)  # raises out_of_order
            tries_left, verification = _account_not_in_name(verification, number, found=account is not None)
            if tries_left:
                not_found = ValidationFailed(
                    _(
                        "No account with this number is in your name. Check the number and try again (%(left)s tries left)."
                    )
                    % {"left": tries_left},
                    code="account_not_found",
                    extra={"tries_left": tries_left},
                )
        else:
            verification = _account_accept(verification, account)
    if not_found is not None:
        raise not_found
    return verification


def _account_not_in_name(verification: Verification, number: str, *, found: bool) -> tuple[int, Verification]:
    """Count a wrong account number; (tries left, verification), refused when none are left."""
    visit = verification.visit
    masked = mask_account_number("".join(number.split()))
    verification.match_attempts += 1
    left = max(0, settings.GATE1_MAX_ACCOUNT_ATTEMPTS - verification.match_attempts)
    if left == 0:
        return 0, _refuse(verification, RefusalCode.TOO_MANY_ATTEMPTS, {"account": masked, "owned_by_other": found})
    verification.save(update_fields=["match_attempts", "updated_at"])
    audit_record(
        actor=visit_actor(visit),
        action=AuditAction.VISIT_ACCOUNT_NOT_FOUND,
        target=visit,
        data={"account": masked, "owned_by_other": found, "tries_left": left},
    )
    return left, verification


def _account_accept(verification: Verification, account: Any) -> Verification:
    visit = verification.visit
    business = business_get(visit.business_code)
    masked = mask_account_number(account.number)
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


# --- Proof of the mobile number (SMS one-time code) -----------------------------------


def _sms_code_hash(visit: Any, code: str) -> str:
    """Keyed hash of a code for one visit: the code itself is never stored.

    Keyed (HMAC under BLIND_INDEX_KEY, with a purpose label) because a plain
    hash of six digits is reversed by trying the million candidates; bound to
    the visit so that equal codes of two visits do not look alike.
    """
    return blind_index(f"{visit.public_id}:{code}", purpose="gate1-sms-code")


@dataclass(frozen=True)
class _SmsToSend:
    mobile: str
    text: str
    attempt: int


def verification_sms_send(*, visit_id: int) -> Verification:
    """Send a new 6-digit code to the mobile number on the bank's record for the matched customer.

    The number comes from the customer's record, not from what the browser
    typed (they are equal here, matched through the blind index, but the
    record is the authority). A resend replaces the previous code and
    resets its tries; sends are spaced (GATE1_SMS_RESEND_SECONDS, 429) and
    counted (GATE1_SMS_MAX_SENDS). The gateway is called after the commit;
    if it fails, the cooldown is lifted again so the customer can retry.
    """
    with transaction.atomic(durable=True):
        verification = _lock(visit_id)
        visit = verification.visit
        if verification.state != VerificationState.IDENTITY_MATCHED or verification.mobile_proven_at is not None:
            raise NotAllowed(
                _("This step is not available now. Please follow the steps in order."), code="out_of_order"
            )
        now = timezone.now()
        if verification.sms_sent_count >= settings.GATE1_SMS_MAX_SENDS:
            raise NotAllowed(message_for("sms_too_many_sends"), code="sms_too_many_sends")
        if verification.sms_last_sent_at is not None:
            wait = settings.GATE1_SMS_RESEND_SECONDS - (now - verification.sms_last_sent_at).total_seconds()
            if wait > 0:
                raise TooManyRequests(message_for("sms_wait"), code="sms_wait", extra={"retry_after": int(wait) + 1})
        assert visit.customer is not None
        code = f"{secrets.randbelow(1_000_000):06d}"
        verification.sms_code_hash = _sms_code_hash(visit, code)
        verification.sms_sent_count += 1
        verification.sms_last_sent_at = now
        verification.sms_expires_at = now + timedelta(seconds=settings.GATE1_SMS_CODE_SECONDS)
        verification.sms_wrong_tries = 0
        verification.save()
        minutes = max(1, settings.GATE1_SMS_CODE_SECONDS // 60)
        text = str(
            _(
                "[RemoteBank] Your verification code is %(code)s, valid for %(minutes)s minutes. Never tell it to anyone."
            )
            % {"code": code, "minutes": minutes}
        )
        outgoing = _SmsToSend(mobile=visit.customer.mobile, text=text, attempt=verification.sms_sent_count)
        audit_record(
            actor=visit_actor(visit),
            action=AuditAction.VISIT_SMS_SENT,
            target=visit,
            data={"mobile": mask_mobile(outgoing.mobile), "send": outgoing.attempt},
        )
    try:
        get_sms_gateway().send(mobile=outgoing.mobile, text=outgoing.text)
    except SmsError as error:
        with transaction.atomic(durable=True):
            verification = _lock(visit_id, refuse_closed=False)
            if verification.sms_sent_count == outgoing.attempt:
                # Not delivered: the code is void, the send not counted, no cooldown.
                verification.sms_code_hash = ""
                verification.sms_sent_count -= 1
                verification.sms_last_sent_at = None
                verification.save()
            audit_record(
                actor=visit_actor(verification.visit),
                action=AuditAction.VISIT_SMS_FAILED,
                target=verification.visit,
                data={"error": type(error).__name__, "send": outgoing.attempt},
            )
        raise ServiceUnavailable(message_for("sms_failed"), code="sms_failed") from error
    return Verification.objects.select_related("visit__customer", "visit__account").get(visit_id=visit_id)


def verification_sms_verify(*, visit_id: int, code: str) -> Verification:
    """Check the code the customer typed: expiry, at most GATE1_SMS_MAX_TRIES wrong ones, audited.

    A wrong code is counted and committed before the error is raised; the
    last allowed wrong code refuses the visit (someone is guessing).
    """
    problem: ApplicationError | None = None
    with transaction.atomic(durable=True):
        verification = _lock(visit_id)
        visit = verification.visit
        if verification.state != VerificationState.IDENTITY_MATCHED or verification.mobile_proven_at is not None:
            raise NotAllowed(
                _("This step is not available now. Please follow the steps in order."), code="out_of_order"
            )
        now = timezone.now()
        if not verification.sms_code_hash or verification.sms_expires_at is None:
            raise ValidationFailed(message_for("sms_no_code"), code="sms_no_code")
        if now >= verification.sms_expires_at:
            verification.sms_code_hash = ""
            verification.save()
            audit_record(actor=visit_actor(visit), action=AuditAction.VISIT_SMS_EXPIRED, target=visit)
            problem = ValidationFailed(message_for("sms_expired"), code="sms_expired")
        elif hmac.compare_digest(verification.sms_code_hash, _sms_code_hash(visit, code.strip())):
            verification.mobile_proven_at = now
            verification.sms_code_hash = ""
            verification.save()
            audit_record(
                actor=visit_actor(visit),
                action=AuditAction.VISIT_MOBILE_PROVEN,
                target=visit,
                data={"wrong_tries": verification.sms_wrong_tries},
            )
        else:
            verification.sms_wrong_tries += 1
            left = settings.GATE1_SMS_MAX_TRIES - verification.sms_wrong_tries
            audit_record(
                actor=visit_actor(visit),
                action=AuditAction.VISIT_SMS_WRONG,
                target=visit,
                data={"wrong_tries": verification.sms_wrong_tries},
            )
            if left <= 0:
                verification.sms_code_hash = ""
                return _refuse(
                    verification, RefusalCode.MOBILE_NOT_PROVEN, {"wrong_tries": verification.sms_wrong_tries}
                )
            verification.save()
            problem = ValidationFailed(
                _("The code is not correct (%(left)s tries left).") % {"left": left},
                code="sms_wrong",
                extra={"tries_left": left},
            )
    if problem is not None:
        raise problem
    return Verification.objects.select_related("visit__customer", "visit__account").get(visit_id=visit_id)


# --- Retention of photos ------------------------------------------------------------


PHOTO_RETENTION = Actor.system("gate1_photo_retention")


def verification_photos_purge(*, retention_days: int, now: datetime | None = None) -> int:
    """Remove the ID-card and account photos of visits closed before the retention period; returns how many visits.

    The same period as recordings (RECORDINGS_RETENTION_DAYS): the photos are
    evidence of the same service. Each visit is handled in its own
    transaction under its row lock, files removed before the row is marked
    (a failed removal is retried by the next run), audited.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=retention_days)
    due = list(
        Verification.objects.filter(photos_purged_at__isnull=True, visit__closed_at__lt=cutoff).values_list(
            "visit_id", flat=True
        )
    )
    purged = 0
    for visit_id in due:
        with transaction.atomic(durable=True):
            verification = (
                Verification.objects.select_for_update(of=("self",))
                .select_related("visit")
                .filter(visit_id=visit_id, photos_purged_at__isnull=True)
                .first()
            )
            if verification is None or verification.visit.closed_at is None or verification.visit.closed_at >= cutoff:
                continue
            removed = []
            for field in (verification.id_card_photo, verification.id_card_portrait, verification.account_photo):
                if field:
                    field.storage.delete(field.name)
                    removed.append(field.field.name)
                    field.name = ""
            verification.photos_purged_at = now
            verification.save()
            audit_record(
                actor=PHOTO_RETENTION,
                action=AuditAction.VISIT_PHOTOS_PURGED,
                target=verification.visit,
                data={"files": removed, "retention_days": retention_days},
            )
            purged += 1
    return purged


def verifications_account_photo_expire(*, now: datetime | None = None) -> int:
    """Account photos still being read past GATE1_OCR_DEADLINE_SECONDS are given up (the customer may type the number)."""
    now = now or timezone.now()
    deadline = timedelta(seconds=settings.GATE1_OCR_DEADLINE_SECONDS)
    return Verification.objects.filter(
        account_photo_state=AccountPhotoState.READING, account_photo_last_upload_at__lt=now - deadline
    ).update(account_photo_state=AccountPhotoState.FAILED, account_photo_failure_code="ocr_timeout", updated_at=now)
