"""Evidence integrity: re-hashing every recorded file, and the audit of each playback and download."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from django.core.files.storage import default_storage
from django.db import transaction

from apps.audit.actions import AuditAction
from apps.audit.services import AnyActor, audit_record
from apps.common.hashing import sha256_of_file, sha256_of_stream
from apps.recordings.models import RecordingFile

# --- Verification ------------------------------------------------------------------------


@dataclass(frozen=True)
class HashMismatch:
    file_id: int
    path: str
    expected: str
    actual: str  # "" when the file is missing


def _current_hash(item: RecordingFile) -> str:
    if item.in_storage:
        with default_storage.open(item.path, "rb") as handle:
            return sha256_of_stream(handle)[0]
    return sha256_of_file(Path(item.path))[0]


def recording_files_verify(
    *, actor: AnyActor, call_public_id: uuid.UUID | None = None
) -> tuple[int, list[HashMismatch]]:
    """Re-hash every recorded file (originals and outputs); report the ones that changed or vanished."""
    # Files removed after the retention period are gone on purpose (audited as purged).
    files = RecordingFile.objects.filter(purged_at__isnull=True).select_related("recording__call").order_by("pk")
    if call_public_id is not None:
        files = files.filter(recording__call__public_id=call_public_id)
    mismatches: list[HashMismatch] = []
    checked = 0
    for item in files.iterator():
        checked += 1
        try:
            actual = _current_hash(item)
        except (FileNotFoundError, OSError):
            actual = ""
        if actual != item.sha256:
            mismatches.append(HashMismatch(item.pk, item.path, item.sha256, actual))
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=AuditAction.RECORDING_VERIFIED,
            data={
                "checked": checked,
                "call": str(call_public_id) if call_public_id else "",
                "mismatches": [
                    {"path": item.path, "expected": item.expected, "actual": item.actual} for item in mismatches
                ],
            },
        )
    return checked, mismatches


@transaction.atomic(durable=True)  # called by the playback API only
def recording_file_access_record(*, actor: AnyActor, item: RecordingFile, download: bool, byte_range: str) -> None:
    """Audit one playback (first range request) or download of a stored recording file."""
    audit_record(
        actor=actor,
        action=AuditAction.RECORDING_DOWNLOADED if download else AuditAction.RECORDING_PLAYED,
        target=item.recording,
        data={"file": item.pk, "kind": item.kind, "path": item.path, "sha256": item.sha256, "range": byte_range},
    )
