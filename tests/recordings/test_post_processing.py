"""Post-processing of a real two-party Janus recording (R3.2): files, alignment, hashes, re-runs, verification."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction

from apps.audit.models import AuditRecord
from apps.calls.models import Call, ParticipantRole
from apps.recordings.models import Recording, RecordingFile, RecordingFileKind, RecordingState
from apps.recordings.services.processing import recording_process, recording_reprocess
from tests.conftest import SYSTEM
from tests.recordings.conftest import RecordedCall
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db


def _probe(data: bytes, suffix: str, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / f"probe{suffix}"
    path.write_bytes(data)
    completed = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_type,codec_name,start_time,width,height",
         "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def _stream_times(data: bytes, suffix: str, tmp_path: Path) -> dict[str, tuple[float, float]]:
    """(first, last) presentation time in seconds of each stream's packets, from ffprobe."""
    path = tmp_path / f"packets{suffix}"
    path.write_bytes(data)
    completed = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "packet=codec_type,pts_time,duration_time",
         "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    times: dict[str, tuple[float, float]] = {}
    for packet in json.loads(completed.stdout)["packets"]:
        if packet.get("pts_time") in (None, "N/A"):
            continue
        start = float(packet["pts_time"])
        end = start + float(packet.get("duration_time") or 0)
        kind = packet["codec_type"]
        first, last = times.get(kind, (start, end))
        times[kind] = (min(first, start), max(last, end))
    return times


def _stored_bytes(item: RecordingFile) -> bytes:
    if item.in_storage:
        with default_storage.open(item.path, "rb") as handle:
            return bytes(handle.read())
    return Path(item.path).read_bytes()


def _hash_records(recording: Recording) -> dict[str, str]:
    return {
        record.data["path"]: record.data["sha256"]
        for record in AuditRecord.objects.filter(action="recordings.file.hashed", target_id=str(recording.pk))
    }


def test_an_ended_call_is_post_processed_into_per_participant_files_and_one_evidence_file(
    recorded_call: RecordedCall,
    make_live_call: Callable[..., Call],
    hang_up: Callable[[Call], Call],
    tmp_path: Path,
) -> None:
    call = hang_up(make_live_call(recorded_call))
    recording = Recording.objects.get(call=call)
    assert recording.state == RecordingState.DONE, recording.error
    assert recording.progress == 100 and recording.attempts == 1
    files = list(recording.files.select_related("participant"))
    kinds = sorted((item.kind, item.participant.role if item.participant else None) for item in files)
    assert kinds == sorted(
        [(RecordingFileKind.ORIGINAL_MJR, role) for role in ("customer", "customer", "agent", "agent")]
        + [(kind, role) for role in ("customer", "agent") for kind in ("participant_audio", "participant_video", "participant_muxed")]
        + [(RecordingFileKind.COMPOSITE, None)]
    )  # fmt: skip

    # Every file's SHA-256 is right, and it is in the audit trail.
    audited = _hash_records(recording)
    for item in files:
        actual = hashlib.sha256(_stored_bytes(item)).hexdigest()
        assert item.sha256 == actual, item.path
        assert audited[item.path] == actual, item.path
    # Originals are where Janus wrote them, untouched.
    originals = [item for item in files if item.kind == RecordingFileKind.ORIGINAL_MJR]
    assert {Path(item.path).parent for item in originals} == {Path(call.record_dir).resolve()}
    assert len(list(Path(call.record_dir).glob("*.mjr"))) == 4

    # Outputs live only in Django's storage: the test storage keeps them in memory, so had
    # anything written them to a filesystem path instead, they would be on disk (and not in it).
    for item in files:
        if item.kind != RecordingFileKind.ORIGINAL_MJR:
            assert item.in_storage and default_storage.exists(item.path)
            assert not Path(default_storage.path(item.path)).exists()

    # The evidence file: both participants side by side, mixed audio, as long as the call.
    composite = next(item for item in files if item.kind == RecordingFileKind.COMPOSITE)
    probe = _probe(_stored_bytes(composite), Path(composite.path).suffix, tmp_path)
    streams = {stream["codec_type"]: stream for stream in probe["streams"]}
    assert streams["video"]["width"] == 2 * 480 and streams["video"]["height"] == 360
    assert streams["audio"]["codec_name"] == "opus"
    # The call lasted from the first packet of the first participant (customer) to the last of the
    # last one: the agent started later (Janus' first-write times) and both published PUBLISH_SECONDS.
    first_writes = [item.first_write_us for item in originals if item.first_write_us is not None]
    call_seconds = (max(first_writes) - min(first_writes)) / 1e6 + recorded_call.seconds
    assert abs(float(probe["format"]["duration"]) - call_seconds) < 0.5, (probe["format"], call_seconds)
    assert recording.duration_seconds is not None
    assert abs(float(probe["format"]["duration"]) - recording.duration_seconds) < 0.5
    # Picture and sound of the evidence file in step: both streams start together and end together.
    composite_streams = _stream_times(_stored_bytes(composite), Path(composite.path).suffix, tmp_path)
    assert abs(composite_streams["video"][0] - composite_streams["audio"][0]) < 0.1, composite_streams
    assert abs(composite_streams["video"][1] - composite_streams["audio"][1]) < 0.1, composite_streams

    # Per participant: audio and video aligned on the recordings' first-write times.
    for role in (ParticipantRole.CUSTOMER, ParticipantRole.AGENT):
        mine = {item.kind: item for item in files if item.participant and item.participant.role == role}
        audio_first = next(
            i.first_write_us for i in originals if i.participant and i.participant.role == role and "-audio-" in i.path
        )
        video_first = next(
            i.first_write_us for i in originals if i.participant and i.participant.role == role and "-video-" in i.path
        )
        assert audio_first is not None and video_first is not None
        muxed = _probe(_stored_bytes(mine[RecordingFileKind.PARTICIPANT_MUXED]), ".mkv", tmp_path)
        starts = {stream["codec_type"]: float(stream["start_time"]) for stream in muxed["streams"]}
        offset = starts["video"] - starts["audio"]
        assert abs(offset - (video_first - audio_first) / 1e6) < 0.1, (role, starts, audio_first, video_first)
        assert abs(float(muxed["format"]["duration"]) - recorded_call.seconds) < 0.5, muxed["format"]

    assert AuditRecord.objects.filter(action="recordings.recording.completed", target_id=str(recording.pk)).count() == 1


