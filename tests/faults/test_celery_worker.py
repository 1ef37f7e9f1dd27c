"""A Celery worker killed in the middle of a task: the task is redelivered and its result applied once.

Each case starts a real ``celery worker`` on the Redis broker and the test
database, lets a real task begin (the real OCR, the real media tools), and
stops the worker mid-way at a deterministic point: the test holds a row lock
the task needs (the visit's, the recording's) and waits until PostgreSQL shows
the worker's connection waiting on it. Then the whole worker (main and pool
process) gets SIGKILL, as when its machine is lost: nobody acknowledges or
rejects the message, which stays in the broker's unacknowledged set. A new
worker, whose visibility timeout is short (REMOTEBANK_CELERY_VISIBILITY_TIMEOUT,
remotebank/settings/celery.py), takes it back and runs the task again; the
service's compare-and-set makes the result land exactly once: one state
change, one audit record, and an audit chain that verifies.

A case is one ``InterruptedTask`` entry: how to start the task, which row its
last transaction locks, and how to recognise the result applied once. The
cases: the OCR of Gate 1, the post-processing of a call's recordings, and the
face verification of Gate 3.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Model

from apps.audit.actions import AuditAction
from apps.audit.models import AuditRecord
from apps.calls.models import Call, CallParticipant, ParticipantRole
from apps.calls.services import call_hang_up
from apps.recordings.models import Recording, RecordingState
from apps.verification.models import Verification, VerificationState
from apps.verification.services import verification_id_card_upload, verification_start
from remotebank.celery import app as celery_app
from tests.calls.conftest import janus, network_namespace  # noqa: F401 - fixture reused
from tests.faults.conftest import HeldLock, Processes, assert_audit_chain_verifies, wait_until
from tests.fixtures.cardgen import CardPerson, Degradation, face_photos, generate_id_card_front, make_id_number
from tests.gates.conftest import janus_control, janus_settings, make_in_call, on_commit, registry  # noqa: F401 - fixtures reused
from tests.recordings.conftest import RecordedCall, make_live_call, recorded_call  # noqa: F401 - fixtures reused

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]

# Generous: two cores shared with other work; the real OCR model loads in a new worker.
WORKER_SECONDS = 90


@pytest.fixture(scope="session")
def janus_netns() -> Iterator[str]:
    """A namespace of this module's own for the recorded call's Janus (each importer of ``janus`` starts one)."""
    with network_namespace("rbfcw") as name:
        yield name


@dataclass(frozen=True)
class Started:
    """A task on its way: the row its final transaction locks, and how to read the outcome."""

    locked_model: type[Model]
    locked_pk: int
    # True once the task is far enough to be interrupted (its first writes committed).
    interruptible: Callable[[], bool]
    # True once the result has been applied (by whichever delivery).
    applied: Callable[[], bool]
    # Asserts the result landed exactly once.
    applied_once: Callable[[], None]


@dataclass(frozen=True)
class InterruptedTask:
    name: str
    queue: str
    # Receives a fixture getter (request.getfixturevalue); makes the data and
    # enqueues the task (on commit, to the Redis broker).
    start: Callable[[Callable[[str], Any]], Started]
    # Short enough for the test, and longer than the task's run on the new
    # worker, which would otherwise take back the message it is running itself
    # (the run would merely repeat, a no-op, but the test could not tell when
    # the broker is done).
    visibility_timeout: int = 15


# --- OCR of an ID card photo (Gate 1) --------------------------------------------------------

PERSON = CardPerson(
    name="王秀英",
    sex="F",
    ethnicity="汉",
    birth_date=date(1985, 7, 2),
    address="山东省滨海市市北区辽宁路101号",
    id_number=make_id_number(region="370203", birth=date(1985, 7, 2), seq=228, sex="F"),
)


def _start_ocr(fixture: Callable[[str], Any]) -> Started:
    fixture("settings").GATE1_UPLOAD_COOLDOWN_SECONDS = 0
    photo = generate_id_card_front(PERSON, face_photos()[0], degrade=Degradation(rotate_deg=3, jpeg_quality=70))
    gate1 = verification_start(business_code="activation", mobile="13912340001")
    visit = gate1.visit
    verification_id_card_upload(visit_id=visit.pk, data=photo)  # commits; the OCR task goes to the broker

    def state() -> str:
        return str(Verification.objects.values_list("state", flat=True).get(pk=gate1.pk))

    def applied_once() -> None:
        gate1.refresh_from_db()
        assert gate1.state == VerificationState.ID_CARD_READ
        assert gate1.read_name == PERSON.name and gate1.read_id_number == PERSON.id_number
        reads = AuditRecord.objects.filter(action=AuditAction.VISIT_ID_CARD_READ, target_id=str(visit.pk))
        assert reads.count() == 1

    return Started(
        locked_model=Verification,
        locked_pk=gate1.pk,
        interruptible=lambda: state() == VerificationState.ID_CARD_PROCESSING,
        applied=lambda: state() != VerificationState.ID_CARD_PROCESSING,
        applied_once=applied_once,
    )


# --- Post-processing of a call's recordings ---------------------------------------------------


def _start_recording(fixture: Callable[[str], Any]) -> Started:
    recorded: RecordedCall = fixture("recorded_call")
    agent: User = fixture("agent")
    call: Call = fixture("make_live_call")(recorded)
    participant = CallParticipant.objects.get(call=call, role=ParticipantRole.AGENT)
    call_hang_up(call_id=call.pk, actor=agent, participant=participant)  # commits; the task goes to the broker
    recording = Recording.objects.get(call=call)

    def current() -> Recording:
        return Recording.objects.get(pk=recording.pk)

    def applied_once() -> None:
        done = current()
        assert done.state == RecordingState.DONE, done.error
        # The killed attempt never recorded a file: 4 originals, 3 per participant, 1 composite.
        assert done.files.count() == 4 + 2 * 3 + 1
        completed = AuditRecord.objects.filter(action=AuditAction.RECORDING_COMPLETED, target_id=str(done.pk))
        assert completed.count() == 1
        assert completed.get().data["attempt"] == done.attempts >= 2
        hashed = AuditRecord.objects.filter(action=AuditAction.RECORDING_FILE_HASHED, target_id=str(done.pk))
        assert hashed.count() == done.files.count()
        # The killed attempt's half-made outputs are removed from storage
        # (by the worker, just after the commit that recorded the new ones).
        stored = Path(settings.MEDIA_ROOT) / "recordings" / str(call.public_id)
        wait_until(
            lambda: sorted(path.name for path in stored.iterdir()) == [f"attempt-{done.attempts}"],
            timeout=10,
            what=f"only attempt-{done.attempts} left in {stored}",
        )

    return Started(
        locked_model=Recording,
        locked_pk=recording.pk,
        # Mid-way: every original converted and the first participant's files
        # stored (progress is committed as each step ends, 10 steps here).
        interruptible=lambda: current().state == RecordingState.PROCESSING and current().progress >= 50,
        applied=lambda: current().state != RecordingState.PROCESSING,
        applied_once=applied_once,
    )


# --- Face verification (Gate 3) ----------------------------------------------------------------


def _start_face(fixture: Callable[[str], Any]) -> Started:
    from apps.gates.models import AttemptStatus, GateAttempt, GateProgress, GateState
    from apps.gates.services import gate_face_verify_start, gate_identity_check_run, gate_identity_check_start
    from tests.gates.conftest import capture, person_photos

    kit = 2  # the face set's third person: three photos well within the threshold
    # The call (dispatch, room) and Gate 2 (the test's sandbox registry) run
    # here, in the test process; only the face task goes to the broker.
    celery_app.conf.task_always_eager = True
    try:
        in_call = fixture("make_in_call")(person=kit)
        agent = in_call.agent.user
        identity = gate_identity_check_start(actor=agent, call_id=in_call.call.pk)
        gate_identity_check_run(attempt_id=identity.pk)
        snapshot = capture(in_call, person_photos(kit)[2])
    finally:
        celery_app.conf.task_always_eager = False
    face = gate_face_verify_start(actor=agent, call_id=in_call.call.pk, snapshot_public_id=str(snapshot.public_id))

    def status() -> str:
        return str(GateAttempt.objects.values_list("status", flat=True).get(pk=face.pk))

    def applied_once() -> None:
        assert status() == AttemptStatus.PASSED
        assert GateProgress.objects.get(pk=face.progress_id).state == GateState.QUESTIONS
        finished = AuditRecord.objects.filter(
            action=AuditAction.GATE_ATTEMPT_FINISHED, target_id=str(in_call.visit.pk), data__gate="face"
        )
        assert finished.count() == 1

    return Started(
        # The verdict is applied under the progress row's lock, after the model ran.
        locked_model=GateProgress,
        locked_pk=face.progress_id,
        interruptible=lambda: status() == AttemptStatus.RUNNING,
        applied=lambda: status() != AttemptStatus.RUNNING,
        applied_once=applied_once,
    )


CASES = [
    InterruptedTask(name="ocr_read_id_card", queue="ocr", start=_start_ocr),
    InterruptedTask(name="recording_process_task", queue="media", start=_start_recording, visibility_timeout=30),
    InterruptedTask(name="gate_face_verify_task", queue="face", start=_start_face, visibility_timeout=40),
]


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    """The test's Redis database, with tasks sent to it (not run in the test process)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield client
    finally:
        celery_app.conf.task_always_eager = eager
        client.close()


