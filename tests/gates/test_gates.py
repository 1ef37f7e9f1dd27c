"""Gates 2–4 in a real call: the registry sandbox, the real face model, the customer's answers (R6.2–R6.5)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse

from apps.audit.models import AuditRecord
from apps.audit.selectors import audit_chain_verify
from apps.calls.models import CallEndReason, CallState
from apps.gates.models import AttemptStatus, FinishedAttemptIsImmutable, GateAttempt, GateProgress, GateState
from apps.recordings.models import Snapshot
from apps.visits.models import VisitOutcome
from tests.gates.conftest import InCall, capture, person_photos

pytestmark = pytest.mark.django_db

KIT = 2  # the face set's third person, in name order: three photos, all well within the threshold
OBAMA = 4


def _gates(in_call: InCall) -> dict[str, Any]:
    response = in_call.staff_client.get(reverse("gates:call-gates", args=[in_call.call.public_id]))
    assert response.status_code == 200, response.content
    return response.json()


def _post(in_call: InCall, name: str, on_commit: Callable[..., Any], **body: Any) -> Any:
    with on_commit():
        return in_call.staff_client.post(
            reverse(f"gates:call-gate-{name}", args=[in_call.call.public_id]), body, content_type="application/json"
        )


def _pass_identity(in_call: InCall, on_commit: Callable[..., Any]) -> None:
    assert _post(in_call, "identity", on_commit).status_code == 202
    assert GateProgress.objects.get(visit=in_call.visit).state == GateState.FACE


def _pass_face(in_call: InCall, on_commit: Callable[..., Any]) -> None:
    snapshot = capture(in_call, person_photos(KIT)[2])
    assert _post(in_call, "face", on_commit, snapshot=str(snapshot.public_id)).status_code == 202
    assert GateProgress.objects.get(visit=in_call.visit).state == GateState.QUESTIONS


def _answer(in_call: InCall, answers: list[int]) -> Any:
    return in_call.customer_client.post(
        reverse("gates:visit-gate-answers"), {"answers": answers}, content_type="application/json"
    )


def _assert_service_ended(in_call: InCall, gate: str, reason: str) -> None:
    in_call.refresh()
    progress = GateProgress.objects.get(visit=in_call.visit)
    assert progress.state == GateState.FAILED
    assert (progress.failed_gate, progress.failure_reason) == (gate, reason)
    assert in_call.visit.outcome == VisitOutcome.GATE_FAILED
    assert in_call.visit.outcome_reason == f"{gate}:{reason}"
    assert in_call.call.state == CallState.ENDED and in_call.call.end_reason == CallEndReason.GATE_FAILED
    assert AuditRecord.objects.filter(action="gates.gate.failed", target_id=str(in_call.visit.pk)).count() == 1


# --- Gate 2 ------------------------------------------------------------------------------


def test_registry_match_passes_gate_two_and_keeps_the_photo_on_file(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any]
) -> None:
    in_call = make_in_call(person=KIT)
    _pass_identity(in_call, on_commit)
    status = _gates(in_call)
    identity = status["gates"][0]
    assert identity["status"] == "passed"
    assert identity["attempts"][0]["result"] == "match"
    assert identity["attempts"][0]["reference"].startswith("PBOC-SBX-")
    photo = in_call.staff_client.get(reverse("gates:call-registry-photo", args=[in_call.call.public_id]))
    assert photo.status_code == 200
    assert b"".join(photo.streaming_content) == person_photos(KIT)[0].read_bytes()
    assert status["state"] == "face"


def test_a_name_the_registry_does_not_match_ends_the_service(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from apps.gates.integrations import identity_registry

    in_call = make_in_call(person=KIT)
    # The citizen register knows this ID number under another name than the bank's.
    other = identity_registry.Citizen(name="李四", customer_number=in_call.customer.customer_number)
    monkeypatch.setattr(identity_registry._registry_singleton, "_lookup", lambda id_number: other)
    _post(in_call, "identity", on_commit)
    attempt = GateAttempt.objects.get(progress__visit=in_call.visit)
    assert (attempt.status, attempt.result_code) == (AttemptStatus.FAILED, "mismatch")
    _assert_service_ended(in_call, "identity", "mismatch")


def test_a_number_unknown_to_the_registry_ends_the_service(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    in_call = make_in_call(person=KIT)
    from apps.gates.integrations import identity_registry

    # The register of citizens has no entry for this number.
    monkeypatch.setattr(identity_registry._registry_singleton, "_lookup", lambda id_number: None)
    _post(in_call, "identity", on_commit)
    _assert_service_ended(in_call, "identity", "not_found")


def test_timeouts_use_up_the_three_attempts_then_end_the_service(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], registry: Callable[..., Any]
) -> None:
    in_call = make_in_call(person=KIT)
    registry(timeout_rate=1.0, timeout_seconds=0.05)
    for number in (1, 2):
        assert _post(in_call, "identity", on_commit).status_code == 202
        attempt = GateAttempt.objects.get(progress__visit=in_call.visit, number=number)
        assert (attempt.status, attempt.result_code) == (AttemptStatus.ERROR, "registry_timeout")
        assert GateProgress.objects.get(visit=in_call.visit).state == GateState.IDENTITY
    _post(in_call, "identity", on_commit)
    _assert_service_ended(in_call, "identity", "attempts_exhausted")
    # A fourth try is refused: the service is over.
    fourth = _post(in_call, "identity", on_commit)
    assert fourth.status_code in (403, 409) and fourth.json()["code"] in ("not_in_call", "call_not_connected")
    assert GateAttempt.objects.filter(progress__visit=in_call.visit).count() == 3


def test_an_error_then_a_match_passes_on_the_second_attempt(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], registry: Callable[..., Any]
) -> None:
    in_call = make_in_call(person=KIT)
    registry(error_rate=1.0)
    _post(in_call, "identity", on_commit)
    registry()
    _post(in_call, "identity", on_commit)
    results = list(
        GateAttempt.objects.filter(progress__visit=in_call.visit)
        .order_by("number")
        .values_list("result_code", flat=True)
    )
    assert results == ["registry_unavailable", "match"]
    assert GateProgress.objects.get(visit=in_call.visit).state == GateState.FACE


def test_a_finished_result_cannot_be_edited_by_anyone(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], admin_client: Any
) -> None:
    in_call = make_in_call(person=KIT)
    _pass_identity(in_call, on_commit)
    attempt = GateAttempt.objects.get(progress__visit=in_call.visit)
    attempt.result_code = "mismatch"
    with pytest.raises(FinishedAttemptIsImmutable):
        attempt.save()
    assert GateAttempt.objects.get(pk=attempt.pk).result_code == "match"
    # Not through the admin either: no change form accepts a POST.
    progress = GateProgress.objects.get(visit=in_call.visit)
    change = reverse("admin:gates_gateprogress_change", args=[progress.pk])
    admin_client.post(change, {"state": "passed", "failure_reason": "edited"})
    assert GateProgress.objects.get(pk=progress.pk).state == GateState.FACE
    # And no API writes a result: the staff endpoints only start checks.
    for name in ("identity", "face", "questions"):
        url = reverse(f"gates:call-gate-{name}", args=[in_call.call.public_id])
        assert in_call.staff_client.put(url, {"status": "passed"}, content_type="application/json").status_code == 405


# --- Gate 3 ------------------------------------------------------------------------------


def test_same_person_passes_face_verification_with_all_three_scores(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], settings: Any
) -> None:
    in_call = make_in_call(person=KIT)
    _pass_identity(in_call, on_commit)
    _pass_face(in_call, on_commit)
    attempt = GateAttempt.objects.get(progress__visit=in_call.visit, gate="face")
    assert attempt.status == AttemptStatus.PASSED
    assert set(attempt.scores) == {"live_vs_id", "live_vs_registry", "id_vs_registry", "threshold"}
    assert max(attempt.scores[key] for key in ("live_vs_id", "live_vs_registry", "id_vs_registry")) <= (
        settings.FACE_MATCH_THRESHOLD
    )
    assert Snapshot.objects.get(pk=attempt.snapshot_id).chosen_for_face
    face = _gates(in_call)["gates"][1]
    assert face["status"] == "passed" and face["attempts"][0]["scores"] == attempt.scores


def test_a_different_person_fails_face_verification_and_the_service_ends_without_override(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], settings: Any
) -> None:
    in_call = make_in_call(person=KIT)
    _pass_identity(in_call, on_commit)
    impostor = capture(in_call, person_photos(OBAMA)[0])
    _post(in_call, "face", on_commit, snapshot=str(impostor.public_id))
    attempt = GateAttempt.objects.get(progress__visit=in_call.visit, gate="face")
    assert (attempt.status, attempt.result_code) == (AttemptStatus.FAILED, "below_threshold")
    assert attempt.scores["live_vs_id"] > settings.FACE_MATCH_THRESHOLD
    face = _gates(in_call)["gates"][1]
    assert face["status"] == "failed"
    assert face["attempts"][0]["message"].startswith("人脸识别不通过")
    _assert_service_ended(in_call, "face", "below_threshold")
    # No second try with a better photo: the gate is final.
    again = _post(in_call, "face", on_commit, snapshot=str(impostor.public_id))
    assert again.status_code in (403, 409)


def test_a_snapshot_without_a_face_may_be_retaken(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any]
) -> None:
    from io import BytesIO

    from PIL import Image

    in_call = make_in_call(person=KIT)
    _pass_identity(in_call, on_commit)
    blank = BytesIO()
    Image.new("RGB", (640, 480), (90, 120, 150)).save(blank, "JPEG")
    from apps.recordings.services.snapshots import snapshot_capture

    wall = snapshot_capture(actor=in_call.agent.user, call_id=in_call.call.pk, image_bytes=blank.getvalue())
    _post(in_call, "face", on_commit, snapshot=str(wall.public_id))
    first = GateAttempt.objects.get(progress__visit=in_call.visit, gate="face")
    assert (first.status, first.result_code) == (AttemptStatus.ERROR, "live:FaceNotFound")
    _pass_face(in_call, on_commit)


def test_a_snapshot_of_another_service_is_refused(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any]
) -> None:
    first = make_in_call(person=KIT)
    other = make_in_call(person=KIT)
    _pass_identity(first, on_commit)
    foreign = capture(other, person_photos(KIT)[2])
    response = _post(first, "face", on_commit, snapshot=str(foreign.public_id))
    assert response.status_code == 400 and response.json()["code"] == "snapshot"
    assert not GateAttempt.objects.filter(progress__visit=first.visit, gate="face").exists()


# --- Gate 4 ------------------------------------------------------------------------------


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


# --- Order (R6.5 for the gates themselves) -------------------------------------------------


def test_gates_cannot_be_taken_out_of_order_whatever_the_client_sends(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any]
) -> None:
    in_call = make_in_call(person=KIT)
    snapshot = capture(in_call, person_photos(KIT)[2])
    face = _post(in_call, "face", on_commit, snapshot=str(snapshot.public_id))
    assert face.status_code == 409 and face.json()["code"] == "out_of_order"
    questions = _post(in_call, "questions", on_commit)
    assert questions.status_code == 409 and questions.json()["code"] == "out_of_order"
    assert _answer(in_call, [0, 0, 0]).json()["code"] == "no_questions"
    assert not GateAttempt.objects.filter(progress__visit=in_call.visit).exists()


def test_only_staff_in_the_call_may_run_or_see_its_checks(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any]
) -> None:
    in_call = make_in_call(person=KIT)
    stranger = make_in_call(person=0)
    url = reverse("gates:call-gate-identity", args=[in_call.call.public_id])
    response = stranger.staff_client.post(url, content_type="application/json")
    assert response.status_code == 403 and response.json()["code"] == "not_in_call"
    seen = stranger.staff_client.get(reverse("gates:call-gates", args=[in_call.call.public_id]))
    assert seen.status_code == 403
    # A customer's session cannot reach the staff endpoints.
    assert in_call.customer_client.post(url).status_code in (401, 403)
