"""Reads of operations: the agent's list, the one waiting for the customer, the evidence of an intent verification."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from apps.calls.models import Call
from apps.calls.selectors import call_for_staff_participant
from apps.common.errors import NotFound
from apps.operations.models import OPEN_STATES, ConfirmBy, Operation
from apps.recordings.models import Snapshot
from apps.visits.models import Visit

# What each result code means to a person (the agent's panel, the customer's
# page, compliance reports): a raw code never reaches a screen.
RESULT_LABELS: dict[str, Promise] = {
    "activated": _("Card activated"),
    "pin_reset": _("PIN reset"),
    "released": _("Loss report released"),
    "updated": _("Information updated"),
    "intent_confirmed": _("Intent confirmed"),
    "intent_refused": _("Intent refused"),
    "customer_declined": _("Declined by the customer"),
    "agent_cancelled": _("Cancelled by the agent"),
    "call_ended": _("The call ended first"),
    "interrupted": _("Interrupted"),
    "core_banking_error": _("Core banking error"),
    "core_banking_unavailable": _("Core banking unavailable"),
    "core_banking_timeout": _("Core banking did not answer in time"),
    "core_banking_rejected": _("Rejected by core banking"),
}


def operation_result_label(code: str) -> str:
    """The result in words; an unknown code says "other result" rather than itself."""
    if not code:
        return ""
    label = RESULT_LABELS.get(code)
    return str(label) if label is not None else str(_("Other result"))


def operations_for_visit(*, visit: Visit) -> QuerySet[Operation]:
    return Operation.objects.filter(visit=visit).select_related("call").order_by("created_at", "pk")


def operation_waiting_for_customer(*, visit: Visit) -> Operation | None:
    """The open operation that waits for the customer's PIN or confirmation, if any."""
    return (
        Operation.objects.filter(visit=visit, state__in=OPEN_STATES)
        .exclude(confirm_by=ConfirmBy.AGENT)
        .order_by("-created_at")
        .first()
    )


def operation_for_staff_participant(*, public_id: Any, user: User, denied: str | Promise) -> Operation:
    """The operation with this public id, if ``user`` took part as staff in its call; else NotFound / PermissionDenied."""
    operation = Operation.objects.select_related("call", "visit").filter(public_id=public_id).first()
    if operation is None or operation.call is None:
        raise NotFound(_("This operation does not exist."), code="operation_not_found")
    call_for_staff_participant(public_id=operation.call.public_id, user=user, denied=denied)
    return operation


def _seconds_into_call(call: Call | None, moment: Any) -> float | None:
    if call is None or call.connected_at is None or moment is None:
        return None
    return round((moment - call.connected_at).total_seconds(), 1)


def intent_evidence(*, operation: Operation) -> dict[str, Any]:
    """The evidence listed on the intent-verification certificate (R7.5)."""
    call = operation.call
    snapshots = Snapshot.objects.filter(call__visit_id=operation.visit_id).order_by("taken_at", "pk")
    return {
        "call": str(call.public_id) if call else "",
        "call_connected_at": call.connected_at if call else None,
        # Where in the call's recording the verification happened.
        "segment_start_seconds": _seconds_into_call(call, operation.created_at),
        "segment_end_seconds": _seconds_into_call(call, operation.confirmed_at),
        "snapshots": [
            {"id": str(snapshot.public_id), "sha256": snapshot.sha256, "taken_at": snapshot.taken_at}
            for snapshot in snapshots
        ],
    }
