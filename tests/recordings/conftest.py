"""Real recordings for the recordings tests: one two-party call through a real Janus, recorded once.

The Janus-in-a-namespace harness is the calls tests' (tests/calls/conftest.py):
two aiortc peers (tests/calls/peer.py) publish synthetic audio and video into
one room at the same time, Janus records them into .mjr files, and each test
copies those files into the folder of a call of its own.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from apps.calls.models import Call, CallEndReason, CallParticipant, ParticipantRole
from apps.calls.services import call_hang_up
from apps.customers.models import Customer
from apps.queueing.models import QueueEntry
from apps.queueing.services.configuration import service_queue_upsert
from apps.recordings.models import Recording, RecordingFile, RecordingFileKind, RecordingState
from apps.staff.models import StaffProfile
from apps.visits.models import Visit
from tests.calls.conftest import CI, JanusHarness, janus, network_namespace  # noqa: F401 - fixture reused
from tests.calls.recording_files import closed_recordings
from tests.conftest import SYSTEM
from tests.factories import visit_with_gate1

PUBLISH_SECONDS = 4


def _unavailable(reason: str) -> None:
    if CI:
        pytest.fail(f"CI=true requires a real Janus for the recordings tests, but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def janus_netns() -> Iterator[str]:
    """Our own namespace for the calls harness' ``janus`` fixture (which asks for ``janus_netns`` by name).

    Not the calls tests' one: when both folders run in one session, each
    starts its own Janus, with the same fixed ports, so they need separate
    namespaces (their own ``rbtest<pid>`` and this ``rbrec<pid>``).
    """
    with network_namespace("rbrec", _unavailable) as name:
        yield name


def require_tool(name: str) -> None:
    if shutil.which(name) is None:
        if CI:
            pytest.fail(f"CI=true but `{name}` is not installed", pytrace=False)
        pytest.skip(f"`{name}` is not installed")


@dataclass(frozen=True)
class RecordedCall:
    room_id: int
    folder: Path
    customer_feed: int
    agent_feed: int
    seconds: float


@pytest.fixture(scope="session")
def recorded_call(janus: JanusHarness, tmp_path_factory: pytest.TempPathFactory) -> RecordedCall:  # noqa: F811
    """Customer and agent publish together for PUBLISH_SECONDS; the agent joins ~0.5 s later."""
    for tool in ("janus-pp-rec", "ffmpeg", "ffprobe"):
        require_tool(tool)
    room_id = secrets.randbelow(2**52) + 1
    folder = tmp_path_factory.mktemp("recorded-call")
    (create,) = janus.run(
        [
            {
                "op": "room",
                "method": "create_room",
                "kwargs": {"room_id": room_id, "secret": "s", "description": "rec", "record_dir": str(folder)},
            }
        ]
    )
    assert "ok" in create, create

    def publish(display: str, delay: float) -> dict[str, Any]:
        import time

        time.sleep(delay)
        (result,) = janus.run(
            [
                {
                    "op": "publish",
                    "room_id": room_id,
                    "session_token": janus.session_token(),
                    "room_token": janus.room_token(room_id),
                    "display": display,
                    "seconds": PUBLISH_SECONDS,
                }
            ]
        )
        assert "ok" in result, result
        return dict(result["ok"])

    with ThreadPoolExecutor(2) as pool:
        customer = pool.submit(publish, "customer", 0.0)
        agent = pool.submit(publish, "agent", 0.5)
        customer_report, agent_report = customer.result(), agent.result()
    (destroy,) = janus.run([{"op": "room", "method": "destroy_room", "kwargs": {"room_id": room_id, "secret": "s"}}])
    assert "ok" in destroy, destroy
    files = closed_recordings(folder, timeout=20)
    assert len([path for path in files if path.suffix == ".mjr"]) == 4, files
    return RecordedCall(
        room_id=room_id,
        folder=folder,
        customer_feed=int(customer_report["participant_id"]),
        agent_feed=int(agent_report["participant_id"]),
        seconds=PUBLISH_SECONDS,
    )


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks: Callable[..., Any]) -> Callable[..., Any]:
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def make_live_call(
    db: None, agent: User, make_customer: Callable[..., Customer], tmp_path: Path, settings: Any
) -> Callable[..., Call]:
    """A connected call between a customer and ``agent``, optionally with a real recording's files."""
    settings.JANUS_RECORDINGS_DIR = str(tmp_path / "recordings")
    queue = service_queue_upsert(actor=SYSTEM, code="activation", name="激活", businesses=["activation"])

    def make(recorded: RecordedCall | None = None) -> Call:
        customer = make_customer()
        visit = visit_with_gate1(
            business_code="activation", mobile=customer.mobile, customer=customer, state="queue_ready"
        )
        now = timezone.now()
        entry = QueueEntry.objects.create(
            visit=visit,
            queue=queue,
            business_code="activation",
            level=customer.level,
            enqueued_at=now - timedelta(minutes=1),
            priority_key=0.0,
        )
        call = Call(visit=visit, entry=entry, janus_server="test-janus")
        if recorded is not None:
            call.room_id = recorded.room_id
        call.record_dir = str(tmp_path / "recordings" / str(call.public_id))
        call.connect(now)
        call.save()
        staff = StaffProfile.objects.get(user=agent)
        CallParticipant.objects.create(
            call=call, role=ParticipantRole.CUSTOMER, janus_feed_id=recorded.customer_feed if recorded else None
        )
        CallParticipant.objects.create(
            call=call, role=ParticipantRole.AGENT, staff=staff, janus_feed_id=recorded.agent_feed if recorded else None
        )
        if recorded is not None:
            shutil.copytree(recorded.folder, call.record_dir)
        return call

    return make


