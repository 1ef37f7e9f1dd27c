"""Business operations in the call (R7), only after every gate passed (R6.5).

Every entry point first asks ``gates_require_passed``; then it locks the
operation, moves its state machine, audits, and tells both sides after commit.
Core banking is asked outside any database transaction (it is slow and may
time out); its answer is applied under the lock to the operation that is
still processing, so a repeated request cannot apply it twice, and a
timeout puts the operation back to be confirmed again under the same
reference (core banking applies a reference once).

PINs: ``operation_customer_pin`` receives the PIN, checks it, and passes it to
the handler, which sends core banking only a salted hash. The PIN is in no
argument that is logged, audited, stored or broadcast.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.audit.actions import AuditAction
from apps.audit.models import ActorKind
from apps.audit.services import Actor, AnyActor, audit_record
from apps.businesses.registry import business_get
from apps.calls.services import LIVE_CALL_STATES, MEDIA, call_live_for_staff, call_notify
from apps.common.errors import NotAllowed, NotFound, ValidationFailed
from apps.common.fsm import fsm_step
from apps.common.locking import lock_object
from apps.customers.integrations.core_banking import (
    CoreBankingError,
    CoreBankingRejected,
    get_core_banking,
)
from apps.gates.services import gates_require_passed
from apps.operations.handlers import HANDLERS, intent_answers_clean
from apps.operations.models import ConfirmBy, Operation, OperationState
from apps.operations.pins import pin_check
from apps.queueing.models import LIVE_ENTRY_STATES
from apps.visits.models import Visit, VisitOutcome
from apps.visits.services import visit_close, visit_lock

MAX_IDEMPOTENCY_KEY = 64


def _notify(operation: Operation, event: str) -> None:
    if operation.call is not None:
        call_notify(operation.call, "operation", operation=str(operation.public_id), state=event)


def _out_of_order(operation: Operation) -> NotAllowed:
    """The answer to an operation transition the state machine refuses."""
    return NotAllowed(
        _("This step is not available for this operation now."),
        code="operation_out_of_order",
        extra={"state": operation.state},
    )


def _operation_not_found() -> NotFound:
    return NotFound(_("This operation does not exist."), code="operation_not_found")


def _lock(public_id: Any, *, visit_id: int | None = None) -> Operation:
    """Lock the operation (of this visit, when given) for the rest of the transaction."""
    scope = Operation.objects.filter(visit_id=visit_id) if visit_id is not None else Operation.objects.all()
    return lock_object(
        scope,
        not_found=_operation_not_found,
        related=("visit__customer", "visit__account", "call"),
        public_id=public_id,
    )


def _audit(operation: Operation, action: AuditAction, actor: AnyActor, **data: Any) -> None:
    audit_record(
        actor=actor,
        action=action,
        target=operation.visit,
        data={"operation": str(operation.public_id), "business": operation.business_code, **data},
    )


# --- Start ------------------------------------------------------------------------------


def operation_start(*, actor: User, call_id: int, idempotency_key: str, data: dict[str, Any]) -> Operation:
    """The agent starts the service's business. A repeated key returns the same operation."""
    key = (idempotency_key or "").strip()
    if not 8 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ValidationFailed(
            _("Send an Idempotency-Key header of 8 to 64 characters with this request."), code="idempotency_key"
        )
    call = call_live_for_staff(actor=actor, call_id=call_id)
    visit = call.visit
    existing = Operation.objects.filter(visit=visit, idempotency_key=key).first()
    if existing is not None:
        return existing
    gates_require_passed(visit_id=visit.pk, actor=actor, operation=f"{visit.business_code}.start")
    business = business_get(visit.business_code)
    handler = HANDLERS[business.handler]
    looked_up = _look_up(handler, visit=visit, actor=actor)
    try:
        with transaction.atomic(durable=True):
            # The visit's row lock serialises starts of one service.
            visit = visit_lock(visit_id=visit.pk)
            if visit.outcome:
                raise NotAllowed(_("This service has already ended."), code="service_closed")
            assert visit.customer is not None and visit.account is not None
            prepared = handler.prepare(customer=visit.customer, account=visit.account, data=data, looked_up=looked_up)
            operation = Operation.objects.create(
                visit=visit,
                call=call,
                business_code=business.code,
                idempotency_key=key,
                requested_by=actor,
                confirm_by=prepared.confirm_by,
                before=prepared.before,
                after=prepared.after,
                details=prepared.details,
            )
            _audit(operation, AuditAction.OPERATION_STARTED, actor, confirm_by=prepared.confirm_by)
            _notify(operation, OperationState.AWAITING_CONFIRMATION)
            return operation
    except NotAllowed as refusal:
        if refusal.code in RECORDED_REFUSALS:
            _record_refusal(visit, actor, refusal)
        raise
    except IntegrityError as exc:
        # Another start won the race: the same key (a double submit) or a
        # different operation still open for this service.
        same = Operation.objects.filter(visit=visit, idempotency_key=key).first()
        if same is not None:
            return same
        raise NotAllowed(_("Another operation of this service is still open."), code="operation_already_open") from exc


