"""Gates 2–4 as a whole, in a real call: results are final, order is enforced, strangers are refused (R6.2, R6.5)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse

from apps.gates.models import FinishedAttemptIsImmutable, GateAttempt, GateProgress, GateState
from tests.gates.conftest import KIT, InCall, _answer, _pass_identity, _post, capture, person_photos

pytestmark = pytest.mark.django_db

# --- A finished result is evidence (R6.2) ------------------------------------------------


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