@pytest.fixture
def hang_up(on_commit: Callable[..., Any], agent: User) -> Callable[[Call], Call]:
    """The agent hangs up; the post-processing task runs (eagerly) after commit."""

    def end(call: Call) -> Call:
        participant = CallParticipant.objects.get(call=call, role=ParticipantRole.AGENT)
        with on_commit():
            call_hang_up(call_id=call.pk, actor=agent, participant=participant)
        call.refresh_from_db()
        return call

    return end


@dataclass(frozen=True)
class StoredService:
    """A closed service with one ended call and its processed recording (a small composite in storage)."""

    visit: Visit
    call: Call
    recording: Recording
    composite: RecordingFile
    content: bytes


@pytest.fixture
def make_recorded_service(
    db: None, make_customer: Callable[..., Customer], settings: Any, tmp_path: Path
) -> Callable[..., StoredService]:
    """Services as the recordings search sees them, without running Janus: rows plus a stored evidence file.

    The evidence file's bytes are arbitrary (these tests are about who sees
    what and the filters, not about media); tests of the media itself use
    ``recorded_call``.
    """
    settings.JANUS_RECORDINGS_DIR = str(tmp_path / "recordings")
    queue = service_queue_upsert(
        actor=SYSTEM, code="activation", name="激活", businesses=["activation", "password_reset"]
    )
    counter = iter(range(1, 10_000))

    def make(
        *,
        agent: User,
        expert: User | None = None,
        customer: Customer | None = None,
        business: str = "activation",
        outcome: str = "completed",
        started_at: datetime | None = None,
        closed_at: datetime | None = None,
        state: RecordingState = RecordingState.DONE,
    ) -> StoredService:
        number = next(counter)
        customer = customer or make_customer()
        now = timezone.now()
        started_at = started_at or now - timedelta(minutes=30)
        visit = visit_with_gate1(
            business_code=business,
            mobile=customer.mobile,
            customer=customer,
            state="queue_ready",
            outcome=outcome,
            closed_at=closed_at if closed_at is not None else (started_at + timedelta(minutes=10) if outcome else None),
        )
        entry = QueueEntry.objects.create(
            visit=visit,
            queue=queue,
            business_code=business,
            level=customer.level,
            enqueued_at=started_at,
            priority_key=0.0,
        )
        call = Call(visit=visit, entry=entry, janus_server="test-janus")
        call.record_dir = str(tmp_path / "recordings" / str(call.public_id))
        call.connect(started_at)
        call.end(started_at + timedelta(minutes=5), CallEndReason.AGENT_HUNG_UP)
        call.save()
        Call.objects.filter(pk=call.pk).update(created_at=started_at)  # auto_now_add: set the past explicitly
        call.refresh_from_db()
        # The call has ended, and ending a call sets every seat's left_at (one live seat per staff member).
        CallParticipant.objects.create(call=call, role=ParticipantRole.CUSTOMER, left_at=call.ended_at)
        CallParticipant.objects.create(
            call=call, role=ParticipantRole.AGENT, staff=StaffProfile.objects.get(user=agent), left_at=call.ended_at
        )
        if expert is not None:
            CallParticipant.objects.create(
                call=call,
                role=ParticipantRole.EXPERT,
                staff=StaffProfile.objects.get(user=expert),
                left_at=call.ended_at,
            )
        recording = Recording.objects.create(
            call=call,
            state=state,
            attempts=1,
            progress=100 if state == RecordingState.DONE else 40,
            error="janus-pp-rec: exit 1" if state == RecordingState.FAILED else "",
            duration_seconds=300.0,
        )
        content = f"evidence of service {number} ".encode() * 400
        name = default_storage.save(
            f"recordings/{call.public_id}/attempt-1/call-{call.public_id}.webm", ContentFile(content)
        )
        composite = RecordingFile.objects.create(
            recording=recording,
            kind=RecordingFileKind.COMPOSITE,
            path=name,
            in_storage=True,
            size_bytes=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            duration_seconds=300.0,
        )
        return StoredService(visit, call, recording, composite, content)

    return make