def _look_up(handler: Any, *, visit: Visit, actor: User) -> Any:
    """What the handler must learn from core banking before the start: asked outside any lock."""
    if visit.account is None:
        return None
    try:
        return handler.look_up(core=get_core_banking(), account=visit.account)
    except CoreBankingError as exc:
        raise NotAllowed(
            _("Core banking did not answer. Please try again in a moment."), code="core_banking_unavailable"
        ) from exc


# Refusals of a start that matter for the record: the person in the call is
# not who the company's application names, or the application is wrong.
RECORDED_REFUSALS = frozenset({"legal_rep_mismatch", "company_record_invalid", "no_pending_application"})


def _record_refusal(visit: Visit, actor: User, refusal: NotAllowed) -> None:
    """Keep the refusal in the audit trail, in a transaction of its own (the start's was rolled back)."""
    with transaction.atomic(durable=True):
        audit_record(
            actor=actor,
            action=AuditAction.OPERATION_REFUSED,
            target=visit,
            data={"business": visit.business_code, "code": refusal.code, **(refusal.extra or {})},
        )


# --- Confirmation and core banking -----------------------------------------------------------


def _birth_date(operation: Operation) -> date | None:
    id_number = operation.visit.customer.id_number if operation.visit.customer else ""
    try:
        return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
    except (ValueError, IndexError):
        return None


def _confirm_and_process(
    *, public_id: Any, actor: AnyActor, confirm_by: ConfirmBy, visit_id: int | None = None, pin: str | None = None
) -> Operation:
    with transaction.atomic(durable=True):
        operation = _lock(public_id, visit_id=visit_id)
        if operation.state == OperationState.SUCCEEDED:
            return operation  # a double submit of a confirmation that already went through
        if operation.confirm_by != confirm_by:
            raise NotAllowed(_("This operation is confirmed by someone else."), code="wrong_confirmer")
        fsm_step(operation.confirm, now=timezone.now(), error=_out_of_order)
        operation.save()
        _audit(operation, AuditAction.OPERATION_CONFIRMED, actor, attempt=operation.core_attempts)
        _notify(operation, OperationState.PROCESSING)
    handler = HANDLERS[business_get(operation.business_code).handler]
    failure: CoreBankingError | None = None
    result = ""
    try:
        result = handler.perform(core=get_core_banking(), operation=operation, pin=pin)
    except CoreBankingError as error:
        failure = error
    return _apply_result(operation.pk, actor=actor, result=result, failure=failure)


