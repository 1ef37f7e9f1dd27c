"""Every write of the recordings app: post-processing, re-runs, verification, snapshots.

Post-processing (``recording_process``) is long and runs in a Celery task on
the ``media`` queue. It holds no transaction while media tools run: a short
transaction starts the attempt, the work happens in a temporary folder,
then a short transaction records the files and their hashes (with one audit
record per file) and finishes, compare-and-set on the attempt number. It is
safe to deliver twice: a done recording is left as it is, and a redelivered
task that finds the recording ``processing`` starts a newer attempt whose
files are the only ones recorded. Originals are only read, never moved or
deleted.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import TransitionNotAllowed

from apps.audit.actions import AuditAction
from apps.audit.services import Actor, AnyActor, audit_record
from apps.calls.models import Call, CallEndReason, CallParticipant, CallState, ParticipantRole
from apps.calls.selectors import call_recording_files
from apps.common.errors import ApplicationError, NotAllowed, NotFound, PermissionDenied, ValidationFailed
from apps.common.hashing import sha256_of_file, sha256_of_stream
from apps.common.images import ImageRejected, image_to_jpeg_bytes, load_untrusted_image
from apps.recordings.integrations.media import (
    CompositeInput,
    MediaToolError,
    compose,
    media_duration,
    mjr_convert,
    mjr_header,
    mux_participant,
)
from apps.recordings.models import Recording, RecordingFile, RecordingFileKind, RecordingState, Snapshot
from apps.staff.models import StaffProfile

logger = logging.getLogger(__name__)

RECORDINGS_WORKER = Actor.system("recordings")


class RecordingNotReady(ApplicationError):
    """Janus is still writing (``.mjr.tmp`` files): the task retries later."""

    status_code = 409
    default_code = "recording_not_ready"


# --- Scheduling --------------------------------------------------------------------------


def recording_schedule(*, call: Call) -> Recording:
    """Create the call's recording (pending) and queue its post-processing after commit. Idempotent."""
    recording, created = Recording.objects.get_or_create(call=call)
    if created:
        audit_record(
            actor=RECORDINGS_WORKER,
            action=AuditAction.RECORDING_SCHEDULED,
            target=recording,
            data={"call": str(call.public_id), "folder": call.record_dir},
        )
        _enqueue_on_commit(call.pk)
    return recording


def _enqueue_on_commit(call_id: int) -> None:
    from apps.recordings.tasks import recording_process_task

    transaction.on_commit(lambda: recording_process_task.delay(call_id))


@transaction.atomic
def recording_reprocess(*, actor: AnyActor, recording_id: int) -> Recording:
    """Put a failed recording back to pending and queue its post-processing again."""
    recording = _locked(recording_id)
    try:
        recording.retry()
    except TransitionNotAllowed as exc:
        raise NotAllowed(
            _("Only a failed post-processing can be re-run."),
            code="recording_not_failed",
            extra={"state": recording.state},
        ) from exc
    recording.save()
    audit_record(
        actor=actor,
        action=AuditAction.RECORDING_REPROCESS_REQUESTED,
        target=recording,
        data={"previous_error": recording.error[:500], "attempts": recording.attempts},
    )
    _enqueue_on_commit(recording.call_id)
    return recording


def _locked(recording_id: int) -> Recording:
    try:
        return Recording.objects.select_for_update(of=("self",)).select_related("call").get(pk=recording_id)
    except Recording.DoesNotExist as exc:
        raise NotFound(_("This recording does not exist."), code="recording_not_found") from exc


# --- Post-processing ---------------------------------------------------------------------


@dataclass
class _Produced:
    """A file made (or read) by one attempt, before it is recorded."""

    kind: RecordingFileKind
    path: str
    in_storage: bool
    sha256: str
    size_bytes: int
    participant_id: int | None = None
    feed_id: int | None = None
    duration_seconds: float | None = None
    first_write_us: int | None = None
    role: str = ""


