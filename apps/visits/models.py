"""A customer's visit: one service of one customer for one business (R4).

A ``Visit`` lives from the moment the customer's mobile page starts it until
its outcome is written: through Gate 1 (``apps.verification`` keeps its own
row, ``Verification``, attached to the visit), the queue, one or more calls
(a transfer or a rejoin keeps the visit), the in-call gates and the business
done. It is the service record every other app hangs its rows on.

Lifecycle: open (``outcome`` blank) → closed (``outcome`` set once by
``visit_close``, never changed). An interrupted call leaves the visit open so
that the service can resume (R4.2).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.businesses.registry import business_choices
from apps.common.crypto import EncryptedCharField
from apps.customers.models import Account, Customer

# Audit records written before the visit had its own app name their target
# ``verification.servicesession``; both labels name the same rows (same ids).
VISIT_AUDIT_TARGET_TYPES = ("visits.visit", "verification.servicesession")


class VisitOutcome(models.TextChoices):
    """How a visit ended, for the service record (R4). Blank while open."""

    COMPLETED = "completed", _("Completed")
    REFUSED = "refused", _("Refused before the call (Gate 1)")
    GATE_FAILED = "gate_failed", _("Failed an in-call gate")
    ABANDONED = "abandoned", _("Abandoned")
    CANCELLED = "cancelled", _("Ended without the business done")
    INTENT_REFUSED = "intent_refused", _("The legal representative did not confirm the intent")


class Visit(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    business_code = models.CharField(_("business"), max_length=32, choices=business_choices())
    # The mobile number the customer typed: one of Gate 1's three elements.
    mobile = EncryptedCharField(_("mobile number"), max_length=20)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    # Who and which account, once Gate 1 has established them.
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="visits")
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.PROTECT, related_name="visits")

    # The service record's ending (R4): set once by ``visit_close`` and never
    # changed; an interrupted call leaves it blank so the service can resume.
    outcome = models.CharField(_("outcome"), max_length=16, choices=VisitOutcome.choices, blank=True)
    outcome_reason = models.CharField(_("outcome reason"), max_length=64, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    # When the customer last agreed to the recorded call (R5: dual recording needs the
    # customer told first). Set only by ``visit_recording_consent``, which also audits
    # the notice's version; the queue refuses a visit without it.
    recording_consented_at = models.DateTimeField(_("recording consent given at"), null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        indexes = (models.Index(fields=("outcome", "created_at"), name="visits_outcome_created"),)
        verbose_name = _("visit")
        verbose_name_plural = _("visits")

    def __str__(self) -> str:
        return f"visit {self.public_id}"

    @property
    def is_open(self) -> bool:
        return not self.outcome


class LocationConsent(models.TextChoices):
    GRANTED = "granted", _("Shared by the customer")
    DENIED = "denied", _("Refused by the customer")
    UNAVAILABLE = "unavailable", _("Not available on the customer's device")


class VisitLocation(models.Model):
    """Where the customer was during the visit: the browser's location (with consent) and the IP's country.

    Personal data: the coordinates and address are stored encrypted and shown
    masked unless unmasked (and the unmasking audited), like the ID number.
    """

    visit = models.OneToOneField(Visit, on_delete=models.PROTECT, related_name="location")
    consent = models.CharField(_("location consent"), max_length=16, choices=LocationConsent.choices)
    # "lat,lon" to 5 decimals (about 1 m), encrypted at rest; None unless granted.
    coordinates = EncryptedCharField(max_length=40, null=True, blank=True)
    accuracy_m = models.PositiveIntegerField(_("accuracy (m)"), null=True, blank=True)
    reported_at = models.DateTimeField(_("reported at"))
    ip_address = EncryptedCharField(max_length=45, null=True, blank=True)
    # ISO 3166-1 alpha-2; blank when private, reserved or unknown.
    ip_country = models.CharField(_("IP country"), max_length=2, blank=True)
    ip_private = models.BooleanField(default=False)

    class Meta:
        verbose_name = _("visit location")
        verbose_name_plural = _("visit locations")

    def __str__(self) -> str:
        return f"location of visit {self.visit_id}: {self.consent}"


class VisitBlock(models.Model):
    """A customer who failed Gate 2 or Gate 3 may not start remote visits until ``blocked_until`` (issue 14).

    Matched at ``visit_start`` by the mobile number's blind index (the only
    thing known then) and by the customer; a supervisor may lift it, audited.
    """

    visit = models.OneToOneField(Visit, on_delete=models.PROTECT, related_name="block", verbose_name=_("visit"))
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="visit_blocks")
    mobile_index = models.CharField(max_length=64, db_index=True, editable=False)
    reason = models.CharField(_("reason"), max_length=64)
    created_at = models.DateTimeField(_("created at"))
    blocked_until = models.DateTimeField(_("blocked until"), db_index=True)
    lifted_at = models.DateTimeField(_("lifted at"), null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    lift_reason = models.CharField(_("why it was lifted"), max_length=200, blank=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name = _("remote service block")
        verbose_name_plural = _("remote service blocks")

    def __str__(self) -> str:
        return f"block after visit {self.visit_id} until {self.blocked_until:%Y-%m-%d %H:%M}"