def _apply_result(operation_id: int, *, actor: AnyActor, result: str, failure: CoreBankingError | None) -> Operation:
    with transaction.atomic(durable=True):
        operation = lock_object(
            Operation.objects, not_found=_operation_not_found, related=("visit", "call"), pk=operation_id
        )
        if operation.state != OperationState.PROCESSING:
            return operation
        now = timezone.now()
        if failure is None:
            fsm_step(operation.succeed, now=now, code=result, error=_out_of_order)
            if operation.business_code == "corporate_intent":
                _attach_certificate(operation)
            operation.save()
            _audit(operation, AuditAction.OPERATION_SUCCEEDED, actor, result=result)
            # A legal representative who does not confirm is an outcome of its own, not a completed service.
            outcome = VisitOutcome.INTENT_REFUSED if result == "intent_refused" else VisitOutcome.COMPLETED
            visit_close(visit_id=operation.visit_id, actor=actor, outcome=outcome, reason=result)
        elif (
            isinstance(failure, CoreBankingRejected) or operation.core_attempts >= settings.OPERATION_MAX_CORE_ATTEMPTS
        ):
            fsm_step(operation.fail, now=now, code=failure.code, error=_out_of_order)
            operation.save()
            _audit(operation, AuditAction.OPERATION_FAILED, actor, result=failure.code, detail=str(failure))
        else:
            # Unknown outcome or refused before doing anything: confirm again,
            # same reference; core banking will not apply it twice.
            fsm_step(operation.core_unanswered, code=failure.code, error=_out_of_order)
            operation.save()
            _audit(operation, AuditAction.OPERATION_CORE_UNANSWERED, actor, result=failure.code)
        _notify(operation, operation.state)
        return operation


def _customer_actor(visit_id: int) -> Actor:
    """The customer once identified; before that (a request far out of order), the anonymous visit."""
    visit = Visit.objects.select_related("customer").get(pk=visit_id)
    if visit.customer is not None:
        return visit.customer.as_audit_actor()
    return Actor(ActorKind.CUSTOMER, "", f"visit {visit.public_id}")


def operation_customer_pin(*, visit_id: int, public_id: Any, pin: str, repeat: str) -> Operation:
    """The customer's new PIN, typed twice on their own page (R7.1, R7.2)."""
    actor = _customer_actor(visit_id)
    gates_require_passed(visit_id=visit_id, actor=actor, operation="pin")
    operation = (
        Operation.objects.select_related("visit__customer").filter(public_id=public_id, visit_id=visit_id).first()
    )
    if operation is None:
        raise _operation_not_found()
    if operation.state == OperationState.SUCCEEDED:
        return operation
    if operation.confirm_by != ConfirmBy.CUSTOMER_PIN:
        raise NotAllowed(_("This operation does not ask for a PIN."), code="wrong_confirmer")
    pin_check(pin=pin, repeat=repeat, birth_date=_birth_date(operation))
    return _confirm_and_process(
        public_id=public_id, actor=actor, confirm_by=ConfirmBy.CUSTOMER_PIN, visit_id=visit_id, pin=pin
    )


def operation_customer_confirm(*, visit_id: int, public_id: Any, accept: bool) -> Operation:
    """The customer confirms (or declines) the before/after shown on their phone (R7.4)."""
    actor = _customer_actor(visit_id)
    gates_require_passed(visit_id=visit_id, actor=actor, operation="confirm")
    if accept:
        return _confirm_and_process(public_id=public_id, actor=actor, confirm_by=ConfirmBy.CUSTOMER, visit_id=visit_id)
    with transaction.atomic(durable=True):
        operation = _lock(public_id, visit_id=visit_id)
        if operation.confirm_by != ConfirmBy.CUSTOMER:
            raise NotAllowed(_("This operation is confirmed by someone else."), code="wrong_confirmer")
        fsm_step(operation.cancel, now=timezone.now(), code="customer_declined", error=_out_of_order)
        operation.save()
        _audit(operation, AuditAction.OPERATION_CANCELLED, actor, result="customer_declined")
        _notify(operation, OperationState.CANCELLED)
        return operation


def _staff_operation(actor: User, public_id: Any) -> Operation:
    operation = Operation.objects.select_related("call", "visit").filter(public_id=public_id).first()
    if operation is None or operation.call is None:
        raise _operation_not_found()
    call_live_for_staff(actor=actor, call_id=operation.call.pk)
    gates_require_passed(visit_id=operation.visit_id, actor=actor, operation=f"{operation.business_code}.agent")
    return operation


