"""Reads of the gates: what the agent's console and the customer's page show, and the service record's part."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.customers.models import AccountKind
from apps.customers.selectors import customer_get_by_id_number
from apps.gates.integrations.identity_registry import Citizen
from apps.gates.models import (
    AttemptStatus,
    Gate,
    GateAttempt,
    GateProgress,
    GateState,
    QuestionPolicy,
    QuestionTemplate,
)
from apps.gates.questions import TemplateRow, question_render
from apps.verification.selectors import verification_for_visit
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


def gate_attempt_result_message(attempt: GateAttempt) -> str:  # noqa: PLR0911 - one line per result
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
            # The exact wording the bank's process requires (R6.3), in the reader's language.
            return _("Face verification failed.")
        if attempt.result_code.startswith("live:"):
            return _("No single face was found in the snapshot. Please capture the customer again.")
        return _("The face check could not be completed (%(code)s).") % {"code": attempt.result_code}
    if attempt.status == AttemptStatus.PASSED:
        return _("The customer answered correctly.")
    if attempt.status == AttemptStatus.FAILED:
        return _("The customer's answers were wrong.")
    return attempt.result_code


@dataclass(frozen=True)
class GateStatus:
    """One gate as the agent's console shows it: passed, failed, current or waiting, with every attempt."""

    gate: Gate
    status: str
    passed_at: datetime | None
    attempts: list[GateAttempt]


@dataclass(frozen=True)
class GatesStatus:
    """Gates 2–4 of a visit; ``progress`` is None until the first check starts."""

    progress: GateProgress | None
    state: str
    gates: list[GateStatus]

    @property
    def all_passed(self) -> bool:
        return self.state == GateState.PASSED

    @property
    def failed_gate(self) -> str:
        return self.progress.failed_gate if self.progress else ""

    @property
    def failure_reason(self) -> str:
        return self.progress.failure_reason if self.progress else ""

    @property
    def has_registry_photo(self) -> bool:
        return bool(self.progress and self.progress.registry_photo)


def gates_status_for_staff(*, visit: Visit) -> GatesStatus:
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
        gates.append(GateStatus(gate=gate, status=status, passed_at=passed_at, attempts=attempts[gate.value]))
    return GatesStatus(progress=progress, state=state, gates=gates)


@dataclass(frozen=True)
class CustomerGatesStatus:
    """The customer's page: which checks passed, and the questions to answer, if any (never the answers)."""

    state: str
    failed_gate: str
    questions: list[dict[str, object]]


def gates_status_for_customer(*, visit: Visit) -> CustomerGatesStatus:
    progress = gate_progress_for_visit(visit=visit)
    questions: list[dict[str, object]] = []
    if progress is not None and progress.state == GateState.QUESTIONS:
        attempt = (
            progress.attempts.filter(gate=Gate.QUESTIONS, status=AttemptStatus.RUNNING)
            .select_related("question_draw")
            .first()
        )
        if attempt is not None:
            questions = [question_render(**_stored_question(question)) for question in attempt.question_draw.questions]
    return CustomerGatesStatus(
        state=progress.state if progress else GateState.IDENTITY,
        failed_gate=progress.failed_gate if progress else "",
        questions=questions,
    )


# Draws made before the bank maintained its own questions stored only the kind.
_LEGACY_TEXTS = {
    "opening_branch": (
        "这个账户是在哪个网点开立的？",
        "At which branch was this account opened?",
        "account.opening_branch",
    ),
    "home_branch": ("您在本行的归属网点是哪个？", "Which is your home branch at our bank?", "customer.home_branch"),
    "home_city": (
        "您在本行登记的城市是哪里？",
        "In which city are you registered with our bank?",
        "customer.home_city",
    ),
    "opening_year": ("这个账户是哪一年开立的？", "In which year was this account opened?", "account.opening_year"),
    "account_kind": ("这个账户是什么类型？", "What kind of account is this?", ""),
}


def _stored_question(question: dict[str, Any]) -> dict[str, Any]:
    if "code" in question:
        return {key: question[key] for key in ("code", "text", "text_en", "source", "options")}
    kind = str(question.get("kind", ""))
    text, text_en, source = _LEGACY_TEXTS.get(kind, (kind, kind, ""))
    options = [str(option) for option in question.get("options", [])]
    if kind == "account_kind":
        labels = dict(AccountKind.choices)
        options = [str(labels.get(option, option)) for option in options]
    return {"code": kind, "text": text, "text_en": text_en, "source": source, "options": options}


def question_templates_active() -> list[TemplateRow]:
    """The bank's active Gate 4 questions, as the draw needs them."""
    return [
        TemplateRow(code=t.code, text=t.text, text_en=t.text_en, answer_source=t.answer_source, weight=t.weight)
        for t in QuestionTemplate.objects.filter(active=True).order_by("code")
    ]


def question_policy_for(*, business_code: str) -> tuple[int, int]:
    """(questions asked, wrong answers allowed) for a business: its own policy, else the settings' default."""
    policy = QuestionPolicy.objects.filter(business_code=business_code).first()
    if policy is not None:
        return policy.count, policy.max_wrong
    return int(settings.GATE_QUESTIONS_COUNT), int(settings.GATE_QUESTIONS_MAX_WRONG)


def visible_to_customer(*, visit: Visit) -> tuple[str, ...]:
    """What the customer has in front of them: their card as read at Gate 1 and the account number."""
    texts: list[str] = []
    verification = verification_for_visit(visit=visit)
    if verification is not None:
        texts += [verification.read_name or "", verification.read_address or "", verification.read_ethnicity or ""]
    if visit.account is not None:
        texts.append(visit.account.number)
    return tuple(text for text in texts if text)


def citizen_on_file(id_number: str) -> Citizen | None:
    """The identity registry sandbox's port onto its citizens: the bank's customer of that ID number."""
    customer = customer_get_by_id_number(id_number=id_number)
    if customer is None:
        return None
    return Citizen(name=str(customer.name), customer_number=str(customer.customer_number))
