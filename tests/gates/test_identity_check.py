"""Gate 2 in a real call: the identity check against the registry sandbox (R6.2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse

from apps.gates.models import AttemptStatus, GateAttempt, GateProgress, GateState
from tests.gates.conftest import KIT, InCall, _assert_service_ended, _gates, _pass_identity, _post, person_photos

pytestmark = pytest.mark.django_db


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
