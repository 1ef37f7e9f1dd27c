"""Issue 14, item 1: the live image and every snapshot are frames the SERVER takes from Janus.

Real Janus, a real publishing peer (the customer's camera playing a photo of
the shared face set), the capture service subscribing over WebRTC. The old
path, an agent's browser uploading "the customer's frame", is refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models.fields.files import FieldFile
from django.urls import reverse
from PIL import Image

from apps.audit.models import AuditRecord
from apps.gates.models import GateProgress
from apps.recordings.models import Snapshot
from tests.gates.conftest import KIT, _pass_identity, person_photos

pytestmark = pytest.mark.django_db(transaction=False)


def _capture_url(live: Any) -> str:
    return reverse("recordings:call-snapshot-capture", args=[live.in_call.call.public_id])


def _open(source: Path | FieldFile) -> Image.Image:
    """Decode and close (the suite turns an unclosed file into an error)."""
    with source.open("rb") as handle:
        return Image.open(handle).convert("RGB")


def _difference(captured: Image.Image, source: Image.Image) -> float:
    """Mean absolute pixel difference (0-255) after bringing the source to the captured size."""
    expected = np.asarray(source.convert("RGB").resize(captured.size, Image.Resampling.BILINEAR), dtype=np.float32)
    return float(np.abs(np.asarray(captured.convert("RGB"), dtype=np.float32) - expected).mean())


def test_the_server_captures_a_frame_of_the_customers_stream(
    live_call: Callable[..., Any], on_commit: Callable[..., Any]
) -> None:
    photo = person_photos(KIT)[2]
    with live_call({"kind": "photo", "path": str(photo)}, person=KIT) as live:
        client = live.in_call.staff_client

        response = client.post(_capture_url(live), {}, content_type="application/json")

        assert response.status_code == 201, response.content
        snapshot = Snapshot.objects.get(public_id=response.json()["id"])
        assert snapshot.feed_id == live.feed and response.json()["feed_id"] == live.feed
        with snapshot.image.open("rb") as handle:
            stored = handle.read()
        assert hashlib.sha256(stored).hexdigest() == snapshot.sha256
        frame = _open(snapshot.image)
        # The frame is the peer's picture (VP8 + JPEG leave a few levels of noise), not anything else:
        # another photo of the same set differs by tens of levels.
        source = _open(photo)
        assert _difference(frame, source) < 12, _difference(frame, source)
        other = _open(person_photos(KIT)[0])
        assert _difference(frame, other) > 2 * _difference(frame, source)
        record = AuditRecord.objects.get(action="recordings.snapshot.captured")
        assert record.data["feed"] == live.feed and record.data["call"] == str(live.in_call.call.public_id)
        assert record.data["source"] == "server" and record.data["captured_at"]


def test_an_upload_can_no_longer_become_the_live_image(
    live_call: Callable[..., Any], on_commit: Callable[..., Any]
) -> None:
    """The attack of issue 14: download the registry photo, upload it as the snapshot, run Gate 3 on it."""
    photo = person_photos(KIT)[2]
    with live_call({"kind": "photo", "path": str(photo)}, person=KIT) as live:
        in_call = live.in_call
        _pass_identity(in_call, on_commit)
        with GateProgress.objects.get(visit=in_call.visit).registry_photo.open("rb") as handle:
            registry_photo = handle.read()

        uploaded = in_call.staff_client.post(
            _capture_url(live), {"image": SimpleUploadedFile("frame.jpg", registry_photo, content_type="image/jpeg")}
        )

        assert uploaded.status_code == 400 and uploaded.json()["code"] == "image_upload_refused"
        assert not Snapshot.objects.filter(call=in_call.call).exists()
        # The only live images there are come from the stream: none of them is the registry photo.
        captured = in_call.staff_client.post(_capture_url(live), {}, content_type="application/json")
        assert captured.status_code == 201, captured.content
        stored = [snapshot.sha256 for snapshot in Snapshot.objects.filter(call=in_call.call)]
        assert stored == [captured.json()["sha256"]]
        assert hashlib.sha256(registry_photo).hexdigest() not in stored