@dataclass
class _Feed:
    feed_id: int
    participant_id: int | None
    role: str
    tracks: dict[str, tuple[Path, int]] = field(default_factory=dict)  # kind -> (converted file, first write µs)


def recording_process(*, call_id: int) -> Recording:
    """Convert, align, mux and compose the call's recordings; hash and store everything. Idempotent.

    Returns the recording: ``done`` with its files, or ``failed`` with the
    error (a media tool's own message) for a person to read and re-run.
    """
    recording, attempt = _begin(call_id)
    if attempt is None:
        return recording
    call = recording.call
    stored: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix=f"recording-{call.public_id}-") as temporary:
            produced, duration = _produce(recording, attempt, Path(temporary), stored)
            return _finish(recording.pk, attempt, produced=produced, duration=duration, stored=stored)
    except (MediaToolError, OSError) as failure:
        logger.warning("post-processing of call %s failed: %s", call.public_id, failure)
        for name in stored:
            default_storage.delete(name)
        return _fail(recording.pk, attempt, error=str(failure))
    except (OperationalError, InterfaceError):
        # A database blip: the task retries, and the retry (finding the
        # recording still processing) starts a newer attempt.
        for name in stored:
            default_storage.delete(name)
        raise
    except Exception as bug:
        # Not a media problem: fail visibly (re-runnable) and let the worker log the traceback.
        for name in stored:
            default_storage.delete(name)
        _fail(recording.pk, attempt, error=f"internal error: {type(bug).__name__}: {bug}")
        raise


@transaction.atomic
def _begin(call_id: int) -> tuple[Recording, int | None]:
    call = Call.objects.filter(pk=call_id).first()
    if call is None:
        raise NotFound(_("This call does not exist."), code="call_not_found")
    Recording.objects.get_or_create(call=call)
    recording = Recording.objects.select_for_update(of=("self",)).select_related("call", "call__visit").get(call=call)
    if recording.state in (RecordingState.DONE, RecordingState.FAILED):
        # Done: nothing to redo. Failed: only an explicit re-run (recording_reprocess) restarts it.
        return recording, None
    if call.state != CallState.ENDED:
        raise RecordingNotReady(_("The call is still going on."), code="call_not_ended")
    folder = Path(call.record_dir)
    writer_gone = call.end_reason == CallEndReason.MEDIA_SERVER_FAILED
    if not writer_gone and folder.is_dir() and any(path.name.endswith(".mjr.tmp") for path in folder.iterdir()):
        # Janus closes (and renames) recordings when the room is destroyed,
        # which happens after the call ended: come back later.
        raise RecordingNotReady(_("Janus is still writing the recordings."), code="recording_files_open")
    recording.start(now=timezone.now())
    recording.save()
    audit_record(
        actor=RECORDINGS_WORKER,
        action=AuditAction.RECORDING_STARTED,
        target=recording,
        data={"attempt": recording.attempts},
    )
    return recording, recording.attempts


def _progress(recording_id: int, attempt: int, percent: int) -> None:
    # Committed at once (no transaction is open while media tools run), so
    # the back office sees it; only the newest attempt may report.
    Recording.objects.filter(pk=recording_id, attempts=attempt, state=RecordingState.PROCESSING).update(
        progress=min(99, percent)
    )


def _hashed(source: Path, **values: Any) -> _Produced:
    sha256, size = sha256_of_file(source)
    return _Produced(sha256=sha256, size_bytes=size, **values)


