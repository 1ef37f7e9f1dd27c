"""Post-processing of a call's recordings: scheduling, processing, re-runs.

Post-processing (``recording_process``) is long and runs in a Celery task on
the ``media`` queue. It holds no transaction while media tools run: a short
transaction starts the attempt, the work happens in a temporary folder,
then a short transaction records the files and their hashes (with one audit
record per file) and finishes, compare-and-set on the attempt number. Those
short transactions are durable: each must really commit (progress and the
claim on the attempt are read by other workers), so none may run inside a
caller's transaction. It is
safe to deliver twice: a done recording is left as it is, and a redelivered
task that finds the recording ``processing`` starts a newer attempt whose
files are the only ones recorded. Originals are only read, never moved or
deleted.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import InterfaceError, OperationalError, models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.audit.actions import AuditAction
from apps.audit.services import Actor, AnyActor, audit_record
from apps.calls.models import Call, CallEndReason, CallState, ParticipantRole
from apps.calls.selectors import call_recording_files
from apps.common.errors import ApplicationError, NotAllowed, NotFound
from apps.common.fsm import fsm_step
from apps.common.locking import lock_object
from apps.common.transactions import call_on_commit, enqueue_on_commit
from apps.recordings.integrations.media import (
    COMPOSITE_CODEC,
    COMPOSITE_CODECS,
    FeedMedia,
    MediaFile,
    MediaToolError,
    Track,
    call_compose,
    call_duration,
    feed_mux,
    original_convert,
    original_read,
)
from apps.recordings.models import Recording, RecordingFile, RecordingFileKind, RecordingState

logger = logging.getLogger(__name__)

RECORDINGS_WORKER = Actor.system("recordings")


class RecordingNotReady(ApplicationError):
    """Janus is still writing (``.mjr.tmp`` files): the task retries later."""

    status_code = 409
    default_code = "recording_not_ready"


# --- Scheduling --------------------------------------------------------------------------


def recording_schedule(*, call: Call) -> Recording:
    """Create the call's recording (pending) and queue its post-processing after commit. Idempotent.

    Runs inside the transaction that ends the call (the ``call_ended``
    receiver), so it opens no durable transaction of its own.
    """
    recording, created = Recording.objects.get_or_create(call=call)
    if created:
        audit_record(
            actor=RECORDINGS_WORKER,
            action=AuditAction.RECORDING_SCHEDULED,
            target=recording,
            data={"call": str(call.public_id), "folder": call.record_dir},
        )
        _enqueue_processing(call.pk)
    return recording


def _enqueue_processing(call_id: int) -> None:
    from apps.recordings.tasks import recording_process_task  # the tasks module imports this one

    enqueue_on_commit(recording_process_task, call_id)


@transaction.atomic(durable=True)  # called by the re-run API only
def recording_reprocess(*, actor: AnyActor, recording_id: int) -> Recording:
    """Put a failed recording back to pending and queue its post-processing again."""
    recording = _locked(recording_id)
    fsm_step(recording.retry, now=timezone.now(), error=_not_failed)
    recording.save()
    audit_record(
        actor=actor,
        action=AuditAction.RECORDING_REPROCESS_REQUESTED,
        target=recording,
        data={"previous_error": recording.error[:500], "attempts": recording.attempts},
    )
    _enqueue_processing(recording.call_id)
    return recording


def _not_failed(recording: Recording) -> NotAllowed:
    return NotAllowed(
        _("Only a failed post-processing can be re-run."),
        code="recording_not_failed",
        extra={"state": recording.state},
    )


def _recording_not_found() -> NotFound:
    return NotFound(_("This recording does not exist."), code="recording_not_found")


def _locked(recording_id: int) -> Recording:
    return lock_object(Recording.objects, not_found=_recording_not_found, related=("call",), pk=recording_id)


# --- Post-processing ---------------------------------------------------------------------


@dataclass(frozen=True)
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
    """The tracks of one Janus feed (one publisher; a participant who rejoined has several)."""

    feed_id: int
    participant_id: int | None
    role: str
    tracks: dict[str, Track] = field(default_factory=dict)  # "audio" / "video" -> converted track


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


@transaction.atomic(durable=True)
def _begin(call_id: int) -> tuple[Recording, int | None]:
    call = Call.objects.filter(pk=call_id).first()
    if call is None:
        raise NotFound(_("This call does not exist."), code="call_not_found")
    Recording.objects.get_or_create(call=call)
    recording = lock_object(
        Recording.objects, not_found=_recording_not_found, related=("call", "call__visit"), call=call
    )
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


def _produce(
    recording: Recording, attempt: int, workdir: Path, stored: list[str]
) -> tuple[list[_Produced], float | None]:
    """Run the media pipeline on the call's Janus files; store each output as soon as it exists.

    The media work is ``apps.recordings.integrations.media``'s; here is what
    is ours: which files belong to whom, progress, storage names.
    """
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
        read = original_read(original.path)
        produced.append(
            _Produced(
                kind=RecordingFileKind.ORIGINAL_MJR,
                path=str(original.path.resolve()),
                in_storage=False,
                sha256=read.file.sha256,
                size_bytes=read.file.size_bytes,
                participant_id=original.participant_id,
                feed_id=original.feed_id,
                first_write_us=read.first_write_us,
                role=original.role or "",
            )
        )
        feed = feeds.setdefault(
            original.feed_id,
            _Feed(original.feed_id, original.participant_id, original.role or "unknown"),
        )
        if read.kind in feed.tracks:
            raise MediaToolError(f"feed {original.feed_id} has two {read.kind} recordings")
        feed.tracks[read.kind] = original_convert(read, name=str(original.feed_id), workdir=workdir)
        done += 1
        _progress(recording.pk, attempt, 100 * done // steps)
    call_start_us = min(track.first_write_us for feed in feeds.values() for track in feed.tracks.values())
    feed_media: list[FeedMedia] = []
    for feed in feeds.values():
        media = feed_mux(
            tracks=feed.tracks, name=str(feed.feed_id), label=feed.role, call_start_us=call_start_us, workdir=workdir
        )
        common: dict[str, Any] = {"participant_id": feed.participant_id, "feed_id": feed.feed_id, "role": feed.role}
        for kind, output in (
            (RecordingFileKind.PARTICIPANT_AUDIO, media.audio),
            (RecordingFileKind.PARTICIPANT_VIDEO, media.video),
            (RecordingFileKind.PARTICIPANT_MUXED, media.muxed),
        ):
            if output is not None:
                produced.append(_store(call, attempt, output, kind=kind, stored=stored, **common))
        feed_media.append(media)
        done += 1
        _progress(recording.pk, attempt, 100 * done // steps)
    # Customer first, then agent, then experts: the same layout in every evidence file.
    order: dict[str, int] = {ParticipantRole.CUSTOMER: 0, ParticipantRole.AGENT: 1, ParticipantRole.EXPERT: 2}
    feed_media.sort(key=lambda media: order.get(media.composite_input.label, 3))
    duration = call_duration(feed_media)
    composite = call_compose(
        feeds=feed_media,
        duration=duration,
        caption=f"服务编号 Service no. {call.visit.public_id}\n通话 Call {call.public_id}",
        call_start_us=call_start_us,
        target=workdir / f"call-{call.public_id}{COMPOSITE_CODECS[COMPOSITE_CODEC][0]}",
        workdir=workdir,
    )
    produced.append(_store(call, attempt, composite, kind=RecordingFileKind.COMPOSITE, stored=stored, role=""))
    return produced, duration


def _store(
    call: Call, attempt: int, output: MediaFile, *, kind: RecordingFileKind, stored: list[str], **values: Any
) -> _Produced:
    """Save a local output (already hashed) in the default storage under the call's folder."""
    # The attempt number in the name: an older attempt still running can
    # never overwrite (or delete) the files of a newer one.
    name = f"recordings/{call.public_id}/attempt-{attempt}/{output.path.name}"
    if default_storage.exists(name):
        default_storage.delete(name)  # our own output from a crashed run of this same attempt
    with output.path.open("rb") as handle:
        path = default_storage.save(name, File(handle, name=output.path.name))
    stored.append(path)
    return _Produced(
        kind=kind,
        path=path,
        in_storage=True,
        sha256=output.sha256,
        size_bytes=output.size_bytes,
        duration_seconds=output.duration_seconds,
        **values,
    )


