"""Every write of a visit: start, bind who and which account, close.

Lock order: a visit's row is locked before any row that hangs off it (Gate 1's
``Verification``, a queue entry, a call), so two services that both need the
visit cannot deadlock.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.audit.actions import AuditAction
from apps.audit.models import ActorKind
from apps.audit.services import Actor, AnyActor, audit_record
from apps.businesses.registry import business_get
from apps.common.crypto import normalize_mobile
from apps.common.errors import NotFound, ValidationFailed
from apps.common.locking import lock_object
from apps.common.masking import mask_mobile
from apps.customers.models import Account, Customer
from apps.visits.models import Visit, VisitOutcome


def visit_actor(visit: Visit) -> Actor:
    """Who acts on the customer's side: the customer once identified, before that the anonymous visit."""
    if visit.customer_id is not None:
        assert visit.customer is not None
        return visit.customer.as_audit_actor()
    return Actor(ActorKind.CUSTOMER, "", f"visit {visit.public_id}")


def _visit_not_found() -> NotFound:
    return NotFound(_("This visit does not exist."), code="visit_not_found")


def visit_lock(*, visit_id: int) -> Visit:
    """Lock the visit's row for the rest of the caller's transaction (see the lock order above)."""
    return lock_object(Visit.objects, pk=visit_id, related=("customer",), not_found=_visit_not_found)


def visit_start(*, business_code: str, mobile: str) -> Visit:
    """Open a visit for a business with the mobile number the customer typed.

    Runs in the caller's transaction: Gate 1 (``verification_start``) creates
    its own row beside it, all or nothing.
    """
    try:
        business_get(business_code)
    except KeyError as exc:
        raise ValidationFailed(_("Please choose one of the listed businesses."), code="unknown_business") from exc
    normalized = normalize_mobile(mobile)
    if len(normalized) != 11 or not normalized.startswith("1"):
        raise ValidationFailed(_("Please enter an 11-digit mainland mobile number."), code="invalid_mobile")
    with transaction.atomic():
        visit = Visit.objects.create(business_code=business_code, mobile=normalized)
        audit_record(
            actor=visit_actor(visit),
            action=AuditAction.VISIT_STARTED,
            target=visit,
            data={"business": business_code, "mobile": mask_mobile(normalized)},
        )
    return visit


def visit_customer_bind(*, visit: Visit, customer: Customer | None = None, account: Account | None = None) -> Visit:
    """Record who the visit is for and which account, as Gate 1 established them.

    Called with the visit locked (``visit_lock``) inside the Gate 1 service's
    transaction; that service's audit record (identity matched, account
    accepted or refused) is the evidence of this write, so none is added here.
    """
    fields = ["updated_at"]
    if customer is not None:
        visit.customer = customer
        fields.append("customer")
    if account is not None:
        visit.account = account
        fields.append("account")
    visit.save(update_fields=fields)
    return visit


def visit_close(*, visit_id: int, actor: AnyActor, outcome: VisitOutcome, reason: str = "") -> Visit:
    """Write the visit's outcome into its record (R4). The first outcome wins.

    Called inside the caller's transaction by whoever ends the service (Gate 1
    refusing, a failed gate, the business done, the customer gone for good). A
    visit that is already closed is returned unchanged, so a late or repeated
    close (a redelivered task, both sides hanging up) cannot rewrite history.
    """
    with transaction.atomic():
        visit = visit_lock(visit_id=visit_id)
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


# The version of the recording notice the customer's page shows; a new wording gets a new version,
# so the audit trail tells which text each customer agreed to.
RECORDING_NOTICE_VERSION = "2026-12-recorded-call-v1"


def visit_recording_consent(*, visit_id: int, camera: bool, microphone: bool) -> Visit:
    """Record that the customer was told the call is recorded and agreed, before any call (R5).

    Audited with what the page's device check found, so a later dispute can
    see the customer was told and could be seen and heard. Repeating it (a
    reload) records it again: each agreement is a fact of its own.
    """
    with transaction.atomic():
        visit = visit_lock(visit_id=visit_id)
        if visit.outcome:
            raise ValidationFailed(_("This visit has ended. Please start again."), code="visit_closed")
        audit_record(
            actor=visit_actor(visit),
            action=AuditAction.VISIT_RECORDING_CONSENTED,
            target=visit,
            data={"notice": RECORDING_NOTICE_VERSION, "camera": bool(camera), "microphone": bool(microphone)},
        )
        return visit