def test_running_the_post_processing_twice_changes_nothing(
    recorded_call: RecordedCall, make_live_call: Callable[..., Call], hang_up: Callable[[Call], Call]
) -> None:
    call = hang_up(make_live_call(recorded_call))
    recording = Recording.objects.get(call=call)
    assert recording.state == RecordingState.DONE, recording.error
    before = list(RecordingFile.objects.filter(recording=recording).values_list("path", "sha256").order_by("pk"))
    audit_count = AuditRecord.objects.count()

    again = recording_process(call_id=call.pk)

    assert again.state == RecordingState.DONE and again.attempts == 1
    assert (
        list(RecordingFile.objects.filter(recording=recording).values_list("path", "sha256").order_by("pk")) == before
    )
    assert AuditRecord.objects.count() == audit_count


def test_a_corrupted_recording_fails_visibly_and_can_be_re_run(
    recorded_call: RecordedCall,
    make_live_call: Callable[..., Call],
    hang_up: Callable[[Call], Call],
    on_commit: Callable[..., Any],
    supervisor: Any,
) -> None:
    call = make_live_call(recorded_call)
    video = next(Path(call.record_dir).glob("*-video-*.mjr"))
    good = video.read_bytes()
    video.write_bytes(b"this is not a Janus recording" * 10)

    call = hang_up(call)

    recording = Recording.objects.get(call=call)
    assert recording.state == RecordingState.FAILED
    assert "janus-pp-rec" in recording.error and video.name in recording.error
    assert not recording.files.exists()
    failed = AuditRecord.objects.get(action="recordings.recording.failed", target_id=str(recording.pk))
    assert failed.data["error"] == recording.error[:500]
    # The original is never deleted by post-processing, even the broken one.
    assert video.exists()

    video.write_bytes(good)  # e.g. restored from the media server's backup
    with on_commit():
        recording_reprocess(actor=supervisor, recording_id=recording.pk)

    recording.refresh_from_db()
    assert recording.state == RecordingState.DONE, recording.error
    assert recording.attempts == 2 and recording.error == ""
    assert recording.files.filter(kind=RecordingFileKind.COMPOSITE).count() == 1
    assert AuditRecord.objects.filter(
        action="recordings.recording.reprocess_requested", target_id=str(recording.pk)
    ).exists()


def test_only_a_failed_post_processing_can_be_re_run(
    make_live_call: Callable[..., Call], hang_up: Callable[[Call], Call]
) -> None:
    # A call that never connected has nothing to process: done, with no files.
    call = make_live_call()
    Call.objects.filter(pk=call.pk).update(connected_at=None)
    call = hang_up(Call.objects.get(pk=call.pk))
    recording = Recording.objects.get(call=call)
    assert recording.state == RecordingState.DONE and not recording.files.exists()
    from apps.common.errors import NotAllowed

    with pytest.raises(NotAllowed):
        recording_reprocess(actor=SYSTEM, recording_id=recording.pk)


