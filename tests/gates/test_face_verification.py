"""Gate 3 in a real call: face verification with the real face model (R6.3)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apps.gates.models import AttemptStatus, GateAttempt
from apps.recordings.models import Snapshot
from tests.gates.conftest import (
    KIT,
    OBAMA,
    InCall,
    _assert_service_ended,
    _gates,
    _pass_face,
    _pass_identity,
    _post,
    capture,
    person_photos,
)

pytestmark = pytest.mark.django_db


def test_same_person_passes_face_verification_with_all_three_scores(
    make_in_call: Callable[..., InCall], on_commit: Callable[..., Any], settings: Any
) -> None:
    in_call = make_in_call(person=KIT)
    _pass_identity(in_call, on_commit)
    _pass_face(in_call, on_commit)
    attempt = GateAttempt.objects.get(progress__visit=in_call.visit, gate="face")
    assert attempt.status == AttemptStatus.PASSED
    assert set(attempt.scores) == {"live_vs_id", "live_vs_registry", "id_vs_registry", "threshold", "thresholds"}
    assert attempt.scores["thresholds"] == {
        "live_vs_id": settings.FACE_THRESHOLD_LIVE_VS_ID,
        "live_vs_registry": settings.FACE_THRESHOLD_LIVE_VS_REGISTRY,
        "id_vs_registry": settings.FACE_THRESHOLD_ID_VS_REGISTRY,
    }
    for key in ("live_vs_id", "live_vs_registry", "id_vs_registry"):
        assert attempt.scores[key] <= attempt.scores["thresholds"][key]
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
    assert attempt.scores["live_vs_id"] > settings.FACE_THRESHOLD_LIVE_VS_ID
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
    from PIL import Image

    in_call = make_in_call(person=KIT)
    _pass_identity(in_call, on_commit)
    wall = capture(in_call, Image.new("RGB", (640, 480), (90, 120, 150)))
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
