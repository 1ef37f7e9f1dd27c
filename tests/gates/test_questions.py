"""Gate 4 in a real call: the customer answers private questions on their page (R6.4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse

from apps.audit.models import AuditRecord
from apps.audit.selectors import audit_chain_verify
from apps.gates.models import GateAttempt, GateProgress, GateState
from tests.gates.conftest import KIT, InCall, _answer, _assert_service_ended, _gates, _pass_face, _pass_identity, _post

pytestmark = pytest.mark.django_db


def _right_answers(in_call: InCall) -> list[int]:
    attempt = GateAttempt.objects.get(progress__visit=in_call.visit, gate="questions", status="running")
    return list(attempt.question_draw.correct)


def test_questions_appear_on_the_customers_page_and_right_answers_pass_every_gate(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], settings: Any
) -> None:
    in_call = make_in_call(person=KIT)
    _pass_identity(in_call, on_commit)
    _pass_face(in_call, on_commit)
    assert _post(in_call, "questions", on_commit).status_code == 201
    shown = in_call.customer_client.get(reverse("gates:visit-gates")).json()
    assert len(shown["questions"]) == settings.GATE_QUESTIONS_COUNT
    for question in shown["questions"]:
        assert question["text"] and len(question["options"]) == 4
    # The answers never leave the server: not to the customer, not to the agent.
    staff_view = _gates(in_call)
    assert "correct" not in str(shown) and "correct" not in str(staff_view)
    response = _answer(in_call, _right_answers(in_call))
    assert response.status_code == 200 and response.json()["passed"] is True
    progress = GateProgress.objects.get(visit=in_call.visit)
    assert progress.state == GateState.PASSED
    assert _gates(in_call)["all_passed"] is True
    assert AuditRecord.objects.filter(action="gates.progress.all_passed", target_id=str(in_call.visit.pk)).exists()
    assert audit_chain_verify().intact


def test_a_wrong_answer_ends_the_service_and_the_agent_sees_only_fail(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any]
) -> None:
    in_call = make_in_call(person=KIT)
    _pass_identity(in_call, on_commit)
    _pass_face(in_call, on_commit)
    _post(in_call, "questions", on_commit)
    answers = _right_answers(in_call)
    answers[0] = (answers[0] + 1) % 4
    with on_commit():
        response = _answer(in_call, answers)
    assert response.status_code == 200 and response.json()["passed"] is False
    questions = _gates(in_call)["gates"][2]
    assert questions["status"] == "failed"
    assert set(questions["attempts"][0]) == {
        "number", "status", "result", "message", "started_at", "finished_at", "reference", "asked",
    }  # fmt: skip
    _assert_service_ended(in_call, "questions", "wrong_answers")


def test_malformed_answers_are_refused_and_nothing_changes(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any]
) -> None:
    in_call = make_in_call(person=KIT)
    _pass_identity(in_call, on_commit)
    _pass_face(in_call, on_commit)
    _post(in_call, "questions", on_commit)
    for answers in ([0], [0, 1, 2, 3], [9, 9, 9], ["a", 0, 0]):
        response = _answer(in_call, answers)  # type: ignore[arg-type]
        assert response.status_code == 400 and response.json()["message"]
    assert GateProgress.objects.get(visit=in_call.visit).state == GateState.QUESTIONS