@transaction.atomic(durable=True)
def _finish(
    recording_id: int, attempt: int, *, produced: list[_Produced], duration: float | None, stored: list[str]
) -> Recording:
    recording = _locked(recording_id)
    if recording.state != RecordingState.PROCESSING or recording.attempts != attempt:
        # A newer attempt owns the recording: drop this attempt's outputs.
        call_on_commit(_delete_outputs, list(stored))
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
        call_on_commit(_delete_older_attempts, f"recordings/{recording.call.public_id}", attempt)
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


@transaction.atomic(durable=True)
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


def _pending_of_ended_calls() -> models.QuerySet[Recording]:
    """Pending recordings whose call ended and whose Janus room is closed: ready to be tried."""
    return Recording.objects.filter(state=RecordingState.PENDING, call__state=CallState.ENDED, call__room_open=False)


def recordings_pending_enqueue() -> int:
    """Queue the task for every pending recording of an ended call whose room is closed; returns how many."""
    from apps.recordings.tasks import recording_process_task

    call_ids = list(_pending_of_ended_calls().values_list("call_id", flat=True))
    for call_id in call_ids:
        recording_process_task.delay(call_id)
    return len(call_ids)


# The longest interval between two looks at a pending recording (the task's own backoff cap).
PENDING_RETRY_MAX_SECONDS = 300
RECORDINGS_DEADLINE = Actor.system("recordings_deadline")


