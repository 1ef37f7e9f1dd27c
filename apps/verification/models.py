"""Gate 1 of a visit (R6.1): its state machine and what it read.

A ``Verification`` row is attached to each ``Visit`` (``apps.visits``) and
holds everything Gate 1 needs: the ID-card photo and portrait, what OCR read,
the attempt counters and the refusal. The state machine is the server's word
on how far Gate 1 got; nothing a browser sends can move it except through the
transitions below, each called by a service that locks the rows and audits.

    business_chosen ──upload──▶ id_card_processing ──read──▶ id_card_read
         ▲   ▲                        │                          │ confirm
         │   └──unreadable / ocr timed out──┘                    ▼
         │                                                 identity_matched
         └─────────────(retake from id_card_read)                │ account
                                                                 ▼
                                       queue_ready ◀──screen── account_accepted

    any non-final state ──refuse──▶ refused (final, with a reason code)

Who the customer is and which account they chose are facts of the visit
(``visit.customer``, ``visit.account``); the Gate 1 services write them there
when the matching transition happens.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from apps.common.crypto import EncryptedCharField
from apps.verification.photos import SealedFileField
from apps.visits.models import Visit


class VerificationState(models.TextChoices):
    BUSINESS_CHOSEN = "business_chosen", _("Business chosen")
    ID_CARD_PROCESSING = "id_card_processing", _("Reading ID card")
    ID_CARD_READ = "id_card_read", _("ID card read")
    IDENTITY_MATCHED = "identity_matched", _("Identity matched")
    ACCOUNT_ACCEPTED = "account_accepted", _("Account accepted")
    QUEUE_READY = "queue_ready", _("Ready to queue")
    REFUSED = "refused", _("Refused")


class RefusalCode(models.TextChoices):
    NO_MATCHING_CUSTOMER = "no_matching_customer", _("Name, ID number and mobile number match no customer")
    MOBILE_NOT_PROVEN = "mobile_not_proven", _("Mobile number not proven by SMS code")
    TOO_MANY_ATTEMPTS = "too_many_attempts", _("Too many attempts")
    ACCOUNT_NOT_FOUND = "account_not_found", _("Account not found")
    ACCOUNT_NOT_OWNED = "account_not_owned", _("Account belongs to someone else")
    ACCOUNT_KIND_NOT_SERVED = "account_kind_not_served", _("Account kind not served by this business")
    ACCOUNT_STATUS = "account_status", _("Account status does not allow this business")
    BLACKLISTED = "blacklisted", _("On a blacklist")


class AccountPhotoState(models.TextChoices):
    READING = "reading", _("Reading")
    READ = "read", _("Read")
    FAILED = "failed", _("Not readable")


_OPEN = [
    VerificationState.BUSINESS_CHOSEN,
    VerificationState.ID_CARD_PROCESSING,
    VerificationState.ID_CARD_READ,
    VerificationState.IDENTITY_MATCHED,
    VerificationState.ACCOUNT_ACCEPTED,
]


class Verification(ConcurrentTransitionMixin, models.Model):
    visit = models.OneToOneField(Visit, on_delete=models.PROTECT, related_name="verification", verbose_name=_("visit"))
    state = FSMField(
        _("state"), default=VerificationState.BUSINESS_CHOSEN, choices=VerificationState.choices, protected=True
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    # ID card: the photo, its portrait (for face verification, Gate 3) and
    # what OCR read. ``id_card_attempts`` numbers uploads (the OCR task's
    # idempotency key); uploads whose read the platform lost
    # (``id_card_ocr_timeouts``) do not count against the rate limit.
    id_card_attempts = models.PositiveSmallIntegerField(default=0)
    id_card_ocr_timeouts = models.PositiveSmallIntegerField(default=0)
    # When the sweeper queued the current upload's OCR again (once per upload).
    id_card_ocr_requeued_at = models.DateTimeField(null=True, blank=True)
    id_card_last_upload_at = models.DateTimeField(null=True, blank=True)
    id_card_photo = SealedFileField(upload_to="visits/id_cards/", blank=True)
    id_card_portrait = SealedFileField(upload_to="visits/portraits/", blank=True)
    # SHA-256 of the two images (as the application reads them, decrypted), so
    # that recordings_verify can tell a swapped file.
    id_card_photo_sha256 = models.CharField(max_length=64, blank=True)
    id_card_portrait_sha256 = models.CharField(max_length=64, blank=True)
    id_card_failure_code = models.CharField(max_length=32, blank=True)
    read_name = models.CharField(max_length=64, blank=True)
    # Positions in ``read_name`` of characters OCR was not sure of
    # (``idcard.MIN_CHARACTER_CONFIDENCE``): the bank's record must confirm
    # them, and the customer is shown which ones to check.
    read_name_uncertain = models.JSONField(default=list, blank=True)
    read_id_number = EncryptedCharField(max_length=18, null=True, blank=True)
    read_sex = models.CharField(max_length=1, blank=True)
    read_ethnicity = models.CharField(max_length=16, blank=True)
    read_birth_date = models.DateField(null=True, blank=True)
    read_address = EncryptedCharField(max_length=200, null=True, blank=True)
    match_attempts = models.PositiveSmallIntegerField(default=0)
    # Set when the retention period removed the ID-card photo and portrait
    # (``verification_photos_purge``); the read fields stay.
    photos_purged_at = models.DateTimeField(null=True, blank=True)

    # The account photo (bank card or passbook barcode), read in Celery like
    # the ID card: ``account_photo_attempts`` numbers uploads (the task's
    # idempotency key); the reading waits for the customer's confirmation.
    account_photo = SealedFileField(upload_to="visits/account_photos/", blank=True)
    account_photo_attempts = models.PositiveSmallIntegerField(default=0)
    account_photo_last_upload_at = models.DateTimeField(null=True, blank=True)
    account_photo_state = models.CharField(max_length=16, choices=AccountPhotoState.choices, blank=True)
    account_photo_failure_code = models.CharField(max_length=32, blank=True)
    account_photo_number = EncryptedCharField(max_length=40, null=True, blank=True)
    account_photo_source = models.CharField(max_length=16, blank=True)

    # Proof of the mobile number (SMS one-time code to the number on the
    # bank's record). Only a keyed hash of the code is kept, never the code.
    sms_code_hash = models.CharField(max_length=64, blank=True)
    sms_sent_count = models.PositiveSmallIntegerField(default=0)
    sms_last_sent_at = models.DateTimeField(null=True, blank=True)
    sms_expires_at = models.DateTimeField(null=True, blank=True)
    sms_wrong_tries = models.PositiveSmallIntegerField(default=0)
    mobile_proven_at = models.DateTimeField(null=True, blank=True)

    refusal_code = models.CharField(_("refusal"), max_length=32, choices=RefusalCode.choices, blank=True)

    class Meta:
        verbose_name = _("Gate 1 verification")
        verbose_name_plural = _("Gate 1 verifications")

    def __str__(self) -> str:
        return f"Gate 1 of visit {self.visit_id}"

    @property
    def id_card_uploads_counted(self) -> int:
        """Uploads that count against GATE1_MAX_ID_CARD_UPLOADS: not those whose read the platform lost."""
        return self.id_card_attempts - self.id_card_ocr_timeouts

    @property
    def passed(self) -> bool:
        return self.state == VerificationState.QUEUE_READY

    # Transitions only change fields; services lock, save, audit and schedule.

    @transition(field=state, source=VerificationState.BUSINESS_CHOSEN, target=VerificationState.ID_CARD_PROCESSING)
    def id_card_uploaded(self) -> None:
        self.id_card_failure_code = ""
        self.id_card_ocr_requeued_at = None

    @transition(field=state, source=VerificationState.ID_CARD_PROCESSING, target=VerificationState.ID_CARD_READ)
    def id_card_read(self) -> None:
        self.id_card_failure_code = ""

    @transition(field=state, source=VerificationState.ID_CARD_PROCESSING, target=VerificationState.BUSINESS_CHOSEN)
    def id_card_unreadable(self, code: str) -> None:
        self.id_card_failure_code = code

    @transition(field=state, source=VerificationState.ID_CARD_PROCESSING, target=VerificationState.BUSINESS_CHOSEN)
    def id_card_ocr_timed_out(self) -> None:
        self.id_card_failure_code = "ocr_timeout"
        self.id_card_ocr_timeouts += 1

    @transition(field=state, source=VerificationState.ID_CARD_READ, target=VerificationState.BUSINESS_CHOSEN)
    def id_card_retake(self) -> None:
        self.read_name = ""
        self.read_name_uncertain = []
        self.read_id_number = None
        self.read_address = None

    @transition(field=state, source=VerificationState.ID_CARD_READ, target=VerificationState.BUSINESS_CHOSEN)
    def id_card_name_not_matched(self, code: str) -> None:
        """The name read is not the one the bank has for that ID number: retake (or check) the photo."""
        self.id_card_failure_code = code
        self.read_name = ""
        self.read_name_uncertain = []
        self.read_id_number = None
        self.read_address = None

    @transition(field=state, source=VerificationState.ID_CARD_READ, target=VerificationState.IDENTITY_MATCHED)
    def identity_matched(self) -> None:
        pass

    @transition(field=state, source=VerificationState.IDENTITY_MATCHED, target=VerificationState.ACCOUNT_ACCEPTED)
    def account_accepted(self) -> None:
        pass

    @transition(field=state, source=VerificationState.ACCOUNT_ACCEPTED, target=VerificationState.QUEUE_READY)
    def screening_passed(self) -> None:
        pass

    @transition(field=state, source=_OPEN, target=VerificationState.REFUSED)
    def refuse(self, code: RefusalCode) -> None:
        self.refusal_code = code
