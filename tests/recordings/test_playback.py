"""Playback and download of recordings: range requests, access by role, every access audited."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditRecord
from apps.calls.models import Call
from apps.recordings.models import Recording, RecordingFileKind, RecordingState
from apps.recordings.selectors import ByteRange, RangeNotSatisfiable, parse_range_header
from apps.staff.roles import Role
from tests.recordings.conftest import RecordedCall
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db


def _body(response: Any) -> bytes:
    return b"".join(response.streaming_content)


@pytest.fixture
def processed(
    recorded_call: RecordedCall, make_live_call: Callable[..., Call], hang_up: Callable[[Call], Call]
) -> Recording:
    recording = Recording.objects.get(call=hang_up(make_live_call(recorded_call)))
    assert recording.state == RecordingState.DONE, recording.error
    return recording


def test_range_header_parsing() -> None:
    assert parse_range_header(None, size=1000) is None
    assert parse_range_header("bytes=0-", size=1000) == ByteRange(0, 999)
    assert parse_range_header("bytes=100-199", size=1000) == ByteRange(100, 199)
    assert parse_range_header("bytes=900-5000", size=1000) == ByteRange(900, 999)
    assert parse_range_header("bytes=-100", size=1000) == ByteRange(900, 999)
    assert parse_range_header("bytes=0-1,5-6", size=1000) is None
    for unsatisfiable in ("bytes=1000-", "bytes=5-4", "bytes=-0"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range_header(unsatisfiable, size=1000)


def test_a_compliance_officer_plays_the_evidence_file_with_seeking_and_each_playback_is_audited(
    processed: Recording, compliance_officer: User, client: Client
) -> None:
    force_login_verified(client, compliance_officer)
    listing = client.get(reverse("recordings:call-recording", args=[processed.call.public_id]))
    assert listing.status_code == 200
    body = listing.json()
    assert body["state"] == "done" and body["progress"] == 100
    composite = next(item for item in body["files"] if item["kind"] == RecordingFileKind.COMPOSITE)
    with default_storage.open(processed.files.get(pk=composite["id"]).path, "rb") as handle:
        content = handle.read()
    url = reverse("recordings:file-content", args=[composite["id"]])

    first = client.get(url, headers={"range": "bytes=0-"})
    assert first.status_code == 206
    # The evidence file is H.264 in MP4 (docs/operations.md, issue 18).
    assert first["Content-Type"] == "video/mp4" and first["Accept-Ranges"] == "bytes"
    assert first["Content-Range"] == f"bytes 0-{len(content) - 1}/{len(content)}"
    assert _body(first) == content
    # Seeking: a range in the middle returns exactly those bytes.
    middle = client.get(url, headers={"range": "bytes=1000-1999"})
    assert middle.status_code == 206 and middle["Content-Length"] == "1000"
    assert _body(middle) == content[1000:2000]
    beyond = client.get(url, headers={"range": f"bytes={len(content)}-"})
    assert beyond.status_code == 416 and beyond["Content-Range"] == f"bytes */{len(content)}"

    played = AuditRecord.objects.filter(action="recordings.file.played")
    assert played.count() == 1  # one playback, however many seeks
    assert played.get().data["sha256"] == composite["sha256"]

    download = client.get(url, {"download": "1"})
    assert download.status_code == 200 and "attachment" in download["Content-Disposition"]
    assert _body(download) == content
    assert AuditRecord.objects.filter(action="recordings.file.downloaded").count() == 1


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("the call's agent", 200),  # own service
        ("compliance officer", 200),  # every service
        ("another agent", 404),  # not theirs: not even whether it exists
        ("another team's supervisor", 404),
        ("administrator", 403),  # runs the system, reads no customer's service
    ],
)
def test_playback_is_limited_by_role_and_service(
    processed: Recording, make_staff: Callable[..., User], agent: User, client: Client, who: str, status: int
) -> None:
    users = {
        "the call's agent": lambda: agent,
        "compliance officer": lambda: make_staff(Role.COMPLIANCE_OFFICER, "play_compliance"),
        "another agent": lambda: make_staff(Role.AGENT, "play_agent"),
        "another team's supervisor": lambda: make_staff(Role.SUPERVISOR, "play_supervisor"),
        "administrator": lambda: make_staff(Role.ADMINISTRATOR, "play_admin"),
    }
    force_login_verified(client, users[who]())
    composite = processed.files.get(kind=RecordingFileKind.COMPOSITE)

    listing = client.get(reverse("recordings:call-recording", args=[processed.call.public_id]))
    content = client.get(reverse("recordings:file-content", args=[composite.pk]))

    assert listing.status_code == status
    assert content.status_code == status
    assert AuditRecord.objects.filter(action="recordings.file.played").exists() is (status == 200)


def test_originals_are_not_served(processed: Recording, supervisor: User, client: Client) -> None:
    force_login_verified(client, supervisor)
    original = processed.files.filter(kind=RecordingFileKind.ORIGINAL_MJR).first()
    assert original is not None
    assert client.get(reverse("recordings:file-content", args=[original.pk])).status_code == 404
