"""Customers, their accounts, branches and blacklist entries.

These rows mirror the bank's core system (the demo seeds them). ID and mobile
numbers are stored encrypted; each has a blind index (apps.common.crypto) kept
in step by ``save`` so that a lookup by number is an indexed equality query.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.audit.models import ActorKind
from apps.audit.services import Actor
from apps.common.crypto import (
    EncryptedCharField,
    id_number_index,
    mobile_index,
    normalize_account_number,
)
from apps.common.masking import mask_account_number, mask_id_number, mask_mobile


class Branch(models.Model):
    code = models.CharField(_("code"), max_length=16, unique=True)
    name = models.CharField(_("name"), max_length=100)
    city = models.CharField(_("city"), max_length=50)
    # Gate 4 draws plausible wrong cities and branches from the same province.
    province = models.CharField(_("province"), max_length=20, blank=True)
    address = models.CharField(_("address"), max_length=200, blank=True)

    class Meta:
        ordering = ("code",)
        verbose_name = _("branch")
        verbose_name_plural = _("branches")

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class CustomerLevel(models.TextChoices):
    ORDINARY = "ordinary", _("Ordinary")
    GOLD = "gold", _("Gold")
    PLATINUM = "platinum", _("Platinum")
    PRIVATE = "private", _("Private banking")


class Customer(models.Model):
    customer_number = models.CharField(_("customer number"), max_length=20, unique=True)
    name = models.CharField(_("name"), max_length=64)
    id_number = EncryptedCharField(_("ID number"), max_length=18)
    id_number_index = models.CharField(verbose_name=_("ID number index"), max_length=64, unique=True, editable=False)
    mobile = EncryptedCharField(_("mobile number"), max_length=20)
    mobile_index = models.CharField(verbose_name=_("mobile number index"), max_length=64, db_index=True, editable=False)
    level = models.CharField(_("level"), max_length=16, choices=CustomerLevel.choices, default=CustomerLevel.ORDINARY)
    home_branch = models.ForeignKey(
        Branch, on_delete=models.PROTECT, related_name="customers", verbose_name=_("branch")
    )
    registered_photo = models.ImageField(_("registered photo"), upload_to="customers/photos/", blank=True)
    # Personal information the customer may maintain remotely (R7.4).
    address = EncryptedCharField(_("address"), max_length=200, null=True, blank=True)
    occupation = models.CharField(_("occupation"), max_length=64, blank=True)
    id_valid_until = models.DateField(_("ID card valid until"), null=True, blank=True)
    # Reference of the last core-banking request applied to this record, so a
    # replayed request (same reference) is answered without applying twice.
    core_reference = models.CharField(
        verbose_name=_("core banking reference"), max_length=64, blank=True, editable=False
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ("customer_number",)
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        # Without it, staff see only the customers of their own (or their
        # team's) current and recent services (customers_visible_to).
        permissions = (("view_all_customers", _("Can see every customer, not only those served")),)

    def __str__(self) -> str:
        # The audit trail's target label: APIs mask it on the way out; only a
        # compliance export asked unmasked (and audited) shows it in clear.
        return f"{self.customer_number} {self.name}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Derived columns: always recomputed from the plaintext so they can
        # never drift from the encrypted value.
        self.id_number_index = id_number_index(self.id_number)
        self.mobile_index = mobile_index(self.mobile)
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = {*kwargs["update_fields"], "id_number_index", "mobile_index"}
        super().save(*args, **kwargs)

    @property
    def id_number_masked(self) -> str:
        return mask_id_number(self.id_number)

    @property
    def mobile_masked(self) -> str:
        return mask_mobile(self.mobile)

    def as_audit_actor(self) -> Actor:
        return Actor(ActorKind.CUSTOMER, str(self.pk), self.customer_number)


class AccountKind(models.TextChoices):
    DEBIT_CARD = "debit_card", _("Debit card")
    PASSBOOK = "passbook", _("Passbook")
    CERTIFICATE_OF_DEPOSIT = "certificate_of_deposit", _("Certificate of deposit")
    CORPORATE = "corporate", _("Corporate account")


class AccountStatus(models.TextChoices):
    NORMAL = "normal", _("Normal")
    INACTIVE = "inactive", _("Not activated")
    DORMANT = "dormant", _("Dormant")
    REPORTED_LOST = "reported_lost", _("Reported lost")
    FROZEN = "frozen", _("Frozen")
    CLOSED = "closed", _("Closed")


class Account(models.Model):
    number = models.CharField(_("account number"), max_length=32, unique=True)
    kind = models.CharField(_("kind"), max_length=32, choices=AccountKind.choices)
    status = models.CharField(_("status"), max_length=16, choices=AccountStatus.choices, default=AccountStatus.NORMAL)
    owner = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="accounts", verbose_name=_("owner"))
    opening_branch = models.ForeignKey(
        Branch, on_delete=models.PROTECT, related_name="accounts", verbose_name=_("opening branch")
    )
    opened_on = models.DateField(_("opened on"))
    # When the status last changed (e.g. the date a card was reported lost,
    # shown to the agent at lost-report release, R7.3).
    status_since = models.DateField(_("status since"))
    company_name = models.CharField(_("company name"), max_length=120, blank=True)
    # Core banking's own PIN store (the sandbox core keeps it here): a salted
    # hash only, never a PIN. Reference: see Customer.core_reference.
    pin_hash = models.CharField(verbose_name=_("PIN hash"), max_length=128, blank=True, editable=False)
    core_reference = models.CharField(
        verbose_name=_("core banking reference"), max_length=64, blank=True, editable=False
    )

    class Meta:
        ordering = ("number",)
        verbose_name = _("account")
        verbose_name_plural = _("accounts")

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.number_masked}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.number = normalize_account_number(self.number)
        super().save(*args, **kwargs)

    @property
    def number_masked(self) -> str:
        return mask_account_number(self.number)


class BlacklistKind(models.TextChoices):
    AML = "aml", _("Anti-money-laundering")
    TELECOM_FRAUD = "telecom_fraud", _("Telecom fraud")


class BlacklistEntry(models.Model):
    """One listed person and/or account. Matching is by ID number or account number."""

    kind = models.CharField(_("list"), max_length=16, choices=BlacklistKind.choices)
    # NULL, not "", when absent: the encrypted field stores empty values as NULL.
    id_number = EncryptedCharField(_("ID number"), max_length=18, null=True, blank=True)
    id_number_index = models.CharField(
        verbose_name=_("ID number index"), max_length=64, blank=True, db_index=True, editable=False
    )
    account_number = models.CharField(_("account number"), max_length=32, blank=True, db_index=True)
    source = models.CharField(_("source"), max_length=100)
    listed_since = models.DateField(_("listed since"))
    reason = models.CharField(_("reason"), max_length=200)
    # Entries are delisted, never deleted: a past screening must stay explainable.
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ("kind", "listed_since")
        verbose_name = _("blacklist entry")
        verbose_name_plural = _("blacklist entries")
        constraints = (
            models.CheckConstraint(
                condition=~models.Q(id_number_index="", account_number=""),
                name="blacklist_entry_matches_something",
            ),
        )

    def __str__(self) -> str:
        subject = mask_id_number(self.id_number) or mask_account_number(self.account_number)
        return f"{self.get_kind_display()} {subject}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.id_number_index = id_number_index(self.id_number) if self.id_number else ""
        self.account_number = normalize_account_number(self.account_number)
        super().save(*args, **kwargs)