def recordings_pending_sweep(*, now: datetime | None = None) -> int:
    """Move on recordings left pending (``recordings_pending_enqueue`` on the dispatcher's clock).

    A recording stays pending when its task found Janus still writing the
    files and nothing retried it (eager Celery in embedded mode, or the
    task's own retries used up). Each one is queued again
    RECORDINGS_PENDING_RETRY_SECONDS after it became pending, then at
    doubling intervals (at most PENDING_RETRY_MAX_SECONDS apart); once it has
    waited RECORDINGS_PENDING_MAX_WAIT_SECONDS it fails with the reason
    (``files_not_ready``), for a person to re-run it. Called on every
    dispatcher round (``apps.common.signals.housekeeping_due``); returns how
    many were queued or failed.
    """
    now = now or timezone.now()
    first = timedelta(seconds=settings.RECORDINGS_PENDING_RETRY_SECONDS)
    max_wait = timedelta(seconds=settings.RECORDINGS_PENDING_MAX_WAIT_SECONDS)
    pending = Recording.objects.filter(state=RecordingState.PENDING, call__state=CallState.ENDED)
    # Past the maximum wait, whether or not Janus ever closed the room.
    overdue = list(pending.filter(pending_since__lt=now - max_wait).values_list("pk", flat=True))
    due = list(
        _pending_of_ended_calls()
        .filter(pending_since__gte=now - max_wait)
        .filter(models.Q(next_check_at__lte=now) | models.Q(next_check_at__isnull=True, pending_since__lte=now - first))
        .values_list("pk", flat=True)
    )
    moved = 0
    for recording_id in overdue + due:
        with transaction.atomic(durable=True):
            recording = (
                Recording.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(pk=recording_id, state=RecordingState.PENDING)
                .first()
            )
            if recording is None:
                continue  # started meanwhile, or another dispatcher has it
            waited = now - recording.pending_since
            if waited > max_wait:
                minutes = round(waited.total_seconds() / 60)
                recording.fail(
                    now=now,
                    error=f"Not post-processed: the call's recording files were still not ready after "
                    f"{minutes} minutes (Janus did not close them). Re-run it once they are complete.",
                )
                recording.save()
                audit_record(
                    actor=RECORDINGS_DEADLINE,
                    action=AuditAction.RECORDING_FAILED,
                    target=recording,
                    data={"reason": "files_not_ready", "waited_seconds": round(waited.total_seconds())},
                )
            else:
                interval = min(first.total_seconds() * 2 ** (recording.pending_checks + 1), PENDING_RETRY_MAX_SECONDS)
                recording.pending_checks += 1
                recording.next_check_at = now + timedelta(seconds=interval)
                recording.save(update_fields=["pending_checks", "next_check_at"])
                _enqueue_processing(recording.call_id)
            moved += 1
    return moved
