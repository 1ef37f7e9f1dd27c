"""Evidence integrity: re-hashing every stored evidence file, and the audit of each playback and download.

Evidence files are the recordings (originals and outputs), the snapshots of
the customer, and Gate 1's ID-card photo and portrait; each carries the
SHA-256 taken when it was written, and ``recording_files_verify`` re-hashes
them all.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import InvalidToken
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models.fields.files import FieldFile

from apps.audit.actions import AuditAction
from apps.audit.services import AnyActor, audit_record
from apps.common.hashing import sha256_of_file, sha256_of_stream
from apps.recordings.models import RecordingFile, Snapshot
from apps.verification.models import Verification

# --- Verification ------------------------------------------------------------------------


@dataclass(frozen=True)
class HashMismatch:
    file_id: int
    path: str
    expected: str
    actual: str  # "" when the file is missing
    kind: str = "recording"  # "recording", "snapshot", "id_card_photo", "id_card_portrait"


def _current_hash(item: RecordingFile) -> str:
    if item.in_storage:
        with default_storage.open(item.path, "rb") as handle:
            return sha256_of_stream(handle)[0]
    return sha256_of_file(Path(item.path))[0]


def _field_hash(field: FieldFile) -> str:
    """The SHA-256 of what the application reads from the file ("" if it is gone or no longer decrypts)."""
    try:
        with field.open("rb") as handle:
            return sha256_of_stream(handle)[0]
    except (FileNotFoundError, OSError, InvalidToken):
        # InvalidToken: an encrypted photo (Gate 1's) whose ciphertext was replaced or altered.
        return ""


def evidence_images_verify(
    *, actor: AnyActor, call_public_id: uuid.UUID | None = None
) -> tuple[int, list[HashMismatch]]:
    """Re-hash the snapshots and the ID-card images (of one call and its visit, or all); report changed or vanished ones.

    A file swapped for another (a mirrored snapshot, another person's ID
    card) no longer has the hash taken when it was written.
    """
    checked = 0
    mismatches: list[HashMismatch] = []
    snapshots = Snapshot.objects.filter(purged_at__isnull=True).exclude(image="").order_by("pk")
    verifications = Verification.objects.exclude(id_card_photo="", id_card_portrait="").order_by("pk")
    if call_public_id is not None:
        snapshots = snapshots.filter(call__public_id=call_public_id)
        verifications = verifications.filter(visit__calls__public_id=call_public_id)
    for snapshot in snapshots.iterator():
        checked += 1
        actual = _field_hash(snapshot.image)
        if actual != snapshot.sha256:
            mismatches.append(HashMismatch(snapshot.pk, snapshot.image.name or "", snapshot.sha256, actual, "snapshot"))
    for verification in verifications.iterator():
        for kind, field, expected in (
            ("id_card_photo", verification.id_card_photo, verification.id_card_photo_sha256),
            ("id_card_portrait", verification.id_card_portrait, verification.id_card_portrait_sha256),
        ):
            # Images stored before their hash was kept have nothing to compare with.
            if not field or not expected:
                continue
            checked += 1
            actual = _field_hash(field)
            if actual != expected:
                mismatches.append(HashMismatch(verification.pk, field.name or "", expected, actual, kind))
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=AuditAction.RECORDING_VERIFIED,
            data={
                "images": checked,
                "call": str(call_public_id) if call_public_id else "",
                "mismatches": [
                    {"kind": item.kind, "path": item.path, "expected": item.expected, "actual": item.actual}
                    for item in mismatches
                ],
            },
        )
    return checked, mismatches


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
