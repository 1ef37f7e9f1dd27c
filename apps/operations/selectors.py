"""Reads of operations: the agent's view, the customer's view, the evidence of an intent verification."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from apps.calls.models import Call
from apps.operations.handlers import INTENT_SCRIPT, masked_for_agent
from apps.operations.models import OPEN_STATES, ConfirmBy, Operation
from apps.recordings.models import Snapshot
from apps.visits.models import Visit


def operations_for_visit(*, visit: Visit) -> QuerySet[Operation]:
    return Operation.objects.filter(visit=visit).select_related("call").order_by("created_at", "pk")


def operation_for_agent(operation: Operation) -> dict[str, Any]:
    """What the agent's console shows: states, before/after (mobile masked), the loss date; never a PIN."""
    data: dict[str, Any] = {
        "id": str(operation.public_id),
        "business": operation.business_code,
        "state": operation.state,
        "confirm_by": operation.confirm_by,
        "result": operation.result_code,
        "before": {name: masked_for_agent(name, str(value)) for name, value in operation.before.items()},
        "after": {name: masked_for_agent(name, str(value)) for name, value in operation.after.items()},
        "details": {key: value for key, value in operation.details.items() if key != "certificate_sha256"},
        "certificate_sha256": operation.certificate_sha256,
        "has_certificate": bool(operation.certificate),
        "created_at": operation.created_at,
        "finished_at": operation.finished_at,
    }
    if operation.business_code == "corporate_intent":
        company = operation.details.get("company", "")
        data["script"] = [{"key": key, "text": str(text) % {"company": company}} for key, text in INTENT_SCRIPT]
    return data


def operation_for_customer(*, visit: Visit) -> dict[str, Any] | None:
    """The open operation that waits for the customer's PIN or confirmation, if any."""
    operation = (
        Operation.objects.filter(visit=visit, state__in=OPEN_STATES)
        .exclude(confirm_by=ConfirmBy.AGENT)
        .order_by("-created_at")
        .first()
    )
    if operation is None:
        return None
    return {
        "id": str(operation.public_id),
        "business": operation.business_code,
        "state": operation.state,
        "confirm_by": operation.confirm_by,
        "result": operation.result_code,
        # The customer's own values, in full: they are confirming them.
        "before": operation.before,
        "after": operation.after,
    }


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