def _start_worker(processes: Processes, name: str, queue: str, pool: str, **env: str) -> None:
    processes.start(
        name,
        ["-m", "celery", "-A", "remotebank", "worker", "-Q", queue, "--concurrency=1", "--pool=prefork",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO", f"--hostname={name}@%h"],
        REMOTEBANK_CELERY_POOL=pool,
        **env,
    )  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_a_task_whose_worker_is_killed_mid_way_is_redelivered_and_applied_once(
    case: InterruptedTask, processes: Processes, broker: redis.Redis, request: pytest.FixtureRequest
) -> None:
    pool = f"fault-{uuid.uuid4().hex[:8]}"
    unacked = f"unacked:{pool}"
    broker.delete(case.queue)  # nothing left over from an earlier run
    _start_worker(processes, "first", case.queue, pool)

    started = case.start(request.getfixturevalue)
    wait_until(
        started.interruptible, timeout=WORKER_SECONDS, what=f"the first worker to start: {processes.log('first')}"
    )
    lock = HeldLock.row(started.locked_model, started.locked_pk)
    try:
        wait_until(lock.blocked, timeout=WORKER_SECONDS, what=f"the worker to reach the row: {processes.log('first')}")
        first = processes.started[0][1]
        processes.kill(first)
        # Killed before its result was applied; the message waits, unacknowledged.
        assert not started.applied()
        assert broker.hlen(unacked) == 1
    finally:
        lock.release()

    _start_worker(
        processes,
        "second",
        case.queue,
        pool,
        REMOTEBANK_CELERY_VISIBILITY_TIMEOUT=str(case.visibility_timeout),
        REMOTEBANK_CELERY_RESTORE_INTERVAL="1",
    )
    wait_until(started.applied, timeout=WORKER_SECONDS, what=f"the task to be redelivered: {processes.log('second')}")
    started.applied_once()
    wait_until(
        lambda: broker.hlen(unacked) == 0 and broker.llen(case.queue) == 0,
        timeout=30,
        what="the redelivered message to be acknowledged",
    )
    assert_audit_chain_verifies()
