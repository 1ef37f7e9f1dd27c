"""A customer's visit and its Gate 1 state machine (R6.1).

A ``ServiceSession`` is one visit of one customer for one business, from the
moment the mobile page starts until the customer reaches the queue (and, in
later issues, through the call). The state machine is the server's word on how
far the visit got; nothing a browser sends can move it except through the
transitions below, each called by a service that locks the row and audits.

    business_chosen ──upload──▶ id_card_processing ──read──▶ id_card_read
         ▲   ▲                        │                          │ confirm
         │   └──────unreadable────────┘                          ▼
         │                                                 identity_matched
         └─────────────(retake from id_card_read)                │ account
                                                                 ▼
                                       queue_ready ◀──screen── account_accepted

    any non-final state ──refuse──▶ refused (final, with a reason code)
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from apps.businesses.registry import business_choices
from apps.common.crypto import EncryptedCharField
from apps.customers.models import Account, Customer


class VisitState(models.TextChoices):
    BUSINESS_CHOSEN = "business_chosen", _("Business chosen")
    ID_CARD_PROCESSING = "id_card_processing", _("Reading ID card")
    ID_CARD_READ = "id_card_read", _("ID card read")
    IDENTITY_MATCHED = "identity_matched", _("Identity matched")
    ACCOUNT_ACCEPTED = "account_accepted", _("Account accepted")
    QUEUE_READY = "queue_ready", _("Ready to queue")
    REFUSED = "refused", _("Refused")


class RefusalCode(models.TextChoices):
    NO_MATCHING_CUSTOMER = "no_matching_customer", _("Name, ID number and mobile number match no customer")
    TOO_MANY_ATTEMPTS = "too_many_attempts", _("Too many attempts")
    ACCOUNT_NOT_FOUND = "account_not_found", _("Account not found")
    ACCOUNT_NOT_OWNED = "account_not_owned", _("Account belongs to someone else")
    ACCOUNT_KIND_NOT_SERVED = "account_kind_not_served", _("Account kind not served by this business")
    ACCOUNT_STATUS = "account_status", _("Account status does not allow this business")
    BLACKLISTED = "blacklisted", _("On a blacklist")


class ServiceOutcome(models.TextChoices):
    """How a service (a visit) ended, for the service record (R4). Blank while open."""

    COMPLETED = "completed", _("Completed")
    REFUSED = "refused", _("Refused before the call (Gate 1)")
    GATE_FAILED = "gate_failed", _("Failed an in-call gate")
    ABANDONED = "abandoned", _("Abandoned")
    CANCELLED = "cancelled", _("Ended without the business done")


_OPEN = [
    VisitState.BUSINESS_CHOSEN,
    VisitState.ID_CARD_PROCESSING,
    VisitState.ID_CARD_READ,
    VisitState.IDENTITY_MATCHED,
    VisitState.ACCOUNT_ACCEPTED,
]


class ServiceSession(ConcurrentTransitionMixin, models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    business_code = models.CharField(_("business"), max_length=32, choices=business_choices())
    mobile = EncryptedCharField(_("mobile number"), max_length=20)
    state = FSMField(_("state"), default=VisitState.BUSINESS_CHOSEN, choices=VisitState.choices, protected=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    # ID card: the photo, its portrait (for face verification, Gate 3) and
    # what OCR read. ``id_card_attempts`` counts uploads (rate limit).
    id_card_attempts = models.PositiveSmallIntegerField(default=0)
    id_card_last_upload_at = models.DateTimeField(null=True, blank=True)
    id_card_photo = models.FileField(upload_to="visits/id_cards/", blank=True)
    id_card_portrait = models.FileField(upload_to="visits/portraits/", blank=True)
    id_card_failure_code = models.CharField(max_length=32, blank=True)
    read_name = models.CharField(max_length=64, blank=True)
    read_id_number = EncryptedCharField(max_length=18, null=True, blank=True)
    read_sex = models.CharField(max_length=1, blank=True)
    read_ethnicity = models.CharField(max_length=16, blank=True)
    read_birth_date = models.DateField(null=True, blank=True)
    read_address = EncryptedCharField(max_length=200, null=True, blank=True)
    match_attempts = models.PositiveSmallIntegerField(default=0)

    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="visits")
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.PROTECT, related_name="visits")
    refusal_code = models.CharField(_("refusal"), max_length=32, choices=RefusalCode.choices, blank=True)

    # The service record's ending (R4): set once by ``visit_close`` and never
    # changed; an interrupted call leaves it blank so the service can resume.
    outcome = models.CharField(_("outcome"), max_length=16, choices=ServiceOutcome.choices, blank=True)
    outcome_reason = models.CharField(_("outcome reason"), max_length=64, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        indexes = (models.Index(fields=("outcome", "created_at")),)
        verbose_name = _("visit")
        verbose_name_plural = _("visits")

    def __str__(self) -> str:
        return f"visit {self.public_id}"

    # Transitions only change fields; services lock, save, audit and schedule.

    @transition(field=state, source=VisitState.BUSINESS_CHOSEN, target=VisitState.ID_CARD_PROCESSING)
    def id_card_uploaded(self) -> None:
        self.id_card_failure_code = ""

    @transition(field=state, source=VisitState.ID_CARD_PROCESSING, target=VisitState.ID_CARD_READ)
    def id_card_read(self) -> None:
        self.id_card_failure_code = ""

    @transition(field=state, source=VisitState.ID_CARD_PROCESSING, target=VisitState.BUSINESS_CHOSEN)
    def id_card_unreadable(self, code: str) -> None:
        self.id_card_failure_code = code

    @transition(field=state, source=VisitState.ID_CARD_READ, target=VisitState.BUSINESS_CHOSEN)
    def id_card_retake(self) -> None:
        self.read_name = ""
        self.read_id_number = None
        self.read_address = None

    @transition(field=state, source=VisitState.ID_CARD_READ, target=VisitState.IDENTITY_MATCHED)
    def identity_matched(self, customer: Customer) -> None:
        self.customer = customer

    @transition(field=state, source=VisitState.IDENTITY_MATCHED, target=VisitState.ACCOUNT_ACCEPTED)
    def account_accepted(self, account: Account) -> None:
        self.account = account

    @transition(field=state, source=VisitState.ACCOUNT_ACCEPTED, target=VisitState.QUEUE_READY)
    def screening_passed(self) -> None:
        pass

    @transition(field=state, source=_OPEN, target=VisitState.REFUSED)
    def refuse(self, code: RefusalCode) -> None:
        self.refusal_code = code
