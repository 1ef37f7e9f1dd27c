"""Retention: the media files of services closed longer ago than the period are removed; rows and hashes stay."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.audit.actions import AuditAction
from apps.audit.services import AnyActor, audit_record
from apps.common.errors import ValidationFailed
from apps.recordings.models import RecordingFile, Snapshot
from apps.recordings.selectors import (
    recording_files_past_retention,
    retention_cutoff,
    snapshots_past_retention,
)

# --- Retention ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PurgeItem:
    """One media file past the retention period: removed, or (dry run) to be removed."""

    what: str  # a RecordingFileKind value, or "snapshot"
    path: str
    sha256: str
    call: str
    visit: str
    closed_at: str


def _expired_under_lock(closed_at: Any, cutoff: Any) -> bool:
    return closed_at is not None and closed_at < cutoff


def recording_file_purge(*, actor: AnyActor, file_id: int, cutoff: Any, retention_days: int) -> PurgeItem | None:
    """Remove one recording file of a service closed before ``cutoff``; keep its row and hash, marked purged.

    Returns None (and touches nothing) when the file is already purged or its
    service is not past the period — checked again under the row lock, so a
    run that raced with a change never removes a file inside the period.
    """
    with transaction.atomic(durable=True):
        item = (
            RecordingFile.objects.select_for_update(of=("self",))
            .select_related("recording__call__visit")
            .filter(pk=file_id)
            .first()
        )
        if item is None or item.purged_at is not None:
            return None
        visit = item.recording.call.visit
        if not _expired_under_lock(visit.closed_at, cutoff):
            return None
        # Durable: this removal and its mark commit together, on their own
        # (recordings_purge_expired runs outside any transaction).
        # The removal runs inside the transaction, before the row is marked, on
        # purpose: if it fails the row stays unpurged and the next run tries
        # again; if the commit fails after it, the next run finds the file
        # already gone (removing a missing file is not an error) and marks it.
        # Marking first and removing on commit could claim a removal that never happened.
        if item.in_storage:
            default_storage.delete(item.path)
        else:
            Path(item.path).unlink(missing_ok=True)  # a Janus original on the media server's disk
        item.purged_at = timezone.now()
        item.save(update_fields=["purged_at"])
        purged = PurgeItem(
            what=item.kind,
            path=item.path,
            sha256=item.sha256,
            call=str(item.recording.call.public_id),
            visit=str(visit.public_id),
            closed_at=visit.closed_at.isoformat() if visit.closed_at else "",
        )
        audit_record(
            actor=actor,
            action=AuditAction.RECORDING_FILE_PURGED,
            target=item.recording,
            data={
                "file": item.pk,
                "kind": item.kind,
                "path": item.path,
                "sha256": item.sha256,
                "bytes": item.size_bytes,
                "call": purged.call,
                "visit": purged.visit,
                "closed_at": purged.closed_at,
                "retention_days": retention_days,
            },
        )
    return purged


def snapshot_purge(*, actor: AnyActor, snapshot_id: int, cutoff: Any, retention_days: int) -> PurgeItem | None:
    """Remove one snapshot image of a service closed before ``cutoff``; keep its row and hash, marked purged."""
    with transaction.atomic(durable=True):
        snapshot = (
            Snapshot.objects.select_for_update(of=("self",))
            .select_related("call__visit")
            .filter(pk=snapshot_id)
            .first()
        )
        if snapshot is None or snapshot.purged_at is not None:
            return None
        visit = snapshot.call.visit
        if not _expired_under_lock(visit.closed_at, cutoff):
            return None
        name = str(snapshot.image.name)
        default_storage.delete(name)  # inside the transaction: see recording_file_purge
        snapshot.purged_at = timezone.now()
        snapshot.save(update_fields=["purged_at"])
        purged = PurgeItem(
            what="snapshot",
            path=name,
            sha256=snapshot.sha256,
            call=str(snapshot.call.public_id),
            visit=str(visit.public_id),
            closed_at=visit.closed_at.isoformat() if visit.closed_at else "",
        )
        audit_record(
            actor=actor,
            action=AuditAction.SNAPSHOT_PURGED,
            target=snapshot,
            data={
                "snapshot": str(snapshot.public_id),
                "path": name,
                "sha256": snapshot.sha256,
                "call": purged.call,
                "visit": purged.visit,
                "closed_at": purged.closed_at,
                "retention_days": retention_days,
            },
        )
    return purged


def recordings_purge_expired(
    *, actor: AnyActor, retention_days: int, now: Any = None, dry_run: bool = False
) -> list[PurgeItem]:
    """Remove every media file of services closed more than ``retention_days`` ago (R3.2 "kept").

    One transaction and one audit record per file, so a long run that stops
    half-way leaves every removal it did recorded. ``dry_run`` only lists
    what would be removed (and writes nothing).
    """
    if retention_days < 1:
        raise ValidationFailed(_("The retention period must be at least one day."), code="retention_too_short")
    cutoff = retention_cutoff(now=now or timezone.now(), days=retention_days)
    files = list(recording_files_past_retention(cutoff=cutoff))
    snapshots = list(snapshots_past_retention(cutoff=cutoff))
    if dry_run:
        return [
            PurgeItem(
                what=item.kind,
                path=item.path,
                sha256=item.sha256,
                call=str(item.recording.call.public_id),
                visit=str(item.recording.call.visit.public_id),
                closed_at=item.recording.call.visit.closed_at.isoformat()
                if item.recording.call.visit.closed_at
                else "",
            )
            for item in files
        ] + [
            PurgeItem(
                what="snapshot",
                path=str(snapshot.image.name),
                sha256=snapshot.sha256,
                call=str(snapshot.call.public_id),
                visit=str(snapshot.call.visit.public_id),
                closed_at=snapshot.call.visit.closed_at.isoformat() if snapshot.call.visit.closed_at else "",
            )
            for snapshot in snapshots
        ]
    removed: list[PurgeItem] = []
    for item in files:
        done = recording_file_purge(actor=actor, file_id=item.pk, cutoff=cutoff, retention_days=retention_days)
        if done is not None:
            removed.append(done)
    for snapshot in snapshots:
        done = snapshot_purge(actor=actor, snapshot_id=snapshot.pk, cutoff=cutoff, retention_days=retention_days)
        if done is not None:
            removed.append(done)
    return removed
