"""Issue 14, item 2 through a real Janus: a still image or a replayed known photo as the camera fails liveness.

The customer's camera is a peer in the namespace playing:

- a .y4m clip made with ffmpeg from a photo of the shared face set (what
  Chromium's ``--use-file-for-fake-video-capture`` plays): a static feed,
  it fails liveness (``static_feed``), the attempt is an error the agent
  may retry and the service goes on;
- the registry photo itself held up to the camera (drifting, so not
  static): the burst's best frame IS the registry photo (distance near 0),
  which ends the service (``replayed_known_image``) when its distance to the
  registry photo is under LIVENESS_REPLAY_MAX_DISTANCE; through VP8 it may
  land above it, and then the unmet challenge fails it (retry).

The server captures the burst, the 68-point landmarks and the real face
model decide. Challenges are short here (one step of 2 s) to keep the run
short; their drawing is tested in test_liveness_measures.py.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apps.audit.models import AuditRecord
from apps.gates.models import AttemptStatus, GateAttempt, GateProgress, GateState
from tests.gates.conftest import KIT, _assert_service_ended, _pass_identity, _post, person_photos
from tests.live.conftest import CI

pytestmark = pytest.mark.django_db


@pytest.fixture
def liveness_on(settings: Any) -> None:
    settings.GATE_FACE_LIVENESS_REQUIRED = True
    settings.LIVENESS_STEPS = 1
    settings.LIVENESS_STEP_SECONDS = 3.0
    # Fewer frames to measure while the capture decodes: on a loaded 2-core machine the two compete.
    settings.LIVENESS_CAPTURE_FPS = 4
    # The eager task subscribes while the test waits: under load that takes seconds.
    settings.LIVENESS_FIRST_DELAY_SECONDS = (2.5, 3.0)


def _y4m_from_photo(photo: Path, out: Path) -> Path:
    if shutil.which("ffmpeg") is None:
        if CI:
            pytest.fail("CI=true requires ffmpeg (apt-get install ffmpeg)", pytrace=False)
        pytest.skip("ffmpeg is not installed")
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-loop", "1", "-i", str(photo), "-t", "2", "-r", "15",
         "-vf", "scale=480:-2,format=yuv420p", str(out)],
        check=True,
        timeout=60,
    )  # fmt: skip
    return out


def test_a_still_image_played_as_the_camera_fails_liveness_and_may_be_retried(
    live_call: Callable[..., Any], on_commit: Callable[..., Any], liveness_on: None, tmp_path: Path
) -> None:
    camera = _y4m_from_photo(person_photos(KIT)[2], tmp_path / "still.y4m")
    with live_call({"kind": "file", "path": str(camera)}, person=KIT) as live:
        in_call = live.in_call
        _pass_identity(in_call, on_commit)

        response = _post(in_call, "face", on_commit)

        assert response.status_code == 202, response.content
        attempt = GateAttempt.objects.get(progress__visit=in_call.visit, gate="face")
        assert attempt.status == AttemptStatus.ERROR, (attempt.result_code, attempt.scores)
        liveness = attempt.scores["liveness"]
        assert liveness["passed"] is False and attempt.result_code == f"liveness:{liveness['reasons'][0]}"
        if liveness["frames"] >= 5:
            # A still picture: after the encoder's first frames nothing changes.
            assert "static_feed" in liveness["reasons"] and liveness["sustained_change"] < 1.5, liveness
        else:
            # On a starved machine (8 engineers on 2 cores) VP8 frames get lost: an unusable burst, retried.
            assert "too_few_frames" in liveness["reasons"], liveness
        # Not definitive: the gate waits for another try, and the challenge was audited.
        assert GateProgress.objects.get(visit=in_call.visit).state == GateState.FACE
        challenged = AuditRecord.objects.get(action="gates.liveness.challenged")
        assert challenged.data["feed"] == live.feed and challenged.data["challenge"]["steps"]


def test_a_replayed_registry_photo_fails(
    live_call: Callable[..., Any], on_commit: Callable[..., Any], liveness_on: None, settings: Any
) -> None:
    # The sandbox registry's photo of a person is their first photo of the set.
    registry_photo = person_photos(KIT)[0]
    with live_call({"kind": "shaken_photo", "path": str(registry_photo)}, person=KIT) as live:
        in_call = live.in_call
        _pass_identity(in_call, on_commit)
        with GateProgress.objects.get(visit=in_call.visit).registry_photo.open("rb") as handle:
            assert handle.read() == registry_photo.read_bytes()

        _post(in_call, "face", on_commit)

        attempt = GateAttempt.objects.get(progress__visit=in_call.visit, gate="face")
        # Never a pass. The burst's best frame is compared and stored (a server frame of this feed).
        assert attempt.status in (AttemptStatus.FAILED, AttemptStatus.ERROR), attempt.scores
        assert attempt.snapshot is not None and attempt.snapshot.feed_id == live.feed
        assert "static_feed" not in attempt.scores["liveness"]["reasons"]  # the hand moves it
        distance = attempt.scores["live_vs_registry"]
        if distance < settings.LIVENESS_REPLAY_MAX_DISTANCE:
            # Recognised as the registry photo itself: definitive, the service ends.
            assert attempt.result_code == "replayed_known_image"
            assert "replayed_known_image" in attempt.scores["liveness"]["reasons"]
            _assert_service_ended(in_call, "face", "replayed_known_image")
        else:
            # Through VP8 at 480 px the replayed photo can land above the replay threshold
            # (measured 0.009-0.051 for degraded copies, docs/face-verification.md): the challenge still fails it.
            assert attempt.result_code == "liveness:challenge_not_met", attempt.scores
            assert GateProgress.objects.get(visit=in_call.visit).state == GateState.FACE


def test_the_snapshot_path_is_refused_while_liveness_is_required(
    live_call: Callable[..., Any], on_commit: Callable[..., Any], liveness_on: None
) -> None:
    with live_call({"kind": "photo", "path": str(person_photos(KIT)[2])}, person=KIT) as live:
        in_call = live.in_call
        _pass_identity(in_call, on_commit)
        snapshot = in_call.staff_client.post(
            f"/api/recordings/calls/{in_call.call.public_id}/snapshots/capture/", {}, content_type="application/json"
        ).json()

        response = _post(in_call, "face", on_commit, snapshot=snapshot["id"])

        assert response.status_code == 409 and response.json()["code"] == "liveness_required"
        assert not GateAttempt.objects.filter(progress__visit=in_call.visit, gate="face").exists()
