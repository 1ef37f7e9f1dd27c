"""Business operations performed in the call after every gate passed (R7).

An ``Operation`` is one business done (or tried) for one service: activation,
PIN reset, lost-report release, information maintenance or a corporate
legal representative's intent verification. Its state machine:

    awaiting_confirmation ──confirmed──▶ processing ──▶ succeeded
          ▲                                  │  └────▶ failed (final, with a code)
          └────────(core banking did not answer: try again, same reference)
    awaiting_confirmation ──cancel──▶ cancelled

``confirm_by`` says who must confirm: the customer on their own phone (a PIN,
or the before/after of their information) or the agent. The operation's
``public_id`` is its reference at core banking, so a retry after a timeout
cannot apply twice. ``idempotency_key`` (per service) makes a double-submitted
start return the same operation.

No PIN is ever stored here: the customer's PIN goes, salted and hashed, from
the request straight to core banking.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from apps.calls.models import Call
from apps.visits.models import Visit


class OperationState(models.TextChoices):
    AWAITING_CONFIRMATION = "awaiting_confirmation", _("Waiting for confirmation")
    PROCESSING = "processing", _("Being processed by core banking")
    SUCCEEDED = "succeeded", _("Done")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


OPEN_STATES = (OperationState.AWAITING_CONFIRMATION, OperationState.PROCESSING)


class ConfirmBy(models.TextChoices):
    CUSTOMER_PIN = "customer_pin", _("The customer sets a PIN on their phone")
    CUSTOMER = "customer", _("The customer confirms on their phone")
    AGENT = "agent", _("The agent confirms")
    CUSTOMER_INTENT = "customer_intent", _("The legal representative answers the intent script on their phone")


class Operation(ConcurrentTransitionMixin, models.Model):
    public_id = models.UUIDField(verbose_name=_("public ID"), default=uuid.uuid4, unique=True, editable=False)
    visit = models.ForeignKey(Visit, on_delete=models.PROTECT, related_name="operations", verbose_name=_("service"))
    call = models.ForeignKey(
        Call, null=True, blank=True, on_delete=models.PROTECT, related_name="operations", verbose_name=_("call")
    )
    business_code = models.CharField(_("business"), max_length=32)
    idempotency_key = models.CharField(verbose_name=_("idempotency key"), max_length=64)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("requested by")
    )
    state = FSMField(
        _("state"), default=OperationState.AWAITING_CONFIRMATION, choices=OperationState.choices, protected=True
    )
    confirm_by = models.CharField(_("confirmed by"), max_length=16, choices=ConfirmBy.choices)
    # What the agent sees and the service record keeps: values before and
    # after (R7.4), the original loss report's date (R7.3), the recorded
    # answers of an intent verification (R7.5). Personal values are kept
    # as they were: the service record is evidence.
    before = models.JSONField(verbose_name=_("before"), default=dict, blank=True)
    after = models.JSONField(verbose_name=_("after"), default=dict, blank=True)
    details = models.JSONField(verbose_name=_("details"), default=dict, blank=True)
    core_attempts = models.PositiveSmallIntegerField(verbose_name=_("core banking attempts"), default=0)
    result_code = models.CharField(_("result"), max_length=40, blank=True)
    certificate = models.FileField(
        verbose_name=_("certificate"), upload_to="operations/certificates/%Y/%m/", blank=True
    )
    certificate_sha256 = models.CharField(verbose_name=_("certificate SHA-256"), max_length=64, blank=True)
    created_at = models.DateTimeField(_("started at"), auto_now_add=True)
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        ordering = ("visit", "created_at", "pk")
        verbose_name = _("business operation")
        verbose_name_plural = _("business operations")
        constraints = (
            models.UniqueConstraint(fields=("visit", "idempotency_key"), name="operation_idempotency_key_once"),
            # One operation at a time per service: a second start (another
            # tab, a double click with a new key) is refused by the database.
            models.UniqueConstraint(
                fields=("visit",),
                condition=models.Q(state__in=("awaiting_confirmation", "processing")),
                name="one_open_operation_per_service",
            ),
        )

    def __str__(self) -> str:
        return f"{self.business_code} {self.public_id}"

    # Transitions only change fields; services lock, save, audit and notify.

    @transition(field=state, source=OperationState.AWAITING_CONFIRMATION, target=OperationState.PROCESSING)
    def confirm(self, *, now: Any) -> None:
        self.confirmed_at = now
        self.core_attempts += 1

    @transition(field=state, source=OperationState.PROCESSING, target=OperationState.AWAITING_CONFIRMATION)
    def core_unanswered(self, *, code: str) -> None:
        self.result_code = code

    @transition(field=state, source=OperationState.PROCESSING, target=OperationState.SUCCEEDED)
    def succeed(self, *, now: Any, code: str) -> None:
        self.result_code = code
        self.finished_at = now

    @transition(
        field=state,
        source=[OperationState.PROCESSING, OperationState.AWAITING_CONFIRMATION],
        target=OperationState.FAILED,
    )
    def fail(self, *, now: Any, code: str) -> None:
        self.result_code = code
        self.finished_at = now

    @transition(field=state, source=OperationState.AWAITING_CONFIRMATION, target=OperationState.CANCELLED)
    def cancel(self, *, now: Any, code: str) -> None:
        self.result_code = code
        self.finished_at = now
