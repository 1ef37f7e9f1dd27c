"""Retention of recordings (R3.2 "kept", for a configured period): what is removed, when, and what stays."""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from apps.audit.models import AuditRecord
from apps.calls.models import CallParticipant, ParticipantRole
from apps.recordings.models import RecordingFile, RecordingFileKind, Snapshot
from apps.recordings.services.retention import recordings_purge_expired
from apps.recordings.tasks import recordings_purge_expired_task
from tests.conftest import SYSTEM
from tests.recordings.conftest import StoredService
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db

DAYS = 365


def _add_original(service: StoredService, folder: Path) -> RecordingFile:
    """A Janus original (.mjr) on the media disk, as post-processing records it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"videoroom-1-user-1-{service.recording.pk}-audio-0.mjr"
    path.write_bytes(b"MJR00002" + bytes(200))
    return RecordingFile.objects.create(
        recording=service.recording,
        kind=RecordingFileKind.ORIGINAL_MJR,
        path=str(path),
        in_storage=False,
        size_bytes=208,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
    )


def _add_snapshot(service: StoredService, taken_by: User) -> Snapshot:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "gray").save(buffer, format="JPEG")
    snapshot = Snapshot(
        public_id=uuid.uuid4(),
        call=service.call,
        participant=CallParticipant.objects.get(call=service.call, role=ParticipantRole.CUSTOMER),
        taken_by=taken_by,
        sha256=hashlib.sha256(buffer.getvalue()).hexdigest(),
        width=64,
        height=48,
        taken_at=service.call.created_at,
    )
    snapshot.image.save(f"{snapshot.public_id}.jpg", ContentFile(buffer.getvalue()), save=True)
    return snapshot


@pytest.fixture
def three_services(make_recorded_service: Callable[..., StoredService], agent: User, tmp_path: Path) -> dict[str, Any]:
    """Closed past the period (with an original and a snapshot), closed inside it, and still open."""
    now = timezone.now()
    expired = make_recorded_service(
        agent=agent, started_at=now - timedelta(days=DAYS + 10), closed_at=now - timedelta(days=DAYS + 1)
    )
    # One hour inside the period: never touched.
    recent = make_recorded_service(
        agent=agent, started_at=now - timedelta(days=DAYS + 10), closed_at=now - timedelta(days=DAYS, hours=-1)
    )
    still_open = make_recorded_service(agent=agent, started_at=now - timedelta(days=DAYS + 10), outcome="")
    assert still_open.visit.closed_at is None
    return {
        "expired": expired,
        "expired_original": _add_original(expired, tmp_path / "janus" / "expired"),
        "expired_snapshot": _add_snapshot(expired, agent),
        "recent": recent,
        "recent_original": _add_original(recent, tmp_path / "janus" / "recent"),
        "recent_snapshot": _add_snapshot(recent, agent),
        "open": still_open,
        "open_snapshot": _add_snapshot(still_open, agent),
    }


def _still_there(services: dict[str, Any], name: str) -> bool:
    service: StoredService = services[name]
    original: RecordingFile | None = services.get(f"{name}_original")
    snapshot: Snapshot = services[f"{name}_snapshot"]
    present = [
        default_storage.exists(service.composite.path),
        default_storage.exists(str(snapshot.image.name)),
        *([Path(original.path).exists()] if original else []),
    ]
    assert len(set(present)) == 1, present  # all or nothing
    return present[0]


def test_a_dry_run_lists_what_would_be_removed_and_removes_nothing(three_services: dict[str, Any]) -> None:
    audit_before = AuditRecord.objects.count()

    listed = recordings_purge_expired(actor=SYSTEM, retention_days=DAYS, dry_run=True)

    expired: StoredService = three_services["expired"]
    assert sorted((item.what, item.path) for item in listed) == sorted(
        [
            ("composite", expired.composite.path),
            ("original_mjr", three_services["expired_original"].path),
            ("snapshot", str(three_services["expired_snapshot"].image.name)),
        ]
    )
    assert {item.visit for item in listed} == {str(expired.visit.public_id)}
    assert all(_still_there(three_services, name) for name in ("expired", "recent", "open"))
    assert AuditRecord.objects.count() == audit_before
    assert not RecordingFile.objects.filter(purged_at__isnull=False).exists()


def test_media_of_services_closed_before_the_period_are_removed_with_an_audit_record_each_and_hashes_kept(
    three_services: dict[str, Any], client: Client, compliance_officer: User, capsys: Any
) -> None:
    expired: StoredService = three_services["expired"]
    original: RecordingFile = three_services["expired_original"]
    snapshot: Snapshot = three_services["expired_snapshot"]

    removed = recordings_purge_expired(actor=SYSTEM, retention_days=DAYS)

    assert len(removed) == 3
    assert not _still_there(three_services, "expired")
    # Inside the period (by one hour) and still open: untouched.
    assert _still_there(three_services, "recent") and _still_there(three_services, "open")

    # The rows and their hashes stay, marked purged.
    for item in (expired.composite, original):
        item.refresh_from_db()
        assert item.purged_at is not None
    assert expired.composite.sha256 == hashlib.sha256(expired.content).hexdigest()
    snapshot.refresh_from_db()
    assert snapshot.purged_at is not None and snapshot.sha256
    assert RecordingFile.objects.filter(purged_at__isnull=False).count() == 2

    # One audit record per removed file, with its hash.
    purged = AuditRecord.objects.filter(action="recordings.file.purged")
    assert {(record.data["path"], record.data["sha256"]) for record in purged} == {
        (expired.composite.path, expired.composite.sha256),
        (original.path, original.sha256),
    }
    assert all(record.data["retention_days"] == DAYS for record in purged)
    snapshot_record = AuditRecord.objects.get(action="recordings.snapshot.purged")
    assert snapshot_record.data["sha256"] == snapshot.sha256

    # A second run finds nothing more to do.
    assert recordings_purge_expired(actor=SYSTEM, retention_days=DAYS) == []
    assert AuditRecord.objects.filter(action__endswith=".purged").count() == 3

    # A removed file is no longer served, and verification does not call it tampered with.
    force_login_verified(client, compliance_officer)
    assert client.get(reverse("recordings:file-content", args=[expired.composite.pk])).status_code == 404
    call_command("recordings_verify", "--call", str(expired.call.public_id))
    assert "0 recording files match" in capsys.readouterr().out
    player = client.get(reverse("console:recording-player", args=[expired.recording.pk]))
    assert player.status_code == 200 and player.context["evidence"] is None


def test_the_command_dry_run_and_removal(three_services: dict[str, Any], capsys: Any) -> None:
    expired: StoredService = three_services["expired"]

    call_command("recordings_purge_expired", "--dry-run", "--days", str(DAYS))
    out = capsys.readouterr().out
    assert f"WOULD REMOVE composite {expired.composite.path} sha256 {expired.composite.sha256}" in out
    assert "3 media files would be removed (retention 365 days)." in out
    assert _still_there(three_services, "expired")

    # A longer period than the age of every closed service: nothing to remove.
    call_command("recordings_purge_expired", "--days", str(DAYS + 30))
    assert "0 media files removed" in capsys.readouterr().out
    assert _still_there(three_services, "expired")

    call_command("recordings_purge_expired", "--days", str(DAYS))
    out = capsys.readouterr().out
    assert f"REMOVED composite {expired.composite.path}" in out and "3 media files removed" in out
    assert not _still_there(three_services, "expired") and _still_there(three_services, "recent")


def test_the_scheduled_task_uses_the_configured_period(three_services: dict[str, Any], settings: Any) -> None:
    settings.RECORDINGS_RETENTION_DAYS = DAYS + 30
    assert recordings_purge_expired_task.delay().get() == 0
    assert _still_there(three_services, "expired")

    settings.RECORDINGS_RETENTION_DAYS = DAYS
    assert recordings_purge_expired_task.delay().get() == 3
    assert not _still_there(three_services, "expired") and _still_there(three_services, "recent")


def test_a_file_already_missing_is_still_marked_and_audited(three_services: dict[str, Any]) -> None:
    expired: StoredService = three_services["expired"]
    default_storage.delete(expired.composite.path)  # e.g. a run that removed it and then lost its database

    recordings_purge_expired(actor=SYSTEM, retention_days=DAYS)

    expired.composite.refresh_from_db()
    assert expired.composite.purged_at is not None
    assert AuditRecord.objects.filter(action="recordings.file.purged", data__path=expired.composite.path).exists()