def test_a_rerun_commits_on_its_own_and_refuses_to_run_inside_another_transaction() -> None:
    # Nested in a caller's transaction, the re-run (and the task it queues
    # after commit) would depend on that caller committing: it is durable.
    with transaction.atomic(), pytest.raises(RuntimeError, match="durable"):
        recording_reprocess(actor=SYSTEM, recording_id=0)


def test_a_connected_call_without_recording_files_fails(
    make_live_call: Callable[..., Call], hang_up: Callable[[Call], Call]
) -> None:
    call = hang_up(make_live_call())
    recording = Recording.objects.get(call=call)
    assert recording.state == RecordingState.FAILED
    assert "no finished recording files" in recording.error


def test_recordings_verify_names_a_modified_file(
    recorded_call: RecordedCall, make_live_call: Callable[..., Call], hang_up: Callable[[Call], Call], capsys: Any
) -> None:
    call = hang_up(make_live_call(recorded_call))
    recording = Recording.objects.get(call=call)
    assert recording.state == RecordingState.DONE, recording.error
    call_command("recordings_verify", "--call", str(call.public_id))
    assert "11 recording files match" in capsys.readouterr().out

    muxed = recording.files.filter(kind=RecordingFileKind.PARTICIPANT_MUXED).first()
    assert muxed is not None
    content = bytearray(_stored_bytes(muxed))
    content[len(content) // 2] ^= 0xFF
    default_storage.delete(muxed.path)
    default_storage.save(muxed.path, ContentFile(bytes(content)))
    original = recording.files.filter(kind=RecordingFileKind.ORIGINAL_MJR).first()
    assert original is not None
    with Path(original.path).open("ab") as handle:
        handle.write(b"\0")

    with pytest.raises(CommandError, match="2 of 11"):
        call_command("recordings_verify", "--call", str(call.public_id))
    err = capsys.readouterr().err
    assert f"MISMATCH {muxed.path}" in err and f"MISMATCH {original.path}" in err
    verified = AuditRecord.objects.filter(action="recordings.recording.verified").order_by("-sequence").first()
    assert verified is not None
    assert {item["path"] for item in verified.data["mismatches"]} == {muxed.path, original.path}


def test_a_supervisor_re_runs_a_failed_post_processing_through_the_api_and_a_compliance_officer_cannot(
    agent: Any,
    make_live_call: Callable[..., Call],
    hang_up: Callable[[Call], Call],
    make_staff: Callable[..., Any],
    client: Any,
    on_commit: Callable[..., Any],
) -> None:
    from django.urls import reverse

    from apps.staff.models import StaffProfile
    from apps.staff.roles import Role
    from apps.staff.services import staff_member_upsert

    recording = Recording.objects.get(call=hang_up(make_live_call()))
    assert recording.state == RecordingState.FAILED
    url = reverse("recordings:reprocess", args=[recording.pk])

    force_login_verified(client, make_staff(Role.COMPLIANCE_OFFICER))
    assert client.post(url).status_code == 403

    # A supervisor of another team does not even see it; the agent's own supervisor re-runs it.
    force_login_verified(client, make_staff(Role.SUPERVISOR, "other_supervisor"))
    assert client.post(url).status_code == 404
    supervisor = make_staff(Role.SUPERVISOR)
    member = StaffProfile.objects.get(user=agent)
    staff_member_upsert(
        actor=SYSTEM,
        username=agent.username,
        employee_number=member.employee_number,
        display_name=member.display_name,
        role=Role.AGENT,
        branch=member.branch,
        supervisor=StaffProfile.objects.get(user=supervisor),
    )
    force_login_verified(client, supervisor)
    with on_commit():
        response = client.post(url)
    assert response.status_code == 202
    recording.refresh_from_db()
    # Still no files on disk: it ran again (attempt 2) and failed again, visibly.
    assert recording.state == RecordingState.FAILED and recording.attempts == 2
    assert client.post(url).status_code == 202  # failed again, so it may be re-run again


def test_a_recording_still_being_written_stays_pending_until_the_files_are_closed(
    make_live_call: Callable[..., Call], hang_up: Callable[[Call], Call], capsys: Any
) -> None:
    call = make_live_call()
    folder = Path(call.record_dir)
    folder.mkdir(parents=True)
    still_open = folder / f"videoroom-{call.room_id}-user-1-1-audio-0.mjr.tmp"
    still_open.write_bytes(b"")

    call = hang_up(call)

    recording = Recording.objects.get(call=call)
    assert recording.state == RecordingState.PENDING and recording.attempts == 0
    still_open.unlink()  # Janus closed it (and, here, it held nothing)
    call_command("recordings_process_pending")
    assert "1 pending recordings queued" in capsys.readouterr().out
    recording.refresh_from_db()
    assert recording.state == RecordingState.FAILED and recording.attempts == 1
