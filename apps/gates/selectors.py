"""Reads of the gates: what the agent's console and the customer's page show, and the service record's part."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.customers.selectors import customer_get_by_id_number
from apps.gates.integrations.identity_registry import Citizen
from apps.gates.models import AttemptStatus, Gate, GateAttempt, GateProgress, GateState
from apps.gates.questions import question_render
from apps.visits.models import Visit

GATE_ORDER = (Gate.IDENTITY, Gate.FACE, Gate.QUESTIONS)
_PASSED_AT = {Gate.IDENTITY: "identity_passed_at", Gate.FACE: "face_passed_at", Gate.QUESTIONS: "questions_passed_at"}


def gate_progress_for_visit(*, visit: Visit) -> GateProgress | None:
    return GateProgress.objects.filter(visit=visit).first()


# Errors of the platform itself, not of the check (apps.gates.tasks, gate_attempts_expire).
_CHECK_ERRORS = {
    "check_timed_out": gettext_lazy("The check did not finish in time. Please try again."),
    "internal_error": gettext_lazy("The check could not be completed because of an internal error. Please try again."),
}


def _result_message(attempt: GateAttempt) -> str:  # noqa: PLR0911 - one line per result
    """The line shown for a finished attempt (staff side), in the active language."""
    if attempt.status == AttemptStatus.RUNNING:
        return _("Checking…")
    if attempt.gate == Gate.IDENTITY:
        return str(
            {
                "match": _("Identity confirmed by the registry."),
                "mismatch": _("The name does not match the registry."),
                "not_found": _("The ID number is not in the registry."),
                "registry_timeout": _("The registry did not answer in time."),
                "registry_unavailable": _("The registry is unavailable."),
                **_CHECK_ERRORS,
            }.get(attempt.result_code, attempt.result_code)
        )
    if attempt.gate == Gate.FACE:
        if attempt.result_code in _CHECK_ERRORS:
            return str(_CHECK_ERRORS[attempt.result_code])
        if attempt.status == AttemptStatus.PASSED:
            return _("Face verification passed.")
        if attempt.status == AttemptStatus.FAILED:
            # The exact wording the bank's process requires (R6.3).
            return "人脸识别不通过 (face verification failed)"
        if attempt.result_code.startswith("live:"):
            return _("No single face was found in the snapshot. Please capture the customer again.")
        return _("The face check could not be completed (%(code)s).") % {"code": attempt.result_code}
    if attempt.status == AttemptStatus.PASSED:
        return _("The customer answered correctly.")
    if attempt.status == AttemptStatus.FAILED:
        return _("The customer's answers were wrong.")
    return attempt.result_code


def _attempt_for_staff(attempt: GateAttempt) -> dict[str, Any]:
    data: dict[str, Any] = {
        "number": attempt.number,
        "status": attempt.status,
        "result": attempt.result_code,
        "message": _result_message(attempt),
        "started_at": attempt.started_at,
        "finished_at": attempt.finished_at,
        "reference": attempt.reference,
    }
    if attempt.gate == Gate.FACE:
        data["scores"] = attempt.scores
        data["snapshot"] = str(attempt.snapshot.public_id) if attempt.snapshot else None
    elif attempt.gate == Gate.QUESTIONS:
        # Pass or fail only: never which answer was right, nor the customer's answers.
        data["asked"] = attempt.scores.get("asked")
    return data


def gates_status_for_staff(*, visit: Visit) -> dict[str, Any]:
    progress = gate_progress_for_visit(visit=visit)
    attempts: dict[str, list[GateAttempt]] = {gate.value: [] for gate in GATE_ORDER}
    if progress is not None:
        for attempt in progress.attempts.select_related("snapshot").order_by("started_at", "pk"):
            attempts[attempt.gate].append(attempt)
    state = progress.state if progress else GateState.IDENTITY
    gates = []
    for gate in GATE_ORDER:
        passed_at = getattr(progress, _PASSED_AT[gate]) if progress else None
        if passed_at is not None:
            status = "passed"
        elif progress is not None and progress.failed_gate == gate:
            status = "failed"
        elif state == gate:
            status = "current"
        else:
            status = "waiting"
        gates.append(
            {
                "gate": gate.value,
                "label": str(gate.label),
                "status": status,
                "passed_at": passed_at,
                "attempts": [_attempt_for_staff(attempt) for attempt in attempts[gate.value]],
            }
        )
    return {
        "state": state,
        "all_passed": state == GateState.PASSED,
        "failed_gate": progress.failed_gate if progress else "",
        "failure_reason": progress.failure_reason if progress else "",
        "has_registry_photo": bool(progress and progress.registry_photo),
        "gates": gates,
    }


def gates_status_for_customer(*, visit: Visit) -> dict[str, Any]:
    """The customer's page: which checks passed, and the questions to answer, if any (never the answers)."""
    progress = gate_progress_for_visit(visit=visit)
    questions: list[dict[str, Any]] = []
    if progress is not None and progress.state == GateState.QUESTIONS:
        attempt = (
            progress.attempts.filter(gate=Gate.QUESTIONS, status=AttemptStatus.RUNNING)
            .select_related("question_draw")
            .first()
        )
        if attempt is not None:
            questions = [question_render(**question) for question in attempt.question_draw.questions]
    return {
        "state": progress.state if progress else GateState.IDENTITY,
        "failed_gate": progress.failed_gate if progress else "",
        "questions": questions,
    }


def citizen_on_file(id_number: str) -> Citizen | None:
    """The identity registry sandbox's port onto its citizens: the bank's customer of that ID number."""
    customer = customer_get_by_id_number(id_number=id_number)
    if customer is None:
        return None
    return Citizen(name=str(customer.name), customer_number=str(customer.customer_number))
