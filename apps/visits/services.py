"""Every write of a visit: start, bind who and which account, close.

Lock order: a visit's row is locked before any row that hangs off it (Gate 1's
``Verification``, a queue entry, a call), so two services that both need the
visit cannot deadlock.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.audit.actions import AuditAction
from apps.audit.models import ActorKind
from apps.audit.services import Actor, AnyActor, audit_record
from apps.businesses.registry import business_get
from apps.common.crypto import mobile_index, normalize_mobile
from apps.common.errors import NotAllowed, NotFound, ValidationFailed
from apps.common.locking import lock_object
from apps.common.masking import mask_mobile
from apps.customers.models import Account, Customer
from apps.visits.integrations.geoip import IpCountry, ip_country
from apps.visits.models import LocationConsent, Visit, VisitBlock, VisitLocation, VisitOutcome

logger = logging.getLogger(__name__)


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
    visit_block_refuse(mobile=normalized, business_code=business_code, audit=False)
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
        if outcome == VisitOutcome.GATE_FAILED and reason.split(":", 1)[0] in BLOCKING_GATES:
            _block(visit, actor=actor, reason=reason)
        return visit


# --- Where the customer is ---------------------------------------------------------------


def _coordinate(value: object, *, limit: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -limit <= float(value) <= limit:
        raise ValidationFailed(_("The location sent is not valid."), code="invalid_location", extra={"field": name})
    return float(value)


@transaction.atomic(durable=True)
def visit_location_record(
    *,
    visit_id: int,
    consent: str,
    client_ip: str,
    latitude: object = None,
    longitude: object = None,
    accuracy_m: object = None,
) -> VisitLocation:
    """Record what the customer's page reported about their location, and the country of their address.

    The latest report wins (a customer who refused may change their mind);
    every report is in the audit trail, with the coordinates masked there.
    """
    if consent not in LocationConsent.values:
        raise ValidationFailed(
            _("The location sent is not valid."), code="invalid_location", extra={"field": "consent"}
        )
    coordinates = None
    accuracy = None
    if consent == LocationConsent.GRANTED:
        lat = _coordinate(latitude, limit=90, name="latitude")
        lon = _coordinate(longitude, limit=180, name="longitude")
        coordinates = f"{lat:.5f},{lon:.5f}"
        if accuracy_m is not None:
            accuracy = int(_coordinate(accuracy_m, limit=1_000_000, name="accuracy_m"))
            accuracy = max(accuracy, 0)
    try:
        country = ip_country(client_ip)
    except ValueError:
        country = IpCountry(country="", private=False)
    visit = visit_lock(visit_id=visit_id)
    if visit.outcome:
        raise NotAllowed(_("This visit has ended. Please start a new one."), code="visit_closed")
    location, _created = VisitLocation.objects.update_or_create(
        visit=visit,
        defaults={
            "consent": consent,
            "coordinates": coordinates,
            "accuracy_m": accuracy,
            "reported_at": timezone.now(),
            "ip_address": client_ip or None,
            "ip_country": country.country,
            "ip_private": country.private,
        },
    )
    audit_record(
        actor=visit_actor(visit),
        action=AuditAction.VISIT_LOCATION_REPORTED,
        target=visit,
        data={
            "consent": consent,
            # Where to within about 10 km: enough for the trail, not a home address.
            "area": f"{float(latitude):.1f},{float(longitude):.1f}" if coordinates else "",  # type: ignore[arg-type]
            "accuracy_m": accuracy,
            "ip_country": country.country or ("private" if country.private else "unknown"),
        },
    )
    return location


def visit_recording_consent_problem(*, visit: Visit) -> NotAllowed | None:
    """Why this visit may not join the queue for want of the recording consent (None: it may).

    The page asks before joining, but a page is not a control: the server
    refuses too, so no call is ever recorded without the customer told (R5).
    """
    if visit.recording_consented_at is not None:
        return None
    return NotAllowed(
        _("Please read the notice that the call is recorded and agree to it before joining the queue."),
        code="recording_consent_missing",
    )


def visit_location_problem(*, visit: Visit) -> NotAllowed | None:
    """Why this visit may not join the queue under the location policy (None: it may).

    Called by the queue when the customer asks to join: the page reports the
    location (or its refusal) first. Without a report, the visit may join
    only if neither its business needs the location nor the bank restricts
    the region (whose check needs the reported address).
    """
    location = VisitLocation.objects.filter(visit=visit).first()
    required = visit.business_code in settings.LOCATION_REQUIRED_BUSINESSES
    if location is None:
        if not required and not settings.LOCATION_ALLOWED_COUNTRIES:
            return None
        return NotAllowed(_("Please answer the location request before joining the queue."), code="location_missing")
    if location.consent != LocationConsent.GRANTED and required:
        return NotAllowed(
            _(
                "This business can only be done remotely if you share your location. Please allow it and try again, or visit a branch."
            ),
            code="location_required",
        )
    allowed = settings.LOCATION_ALLOWED_COUNTRIES
    if allowed:
        if location.ip_private:
            if not settings.LOCATION_ALLOW_PRIVATE_IP:
                return NotAllowed(_("We could not tell where you are connecting from."), code="location_ip_unknown")
        elif location.ip_country not in allowed:
            return NotAllowed(
                _("This service is only available when connecting from within mainland China."),
                code="location_region",
                extra={"country": location.ip_country},
            )
    return None


# --- Blocks after a failed identity or face check (issue 14) --------------------------------

# Gate 2 (the registry) and Gate 3 (the face): the checks an impostor fails.
BLOCKING_GATES = ("identity", "face")


def _block(visit: Visit, *, actor: AnyActor, reason: str) -> VisitBlock | None:
    """Block remote visits for this customer and mobile number for VISIT_BLOCK_HOURS (0: never)."""
    hours = int(settings.VISIT_BLOCK_HOURS)
    if hours <= 0:
        return None
    now = timezone.now()
    block = VisitBlock.objects.create(
        visit=visit,
        customer=visit.customer,
        mobile_index=mobile_index(visit.mobile),
        reason=reason[:64],
        created_at=now,
        blocked_until=now + timedelta(hours=hours),
    )
    audit_record(
        actor=actor,
        action=AuditAction.VISIT_BLOCKED,
        target=visit,
        data={"block": block.pk, "reason": block.reason, "until": block.blocked_until.isoformat()},
    )
    return block


def visit_block_active_for(*, mobile: str, now: datetime | None = None) -> VisitBlock | None:
    """The block in force for this mobile number, or for the customer it belongs to, if any."""
    now = now or timezone.now()
    index = mobile_index(mobile)
    live = VisitBlock.objects.filter(lifted_at__isnull=True, blocked_until__gt=now)
    return (
        live.filter(mobile_index=index).first()
        or live.filter(customer__mobile_index=index).order_by("-blocked_until").first()
    )


def visit_block_refuse(*, mobile: str, business_code: str = "", audit: bool = True) -> None:
    """Refuse a new remote visit while a block is in force for this number or its customer (409).

    With ``audit`` the refusal is recorded (``visits.block.refused``, against
    the visit that caused the block) in a durable transaction of its own,
    committed before the error propagates, so the record survives the
    caller's rollback: Gate 1 (``verification_start``) calls it so BEFORE it
    opens its own durable transaction. ``visit_start`` checks again inside
    that transaction (``audit=False``, logged only: a record written there
    would be rolled back with the refusal).
    """
    block = visit_block_active_for(mobile=mobile)
    if block is None:
        return
    masked = mask_mobile(mobile)
    logger.warning("remote visit refused for %s: block %s until %s", masked, block.pk, block.blocked_until)
    if audit:
        with transaction.atomic(durable=True):
            audit_record(
                actor=Actor(ActorKind.CUSTOMER, "", f"mobile {masked}"),
                action=AuditAction.VISIT_BLOCK_REFUSED,
                target=block.visit,
                data={
                    "block": block.pk,
                    "reason": block.reason,
                    "until": block.blocked_until.isoformat(),
                    "mobile": masked,
                    "business": business_code,
                },
            )
    raise NotAllowed(
        _(
            "Identity verification failed in a recent remote visit, so remote services are not available "
            "until %(until)s. Please visit a branch counter."
        )
        % {"until": timezone.localtime(block.blocked_until).strftime("%Y-%m-%d %H:%M")},
        code="remote_service_blocked",
        extra={"blocked_until": block.blocked_until.isoformat()},
    )


def visit_block_lift(*, actor: User, block_id: int, reason: str) -> VisitBlock:
    """A supervisor lifts a block (the customer proved who they are at a counter, say); audited with the reason."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed(_("Please say why the block is lifted."), code="reason_required")
    with transaction.atomic(durable=True):
        block = lock_object(
            VisitBlock.objects,
            not_found=lambda: NotFound(_("This block does not exist."), code="block_not_found"),
            pk=block_id,
        )
        if block.lifted_at is not None:
            raise NotAllowed(_("This block has already been lifted."), code="block_already_lifted")
        block.lifted_at = timezone.now()
        block.lifted_by = actor
        block.lift_reason = reason[:200]
        block.save(update_fields=["lifted_at", "lifted_by", "lift_reason"])
        audit_record(
            actor=actor,
            action=AuditAction.VISIT_BLOCK_LIFTED,
            target=block.visit,
            data={"block": block.pk, "reason": block.lift_reason, "was_until": block.blocked_until.isoformat()},
        )
    return block


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
        visit.recording_consented_at = timezone.now()
        visit.save(update_fields=["recording_consented_at", "updated_at"])
        audit_record(
            actor=visit_actor(visit),
            action=AuditAction.VISIT_RECORDING_CONSENTED,
            target=visit,
            data={"notice": RECORDING_NOTICE_VERSION, "camera": bool(camera), "microphone": bool(microphone)},
        )
        return visit