def operation_agent_confirm(*, actor: User, public_id: Any, data: dict[str, Any]) -> Operation:
    """The agent confirms: the lost-report release after seeing the report's date."""
    _staff_operation(actor, public_id)
    return _confirm_and_process(public_id=public_id, actor=actor, confirm_by=ConfirmBy.AGENT)


def operation_customer_intent(*, visit_id: int, public_id: Any, data: dict[str, Any]) -> Operation:
    """The legal representative's answers to the intent script, given on their own phone (R7.5)."""
    actor = _customer_actor(visit_id)
    gates_require_passed(visit_id=visit_id, actor=actor, operation="intent")
    answers = intent_answers_clean(data)
    with transaction.atomic(durable=True):
        operation = _lock(public_id, visit_id=visit_id)
        if operation.state == OperationState.SUCCEEDED:
            return operation  # a double submit of answers that already went through
        if operation.confirm_by != ConfirmBy.CUSTOMER_INTENT:
            raise NotAllowed(_("This operation is confirmed by someone else."), code="wrong_confirmer")
        if operation.state == OperationState.AWAITING_CONFIRMATION:
            # Kept once: a retry after core banking did not answer re-sends the same answers.
            operation.details = {**operation.details, "answers": operation.details.get("answers") or answers}
            operation.save(update_fields=["details"])
    return _confirm_and_process(
        public_id=public_id, actor=actor, confirm_by=ConfirmBy.CUSTOMER_INTENT, visit_id=visit_id
    )


def operation_cancel(*, actor: User, public_id: Any) -> Operation:
    """The agent withdraws an operation still waiting for confirmation."""
    operation = _staff_operation(actor, public_id)
    with transaction.atomic(durable=True):
        operation = _lock(public_id)
        fsm_step(operation.cancel, now=timezone.now(), code="agent_cancelled", error=_out_of_order)
        operation.save()
        _audit(operation, AuditAction.OPERATION_CANCELLED, actor, result="agent_cancelled")
        _notify(operation, OperationState.CANCELLED)
        return operation


# --- The intent verification certificate (R7.5) ------------------------------------------------


def operation_certificate_download(*, actor: User, operation: Operation) -> Operation:
    """A staff participant opens the intent verification certificate: only after every gate passed, and audited."""
    gates_require_passed(visit_id=operation.visit_id, actor=actor, operation="certificate")
    if not operation.certificate:
        raise NotFound(_("This operation has no certificate."), code="no_certificate")
    with transaction.atomic(durable=True):
        audit_record(
            actor=actor,
            action=AuditAction.OPERATION_CERTIFICATE_DOWNLOADED,
            target=operation.visit,
            data={"operation": str(operation.public_id), "sha256": operation.certificate_sha256},
        )
    return operation


def _attach_certificate(operation: Operation) -> None:
    """Draw the certificate PDF, store it with its hash (called under the operation's lock)."""
    from apps.operations.certificate import intent_certificate_pdf
    from apps.operations.selectors import intent_evidence

    pdf = intent_certificate_pdf(operation=operation, evidence=intent_evidence(operation=operation))
    operation.certificate_sha256 = hashlib.sha256(pdf).hexdigest()
    operation.certificate.save(f"intent-{operation.public_id}.pdf", ContentFile(pdf), save=False)
    operation.details = {**operation.details, "certificate_sha256": operation.certificate_sha256}


# --- The service's end (R4) ----------------------------------------------------------------------

# A hang-up is deliberate: the service is over. A transfer continues it in
# another queue; a dropped connection, an expired rejoin grace or a failed
# video server interrupt it, and it may resume (R4.2) — left open.
_CLOSED_BY_HANG_UP = {
    "customer_hung_up": VisitOutcome.ABANDONED,
    "agent_hung_up": VisitOutcome.CANCELLED,
}