def _produce(
    recording: Recording, attempt: int, workdir: Path, stored: list[str]
) -> tuple[list[_Produced], float | None]:
    call = recording.call
    # A Janus that died never closes its recordings: what it wrote is all there is.
    originals = call_recording_files(call=call, include_unclosed=call.end_reason == CallEndReason.MEDIA_SERVER_FAILED)
    produced: list[_Produced] = []
    if not originals:
        if call.connected_at is None:
            return produced, None  # the call never connected: nothing was recorded, nothing is missing
        raise MediaToolError(f"no finished recording files in {call.record_dir}")
    feeds: dict[int, _Feed] = {}
    steps = len(originals) * 2 + 2
    done = 0
    for original in originals:
        header = mjr_header(original.path)
        produced.append(
            _hashed(
                original.path,
                kind=RecordingFileKind.ORIGINAL_MJR,
                path=str(original.path.resolve()),
                in_storage=False,
                participant_id=original.participant_id,
                feed_id=original.feed_id,
                first_write_us=header.first_write_us,
                role=original.role or "",
            )
        )
        feed = feeds.setdefault(
            original.feed_id,
            _Feed(original.feed_id, original.participant_id, original.role or "unknown"),
        )
        if header.kind in feed.tracks:
            raise MediaToolError(f"feed {original.feed_id} has two {header.kind} recordings")
        target = workdir / f"{original.feed_id}-{header.kind}.{'opus' if header.kind == 'audio' else 'webm'}"
        mjr_convert(original.path, target)
        feed.tracks[header.kind] = (target, header.first_write_us)
        done += 1
        _progress(recording.pk, attempt, 100 * done // steps)
    call_start_us = min(first for feed in feeds.values() for _path, first in feed.tracks.values())
    composite_inputs: list[CompositeInput] = []
    duration = 0.0
    for feed in feeds.values():
        common: dict[str, Any] = {"participant_id": feed.participant_id, "feed_id": feed.feed_id, "role": feed.role}
        feed_start_us = min(first for _path, first in feed.tracks.values())
        audio, audio_first = feed.tracks.get("audio", (None, feed_start_us))
        video, video_first = feed.tracks.get("video", (None, feed_start_us))
        for kind, path in ((RecordingFileKind.PARTICIPANT_AUDIO, audio), (RecordingFileKind.PARTICIPANT_VIDEO, video)):
            if path is not None:
                seconds = media_duration(path)
                first = audio_first if path is audio else video_first
                duration = max(duration, (first - call_start_us) / 1e6 + seconds)
                produced.append(_store(call, attempt, path, kind=kind, seconds=seconds, stored=stored, **common))
        muxed = workdir / f"{feed.feed_id}-{feed.role}.mkv"
        mux_participant(
            audio=audio,
            audio_offset=(audio_first - feed_start_us) / 1e6,
            video=video,
            video_offset=(video_first - feed_start_us) / 1e6,
            target=muxed,
        )
        produced.append(
            _store(
                call,
                attempt,
                muxed,
                kind=RecordingFileKind.PARTICIPANT_MUXED,
                seconds=media_duration(muxed),
                stored=stored,
                **common,
            )
        )
        composite_inputs.append(
            CompositeInput(
                label=feed.role,
                video=video,
                video_offset=(video_first - call_start_us) / 1e6,
                audio=audio,
                audio_offset=(audio_first - call_start_us) / 1e6,
            )
        )
        done += 1
        _progress(recording.pk, attempt, 100 * done // steps)
    # Customer first, then agent, then experts: the same layout in every evidence file.
    order: dict[str, int] = {ParticipantRole.CUSTOMER: 0, ParticipantRole.AGENT: 1, ParticipantRole.EXPERT: 2}
    composite_inputs.sort(key=lambda item: order.get(item.label, 3))
    composite = workdir / f"call-{call.public_id}.webm"
    compose(
        inputs=composite_inputs,
        duration=duration,
        caption=f"服务编号 Service no. {call.visit.public_id}\n通话 Call {call.public_id}",
        epoch_seconds=call_start_us / 1e6,
        target=composite,
        workdir=workdir,
    )
    produced.append(
        _store(
            call,
            attempt,
            composite,
            kind=RecordingFileKind.COMPOSITE,
            seconds=media_duration(composite),
            stored=stored,
            role="",
        )
    )
    return produced, duration


def _store(
    call: Call, attempt: int, path: Path, *, kind: RecordingFileKind, seconds: float, stored: list[str], **values: Any
) -> _Produced:
    """Hash the local file, then save it in the default storage under the call's folder."""
    item = _hashed(path, kind=kind, path="", in_storage=True, duration_seconds=seconds, **values)
    # The attempt number in the name: an older attempt still running can
    # never overwrite (or delete) the files of a newer one.
    name = f"recordings/{call.public_id}/attempt-{attempt}/{path.name}"
    if default_storage.exists(name):
        default_storage.delete(name)  # our own output from a crashed run of this same attempt
    with path.open("rb") as handle:
        item.path = default_storage.save(name, File(handle, name=path.name))
    stored.append(item.path)
    return item


@transaction.atomic
def _finish(
    recording_id: int, attempt: int, *, produced: list[_Produced], duration: float | None, stored: list[str]
) -> Recording:
    recording = _locked(recording_id)
    if recording.state != RecordingState.PROCESSING or recording.attempts != attempt:
        # A newer attempt owns the recording: drop this attempt's outputs.
        names = list(stored)
        transaction.on_commit(lambda: _delete_outputs(names))
        return recording
    for item in produced:
        RecordingFile.objects.create(
            recording=recording,
            kind=item.kind,
            participant_id=item.participant_id,
            feed_id=item.feed_id,
            path=item.path,
            in_storage=item.in_storage,
            size_bytes=item.size_bytes,
            sha256=item.sha256,
            duration_seconds=item.duration_seconds,
            first_write_us=item.first_write_us,
        )
        audit_record(
            actor=RECORDINGS_WORKER,
            action=AuditAction.RECORDING_FILE_HASHED,
            target=recording,
            data={
                "kind": item.kind.value,
                "path": item.path,
                "sha256": item.sha256,
                "bytes": item.size_bytes,
                "role": item.role,
                "feed": item.feed_id,
            },
        )
    recording.finish(now=timezone.now(), duration_seconds=duration)
    recording.save()
    if attempt > 1:
        # An earlier attempt whose worker died mid-way (tests/faults) left the
        # files it had stored so far; no row names them. An earlier attempt
        # still running cannot record its files any more (compare-and-set
        # above) and deletes its own outputs when it notices.
        folder = f"recordings/{recording.call.public_id}"
        transaction.on_commit(lambda: _delete_older_attempts(folder, attempt))
    audit_record(
        actor=RECORDINGS_WORKER,
        action=AuditAction.RECORDING_COMPLETED,
        target=recording,
        data={
            "attempt": attempt,
            "duration": duration,
            "files": [{"kind": item.kind.value, "path": item.path, "sha256": item.sha256} for item in produced],
        },
    )
    return recording


def _delete_outputs(names: list[str]) -> None:
    for name in names:
        default_storage.delete(name)


def _delete_older_attempts(folder: str, newest: int) -> None:
    try:
        attempt_folders, _files = default_storage.listdir(folder)
    except FileNotFoundError:
        return
    for name in attempt_folders:
        number = name.removeprefix("attempt-")
        if number.isdigit() and int(number) < newest:
            _subfolders, files = default_storage.listdir(f"{folder}/{name}")
            _delete_outputs([f"{folder}/{name}/{file}" for file in files])
            default_storage.delete(f"{folder}/{name}")  # the emptied folder (a no-op on object storages)


@transaction.atomic
def _fail(recording_id: int, attempt: int, *, error: str) -> Recording:
    recording = _locked(recording_id)
    if recording.state != RecordingState.PROCESSING or recording.attempts != attempt:
        return recording
    recording.fail(now=timezone.now(), error=error[:2000])
    recording.save()
    audit_record(
        actor=RECORDINGS_WORKER,
        action=AuditAction.RECORDING_FAILED,
        target=recording,
        data={"attempt": attempt, "error": error[:500]},
    )
    return recording


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


# --- Snapshots (R5) ----------------------------------------------------------------------


def snapshot_capture(*, actor: User, call_id: int, image_bytes: bytes) -> Snapshot:
    """Store a frame of the customer's video, captured by a staff participant of the live call."""
    image_format_error: ImageRejected | None = None
    try:
        image = load_untrusted_image(image_bytes)
    except ImageRejected as rejected:
        image_format_error = rejected
    with transaction.atomic():
        call = Call.objects.select_for_update(of=("self",)).filter(pk=call_id).first()
        if call is None:
            raise NotFound(_("This call does not exist."), code="call_not_found")
        staff = StaffProfile.objects.filter(user=actor).first()
        if staff is None or not CallParticipant.objects.filter(call=call, staff=staff).exists():
            raise PermissionDenied(_("Only staff in this call can capture the customer."), code="not_in_call")
        if call.state == CallState.ENDED:
            raise NotAllowed(_("The call is already over."), code="call_ended")
        customer = CallParticipant.objects.filter(call=call, role=ParticipantRole.CUSTOMER).first()
        if customer is None:
            raise NotAllowed(_("This call has no customer."), code="no_customer")
        if image_format_error is not None:
            raise ValidationFailed(
                _("The captured image was refused: %(reason)s") % {"reason": image_format_error.message},
                code=f"image_{image_format_error.code}",
            )
        jpeg = image_to_jpeg_bytes(image)
        sha256 = hashlib.sha256(jpeg).hexdigest()
        snapshot = Snapshot(
            public_id=uuid.uuid4(),
            call=call,
            participant=customer,
            taken_by=actor,
            sha256=sha256,
            width=image.width,
            height=image.height,
            taken_at=timezone.now(),
        )
        snapshot.image.save(f"{snapshot.public_id}.jpg", ContentFile(jpeg), save=False)
        stored_name = str(snapshot.image.name)
        try:
            snapshot.save()
            audit_record(
                actor=actor,
                action=AuditAction.SNAPSHOT_CAPTURED,
                target=snapshot,
                data={
                    "snapshot": str(snapshot.public_id),
                    "call": str(call.public_id),
                    "sha256": sha256,
                    "bytes": len(jpeg),
                },
            )
        except Exception:
            default_storage.delete(stored_name)
            raise
    return snapshot


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
    with transaction.atomic():
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
    with transaction.atomic():
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
    from apps.recordings.selectors import (
        recording_files_past_retention,
        retention_cutoff,
        snapshots_past_retention,
    )

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


# --- Playback and download ---------------------------------------------------------------


@transaction.atomic
def snapshot_view_record(*, actor: AnyActor, snapshot: Snapshot) -> None:
    """Audit one opening of a stored snapshot image."""
    audit_record(
        actor=actor,
        action=AuditAction.SNAPSHOT_VIEWED,
        target=snapshot,
        data={"snapshot": str(snapshot.public_id), "call": str(snapshot.call.public_id), "sha256": snapshot.sha256},
    )


@transaction.atomic
def recording_file_access_record(*, actor: AnyActor, item: RecordingFile, download: bool, byte_range: str) -> None:
    """Audit one playback (first range request) or download of a stored recording file."""
    audit_record(
        actor=actor,
        action=AuditAction.RECORDING_DOWNLOADED if download else AuditAction.RECORDING_PLAYED,
        target=item.recording,
        data={"file": item.pk, "kind": item.kind, "path": item.path, "sha256": item.sha256, "range": byte_range},
    )


def recordings_pending_enqueue() -> int:
    """Queue the task for every pending recording of an ended call whose room is closed; returns how many."""
    from apps.recordings.tasks import recording_process_task

    call_ids = list(
        Recording.objects.filter(
            state=RecordingState.PENDING, call__state=CallState.ENDED, call__room_open=False
        ).values_list("call_id", flat=True)
    )
    for call_id in call_ids:
        recording_process_task.delay(call_id)
    return len(call_ids)
