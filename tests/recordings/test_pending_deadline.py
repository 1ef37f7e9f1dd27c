"""A recording left waiting for its files is retried by the sweeper with backoff, and failed after the maximum wait."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from apps.audit.models import AuditRecord
from apps.calls.models import Call
from apps.queueing.services.housekeeping import dispatcher_tick
from apps.recordings.models import Recording, RecordingState
from apps.recordings.services.processing import recordings_pending_sweep

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _deadlines(settings: Any) -> None:
    settings.RECORDINGS_PENDING_RETRY_SECONDS = 30
    settings.RECORDINGS_PENDING_MAX_WAIT_SECONDS = 600


def _ended_with_files_still_open(make_live_call: Callable[..., Call], hang_up: Callable[[Call], Call]) -> Path:
    """A call hung up while Janus still writes its files: the (eager) task returns not_ready, nothing retries."""
    call = make_live_call()
    folder = Path(call.record_dir)
    folder.mkdir(parents=True)
    still_open = folder / f"videoroom-{call.room_id}-user-1-1-audio-0.mjr.tmp"
    still_open.write_bytes(b"")
    hang_up(call)
    recording = Recording.objects.get(call=call)
    assert (recording.state, recording.attempts) == (RecordingState.PENDING, 0)
    return still_open


def test_a_pending_recording_is_retried_with_backoff_until_its_files_are_closed(
    make_live_call: Callable[..., Call], hang_up: Callable[[Call], Call], on_commit: Callable[..., Any]
) -> None:
    still_open = _ended_with_files_still_open(make_live_call, hang_up)
    since = Recording.objects.get().pending_since

    def sweep(seconds: int) -> int:
        with on_commit():  # the eager task runs after commit, as in embedded mode
            return recordings_pending_sweep(now=since + timedelta(seconds=seconds))

    assert sweep(10) == 0  # not yet: Janus usually closes the files within seconds
    assert sweep(31) == 1  # retried; the files are still open
    assert Recording.objects.get().state == RecordingState.PENDING
    assert sweep(60) == 0  # the next try waits twice as long
    assert sweep(92) == 1
    assert Recording.objects.get().pending_checks == 2

    still_open.unlink()  # Janus closed it (and, here, it held nothing)
    assert sweep(300) == 1
    recording = Recording.objects.get()
    # It was processed: with no media in the folder it fails visibly, like any run.
    assert (recording.state, recording.attempts) == (RecordingState.FAILED, 1)


def test_a_recording_whose_files_never_close_fails_with_the_reason_after_the_maximum_wait(
    make_live_call: Callable[..., Call], hang_up: Callable[[Call], Call], on_commit: Callable[..., Any]
) -> None:
    _ended_with_files_still_open(make_live_call, hang_up)
    since = Recording.objects.get().pending_since
    with on_commit():
        dispatcher_tick(now=since + timedelta(seconds=601))
    recording = Recording.objects.get()
    assert recording.state == RecordingState.FAILED
    assert "not ready" in recording.error
    assert recording.attempts == 0
    record = AuditRecord.objects.get(action="recordings.recording.failed")
    assert record.data["reason"] == "files_not_ready"
