"""Snapshots of the customer during a call (R5): who may capture, what is refused, hashes audited."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from PIL import Image

from apps.audit.models import AuditRecord
from apps.calls.models import Call, ParticipantRole
from apps.recordings.models import Snapshot
from apps.staff.roles import Role
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db


def _jpeg(size: tuple[int, int] = (320, 240)) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(buffer, format="JPEG")
    return buffer.getvalue()


def _post(client: Client, call: Call, data: bytes, name: str = "frame.jpg") -> Any:
    return client.post(
        reverse("recordings:call-snapshot-capture", args=[call.public_id]),
        {"image": SimpleUploadedFile(name, data, content_type="image/jpeg")},
    )


def test_the_agent_in_the_call_captures_the_customer_and_the_hash_is_audited(
    make_live_call: Callable[..., Call], agent: User, client: Client
) -> None:
    call = make_live_call()
    client.force_login(agent)

    response = _post(client, call, _jpeg())

    assert response.status_code == 201, response.json()
    snapshot = Snapshot.objects.get(public_id=response.json()["id"])
    assert snapshot.participant.role == ParticipantRole.CUSTOMER
    assert snapshot.taken_by == agent
    assert (snapshot.width, snapshot.height) == (320, 240)
    with snapshot.image.open("rb") as handle:
        stored = handle.read()
    assert stored.startswith(b"\xff\xd8\xff")
    assert hashlib.sha256(stored).hexdigest() == snapshot.sha256 == response.json()["sha256"]
    record = AuditRecord.objects.get(action="recordings.snapshot.captured")
    assert record.data["sha256"] == snapshot.sha256 and record.data["call"] == str(call.public_id)

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
    image_url = _post(client, call, _jpeg()).json()["image_url"]

    client.force_login(make_staff(Role.AGENT, "other_agent"))
    assert client.get(image_url).status_code == 404
    force_login_verified(client, make_staff(Role.ADMINISTRATOR))
    assert client.get(image_url).status_code == 403
    force_login_verified(client, make_staff(Role.COMPLIANCE_OFFICER))
    assert client.get(image_url).status_code == 200
    assert AuditRecord.objects.filter(action="recordings.snapshot.viewed").count() == 1


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "image_empty"),
        (b"GIF89a" + b"\0" * 100, "image_unsupported_format"),
        (b"definitely not an image", "image_not_an_image"),
        (_jpeg()[: len(_jpeg()) // 2], "image_truncated"),
    ],
)
def test_a_bad_image_is_refused_and_nothing_is_stored(
    make_live_call: Callable[..., Call], agent: User, client: Client, data: bytes, code: str
) -> None:
    call = make_live_call()
    client.force_login(agent)

    response = _post(client, call, data)

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert not Snapshot.objects.exists()
    assert not AuditRecord.objects.filter(action="recordings.snapshot.captured").exists()


def test_only_staff_in_the_call_can_capture_or_list(
    make_live_call: Callable[..., Call], make_staff: Callable[..., User], client: Client
) -> None:
    call = make_live_call()
    other_agent = make_staff(Role.AGENT, "other_agent")
    client.force_login(other_agent)
    assert _post(client, call, _jpeg()).status_code == 403
    # Not a service of theirs (visits_visible_to): not even whether the call exists.
    assert client.get(reverse("recordings:call-snapshots", args=[call.public_id])).status_code == 404

    compliance = make_staff(Role.COMPLIANCE_OFFICER)
    force_login_verified(client, compliance)
    # Compliance officers see every service's snapshots but do not serve customers: no capture.
    assert client.get(reverse("recordings:call-snapshots", args=[call.public_id])).status_code == 200
    assert _post(client, call, _jpeg()).status_code == 403

    client.logout()
    assert _post(client, call, _jpeg()).status_code == 403
    assert not Snapshot.objects.exists()


def test_no_capture_after_the_call_ended(
    make_live_call: Callable[..., Call], agent: User, client: Client, hang_up: Callable[[Call], Call]
) -> None:
    call = hang_up(make_live_call())
    client.force_login(agent)

    response = _post(client, call, _jpeg())

    assert response.status_code == 409
    assert response.json()["code"] == "call_ended"