def service_close_after_call(*, call: Any) -> None:
    """Called when a call ends (inside its transaction): close a service the hang-up ended.

    A service whose business was done is already closed as completed; one
    that failed a gate, as gate_failed. An operation still waiting for
    confirmation is cancelled with the call.
    """
    outcome = _CLOSED_BY_HANG_UP.get(call.end_reason)
    for operation in Operation.objects.select_for_update(of=("self",)).filter(
        visit_id=call.visit_id, state=OperationState.AWAITING_CONFIRMATION
    ):
        fsm_step(operation.cancel, now=timezone.now(), code="call_ended", error=_out_of_order)
        operation.save()
        _audit(operation, AuditAction.OPERATION_CANCELLED, MEDIA, result="call_ended")
    if outcome is not None:
        visit_close(visit_id=call.visit_id, actor=MEDIA, outcome=outcome, reason=call.end_reason)


# --- Visits nobody moves on any more ----------------------------------------------------------------

IDLE_CLOSE_BATCH = 200


def visits_idle_close(*, now: Any = None) -> int:
    """Close as abandoned (``idle_timeout``) every open visit left with nothing to move it on.

    Open, no live queue entry or call, none ended, and neither the visit nor
    its Gate 1 row written for ``VISIT_IDLE_CLOSE_SECONDS``: the customer left
    during Gate 1, or never rejoined after an interrupted call. Called on
    every dispatcher round (``common.signals.housekeeping_due``). Each visit
    is its own transaction; ``SKIP LOCKED`` lets several dispatchers run, and
    the conditions are read again under the lock.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.VISIT_IDLE_CLOSE_SECONDS)
    idle = (
        Visit.objects.filter(outcome="", updated_at__lt=cutoff)
        .exclude(verification__updated_at__gte=cutoff)
        .exclude(queue_entries__state__in=LIVE_ENTRY_STATES)
        .exclude(calls__state__in=LIVE_CALL_STATES)
        # A call that broke down lately: its customer may still rejoin (R4.2).
        .exclude(queue_entries__ended_at__gte=cutoff)
        .exclude(calls__ended_at__gte=cutoff)
    )
    closed = 0
    for visit_id in list(idle.values_list("pk", flat=True)[:IDLE_CLOSE_BATCH]):
        with transaction.atomic():
            visit = Visit.objects.select_for_update(skip_locked=True, of=("self",)).filter(pk=visit_id).first()
            if visit is None or visit.outcome or not idle.filter(pk=visit_id).exists():
                continue
            visit_close(
                visit_id=visit.pk,
                actor=Actor.system("housekeeping"),
                outcome=VisitOutcome.ABANDONED,
                reason="idle_timeout",
            )
            closed += 1
    return closed


# --- Operations left processing by a request that died ---------------------------------------------

# Longer than any core-banking call may take (its timeout) with room to spare.
STUCK_AFTER_SECONDS = 120


def operations_stuck_release(*, now: Any = None) -> int:
    """Put back to confirmation any operation left processing by a process that died mid-request.

    Its core-banking request may or may not have been applied; confirming
    again sends the same reference, which core banking applies at most once.
    Called on every dispatcher tick (``common.signals.housekeeping_due``).
    """
    now = now or timezone.now()
    released = 0
    stale = Operation.objects.filter(
        state=OperationState.PROCESSING, confirmed_at__lt=now - timedelta(seconds=STUCK_AFTER_SECONDS)
    ).values_list("pk", flat=True)
    for operation_id in list(stale):
        with transaction.atomic():
            operation = (
                Operation.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("visit", "call")
                .filter(pk=operation_id, state=OperationState.PROCESSING)
                .first()
            )
            if operation is None:
                continue
            if operation.core_attempts >= settings.OPERATION_MAX_CORE_ATTEMPTS:
                fsm_step(operation.fail, now=now, code="interrupted", error=_out_of_order)
                operation.save()
                _audit(operation, AuditAction.OPERATION_FAILED, MEDIA, result="interrupted")
            else:
                fsm_step(operation.core_unanswered, code="interrupted", error=_out_of_order)
                operation.save()
                _audit(operation, AuditAction.OPERATION_CORE_UNANSWERED, MEDIA, result="interrupted")
            _notify(operation, operation.state)
            released += 1
    return released
