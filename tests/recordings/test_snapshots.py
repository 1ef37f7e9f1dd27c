"""Snapshots of the customer during a call (R5): who may capture, uploads refused, hashes audited.

The server takes the frame from Janus itself (tests/live drives that with a
real Janus and a publishing peer); here ``_store`` hands the storing half a
frame as the capture would, to test what is kept, audited and shown.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from apps.audit.models import AuditRecord
from apps.calls.integrations.media_capture import CapturedFrame
from apps.calls.models import Call, CallParticipant, ParticipantRole
from apps.recordings.models import Snapshot
from apps.recordings.services.snapshots import snapshot_store_frame
from apps.staff.roles import Role
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db

FEED = 4242


def _jpeg(size: tuple[int, int] = (320, 240)) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(buffer, format="JPEG")
    return buffer.getvalue()


def _publishing(call: Call) -> None:
    """The customer publishes feed FEED, as the Janus event feed would record."""
    CallParticipant.objects.filter(call=call, role=ParticipantRole.CUSTOMER).update(
        janus_feed_id=FEED, publishing_since=timezone.now()
    )


def _store(call: Call, agent: User, size: tuple[int, int] = (320, 240)) -> Snapshot:
    _publishing(call)
    frame = CapturedFrame(
        image=Image.effect_noise(size, 60).convert("RGB"), feed_id=FEED, captured_at=datetime.now(tz=UTC), index=0
    )
    return snapshot_store_frame(actor=agent, call_id=call.pk, frame=frame)


def _capture(client: Client, call: Call) -> Any:
    return client.post(
        reverse("recordings:call-snapshot-capture", args=[call.public_id]), {}, content_type="application/json"
    )


def _upload(client: Client, call: Call, data: bytes, name: str = "frame.jpg") -> Any:
    return client.post(
        reverse("recordings:call-snapshot-capture", args=[call.public_id]),
        {"image": SimpleUploadedFile(name, data, content_type="image/jpeg")},
    )


def test_the_agent_in_the_call_captures_the_customer_and_the_hash_is_audited(
    make_live_call: Callable[..., Call], agent: User, client: Client
) -> None:
    call = make_live_call()
    client.force_login(agent)

    snapshot = _store(call, agent)

    assert snapshot.participant.role == ParticipantRole.CUSTOMER
    assert snapshot.taken_by == agent
    assert (snapshot.width, snapshot.height) == (320, 240)
    with snapshot.image.open("rb") as handle:
        stored = handle.read()
    assert stored.startswith(b"\xff\xd8\xff")
    assert hashlib.sha256(stored).hexdigest() == snapshot.sha256
    record = AuditRecord.objects.get(action="recordings.snapshot.captured")
    assert record.data["sha256"] == snapshot.sha256 and record.data["call"] == str(call.public_id)
    # Which feed the server subscribed to and when it decoded the frame.
    assert record.data["feed"] == FEED == snapshot.feed_id and record.data["source"] == "server"
    assert datetime.fromisoformat(record.data["captured_at"]) == snapshot.taken_at

    listed = client.get(reverse("recordings:call-snapshots", args=[call.public_id]))
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["snapshots"]] == [str(snapshot.public_id)]

    # The stored image, as the console shows it: the same bytes, and the viewing is audited.
    image = client.get(listed.json()["snapshots"][0]["image_url"])
    assert image.status_code == 200 and image["Content-Type"] == "image/jpeg"
    assert hashlib.sha256(image.content).hexdigest() == snapshot.sha256
    viewed = AuditRecord.objects.get(action="recordings.snapshot.viewed")
    assert viewed.data["sha256"] == snapshot.sha256 and viewed.actor_id == str(agent.pk)


def test_a_snapshot_image_is_shown_only_to_those_who_may_see_the_service(
    make_live_call: Callable[..., Call], agent: User, make_staff: Callable[..., User], client: Client
) -> None:
    call = make_live_call()
    client.force_login(agent)
    _store(call, agent)
    image_url = client.get(reverse("recordings:call-snapshots", args=[call.public_id])).json()["snapshots"][0][
        "image_url"
    ]

    client.force_login(make_staff(Role.AGENT, "other_agent"))
    assert client.get(image_url).status_code == 404
    force_login_verified(client, make_staff(Role.ADMINISTRATOR))
    assert client.get(image_url).status_code == 403
    force_login_verified(client, make_staff(Role.COMPLIANCE_OFFICER))
    assert client.get(image_url).status_code == 200
    assert AuditRecord.objects.filter(action="recordings.snapshot.viewed").count() == 1


@pytest.mark.parametrize("data", [_jpeg(), b"", b"definitely not an image"])
def test_an_uploaded_image_is_refused_and_nothing_is_stored(
    make_live_call: Callable[..., Call], agent: User, client: Client, data: bytes
) -> None:
    """No browser may hand the server "the customer's frame" (issue 14): the registry photo would pass Gate 3."""
    call = make_live_call()
    _publishing(call)
    client.force_login(agent)

    for response in (
        _upload(client, call, data),
        client.post(
            reverse("recordings:call-snapshot-capture", args=[call.public_id]),
            {"image": "data:image/jpeg;base64,AAAA"},
            content_type="application/json",
        ),
    ):
        assert response.status_code == 400
        assert response.json()["code"] == "image_upload_refused"
    assert not Snapshot.objects.exists()
    assert not AuditRecord.objects.filter(action="recordings.snapshot.captured").exists()


def test_no_capture_while_the_customer_is_not_publishing(
    make_live_call: Callable[..., Call], agent: User, client: Client
) -> None:
    call = make_live_call()
    client.force_login(agent)

    response = _capture(client, call)

    assert response.status_code == 409
    assert response.json()["code"] == "customer_not_publishing"
    assert not Snapshot.objects.exists()


def test_only_staff_in_the_call_can_capture_or_list(
    make_live_call: Callable[..., Call], make_staff: Callable[..., User], client: Client
) -> None:
    call = make_live_call()
    other_agent = make_staff(Role.AGENT, "other_agent")
    _publishing(call)
    client.force_login(other_agent)
    assert _capture(client, call).status_code == 403
    # Not a service of theirs (visits_visible_to): not even whether the call exists.
    assert client.get(reverse("recordings:call-snapshots", args=[call.public_id])).status_code == 404

    compliance = make_staff(Role.COMPLIANCE_OFFICER)
    force_login_verified(client, compliance)
    # Compliance officers see every service's snapshots but do not serve customers: no capture.
    assert client.get(reverse("recordings:call-snapshots", args=[call.public_id])).status_code == 200
    assert _capture(client, call).status_code == 403

    client.logout()
    assert _capture(client, call).status_code == 403
    assert not Snapshot.objects.exists()


def test_no_capture_after_the_call_ended(
    make_live_call: Callable[..., Call], agent: User, client: Client, hang_up: Callable[[Call], Call]
) -> None:
    call = hang_up(make_live_call())
    client.force_login(agent)

    response = _capture(client, call)

    assert response.status_code == 409
    assert response.json()["code"] == "call_ended"
