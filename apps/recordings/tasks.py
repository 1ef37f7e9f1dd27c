"""Celery tasks of the recordings app: thin, on the ``media`` queue (CELERY_TASK_ROUTES)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from apps.audit.services import Actor
from apps.recordings.services.processing import RecordingNotReady, recording_process
from apps.recordings.services.retention import recordings_purge_expired

NOT_READY_MAX_RETRIES = 8


# Retried on database blips (autoretry) and, with exponential backoff, while
# the call's files are not ready (Janus closes them when the room is
# destroyed, after the call ended). A media tool's failure is not retried:
# the recording turns failed with the tool's message and a person re-runs it.
# acks_late: a worker that dies mid-way leaves the message for another, which
# starts a newer attempt (the service is safe to run twice).
@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    max_retries=NOT_READY_MAX_RETRIES,
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    ignore_result=True,
)
def recording_process_task(self: Any, call_id: int) -> str:
    """Post-process the recordings of one ended call."""
    try:
        return str(recording_process(call_id=call_id).state)
    except RecordingNotReady as exc:
        if self.request.is_eager:
            # Embedded mode (no broker): an eager retry would run again at
            # once, in the request that ended the call. The recording stays
            # pending; the dispatcher's sweeper (recordings_pending_sweep) picks it up.
            return "not_ready"
        if self.request.retries >= NOT_READY_MAX_RETRIES:
            return "not_ready"  # still pending: the sweeper (recordings_pending_sweep) queues it again
        raise self.retry(exc=exc, countdown=min(300, 5 * 2**self.request.retries)) from exc


# Scheduled (Celery beat, or cron running the management command; docs/recordings.md).
# Each file is its own transaction, so a retried run only does what is left.
@shared_task(acks_late=True, autoretry_for=(OperationalError, InterfaceError), max_retries=3, ignore_result=True)
def recordings_purge_expired_task() -> int:
    """Remove the media files of services closed longer ago than RECORDINGS_RETENTION_DAYS; returns how many."""
    return len(
        recordings_purge_expired(
            actor=Actor.system("recordings_retention"), retention_days=settings.RECORDINGS_RETENTION_DAYS
        )
    )
