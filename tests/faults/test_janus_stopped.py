"""Janus killed in the middle of a call: the call ends with a reason, the partial recording is
post-processed, and the customer queues again at the front.

A real call: the customer and the agent go through the queue and the offer,
the platform opens the recorded room on a real Janus (in its network
namespace, reached through tests/faults/bridge.py as a dispatcher reaches
its servers), two aiortc peers publish under the participants' handles, and
Janus' own events (forwarded from the harness' collector to the platform's
event endpoint) make the call ``connected``. Then Janus gets SIGKILL: no
event, no closed file. The dispatcher's round notices (``calls_media_servers_check``
pings each server with open rooms) and ends the call ``media_server_failed``;
the recordings Janus left open (``.mjr.tmp``) are kept and post-processed
into evidence; the customer's "join the queue" puts them ahead of a
private-banking customer who joined meanwhile; the trail verifies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client

from apps.audit.actions import AuditAction
from apps.audit.models import AuditRecord
from apps.calls.models import Call, CallEndReason, CallParticipant, CallState
from apps.calls.services import call_room_open
from apps.customers.models import Customer, CustomerLevel
from apps.queueing.models import AgentPresence, AgentState, EndReason, EntryState, QueueEntry
from apps.queueing.selectors import entry_position
from apps.queueing.services.agents import agent_state_set
from apps.queueing.services.configuration import service_queue_upsert
from apps.queueing.services.entries import queue_entry_enqueue
from apps.queueing.services.housekeeping import dispatcher_tick
from apps.queueing.services.offers import dispatch_queue, offer_accept
from apps.recordings.models import Recording, RecordingFileKind, RecordingState
from apps.recordings.services.processing import recording_process
from apps.staff.models import StaffProfile
from apps.verification.models import VerificationState
from apps.visits.authentication import SESSION_KEY
from apps.visits.models import Visit
from remotebank.celery import app as celery_app
from tests.calls.conftest import PEER, ROOT, WS_PORT, JanusHarness, janus, network_namespace  # noqa: F401
from tests.conftest import SYSTEM
from tests.factories import visit_with_gate1
from tests.faults.conftest import assert_audit_chain_verifies, free_port, wait_until
from tests.recordings.conftest import require_tool

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]

EVENTS_SECRET = "fault-events-secret"
PUBLISH_SECONDS = 30  # longer than the test: Janus dies first
WAIT = 60


@pytest.fixture(scope="session")
def janus_netns() -> Iterator[str]:
    """A namespace (and so a Janus, the calls harness' ``janus``) of this module's own: the test kills it."""
    with network_namespace("rbfjs") as name:
        yield name


@pytest.fixture
def janus_bridge(janus: JanusHarness, tmp_path: Path) -> Iterator[int]:  # noqa: F811
    """A host port that reaches the namespace's Janus API (port 8188)."""
    socket_path = tmp_path / "janus.sock"
    halves = [
        ["ip", "netns", "exec", janus.netns, sys.executable, "tests/faults/bridge.py", "inside",
         "--unix", str(socket_path), "--port", str(WS_PORT)],
        [sys.executable, "tests/faults/bridge.py", "outside", "--unix", str(socket_path), "--port", str(port := free_port())],
    ]  # fmt: skip
    started = []
    try:
        for command in halves:
            process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            started.append(process)
            assert process.stdout is not None and process.stdout.readline().strip() == b"ready"
        yield port
    finally:
        for process in started:
            process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()


@pytest.fixture
def platform(settings: Any, janus: JanusHarness, janus_bridge: int, tmp_path: Path) -> Iterator[None]:  # noqa: F811
    """The platform configured with this Janus; tasks go to the broker and the test runs them as a worker would."""
    server = janus.server
    settings.JANUS_SERVERS = [
        {
            "name": server.name,
            "ws_url": f"ws://127.0.0.1:{janus_bridge}",
            "public_ws_url": server.public_ws_url,
            "admin_api_url": "",
            "api_secret": server.api_secret,
            "admin_secret": server.admin_secret,
            "admin_key": server.admin_key,
            "token_secret": server.token_secret,
        }
    ]
    settings.JANUS_RECORDINGS_DIR = str(tmp_path / "recordings")
    settings.JANUS_EVENTS_SECRET = EVENTS_SECRET
    settings.CALL_MEDIA_SERVER_CHECK_SECONDS = 0
    settings.CALL_MEDIA_SERVER_FAILURE_SECONDS = 0
    # Not eager: ending the call schedules closing its room, which retries
    # against the dead Janus; a worker would do that in the background.
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = eager
        # Nobody consumes what was sent; leave the test Redis database clean.
        with redis.Redis.from_url(settings.REDIS_URL) as broker:
            broker.delete("default", "media")


def _queued_visit(customer: Customer) -> Visit:
    return visit_with_gate1(
        business_code="activation", mobile=customer.mobile, customer=customer, state=VerificationState.QUEUE_READY
    )


def _customer_browser(visit: Visit) -> Client:
    session = SessionStore()
    session[SESSION_KEY] = visit.pk
    session.create()
    browser = Client()
    browser.cookies["sessionid"] = str(session.session_key)
    return browser


def _publish(janus: JanusHarness, call: Call, participant: CallParticipant) -> subprocess.Popen[str]:  # noqa: F811
    step = {
        "op": "publish",
        "room_id": call.room_id,
        "session_token": janus.session_token(),
        "room_token": janus.room_token(call.room_id),
        "display": participant.handle,
        "seconds": PUBLISH_SECONDS,
        "url": janus.server.public_ws_url,
        "server": janus.server_dict,
    }
    process = subprocess.Popen(
        ["ip", "netns", "exec", janus.netns, sys.executable, str(PEER), "steps"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    assert process.stdin is not None
    process.stdin.write(json.dumps([step]))
    process.stdin.close()
    return process


def _forward_events(janus: JanusHarness, forwarded: list[int]) -> None:  # noqa: F811
    """Post Janus' events, as its event handler would have, to the platform's endpoint."""
    events = janus.events()
    new = events[forwarded[0] :]
    forwarded[0] = len(events)
    if new:
        response = Client().post(
            f"/api/calls/janus-events/?secret={EVENTS_SECRET}", data=new, content_type="application/json"
        )
        assert response.status_code == 200, response.content


def test_a_call_whose_janus_dies_ends_keeps_its_recording_and_the_customer_comes_back_first(
    platform: None,
    janus: JanusHarness,  # noqa: F811
    make_customer: Callable[..., Customer],
    make_skilled_staff: Callable[..., StaffProfile],
) -> None:
    for tool in ("janus-pp-rec", "ffmpeg", "ffprobe"):
        require_tool(tool)
    queue = service_queue_upsert(actor=SYSTEM, code="activation", name="激活", businesses=["activation"])
    visit = _queued_visit(make_customer())
    entry = queue_entry_enqueue(visit_id=visit.pk)
    staff = make_skilled_staff()
    agent_state_set(actor=SYSTEM, staff=staff, state=AgentState.AVAILABLE)
    assert dispatch_queue(queue_id=queue.pk) is not None
    offer_accept(actor=staff.user, staff=staff, entry_id=entry.pk)
    call = Call.objects.get(entry=entry)
    call_room_open(call_id=call.pk)  # what call_room_open_task does
    call.refresh_from_db()
    assert call.room_open

    publishers = [_publish(janus, call, participant) for participant in call.participants.order_by("role")]
    try:
        forwarded = [0]

        def connected() -> bool:
            _forward_events(janus, forwarded)
            return Call.objects.get(pk=call.pk).state == CallState.CONNECTED

        wait_until(connected, timeout=WAIT, what=f"both to publish: {janus.log_tail()}", every=0.3)
        record_dir = Path(call.record_dir)

        def media_recorded() -> bool:
            videos = list(record_dir.glob("*-video-*.mjr.tmp"))
            return len(videos) == 2 and all(path.stat().st_size > 120_000 for path in videos)

        wait_until(media_recorded, timeout=WAIT, what="about two seconds of video from both (60 kB/s each)")
        dispatcher_tick()  # a live Janus answers: the call goes on
        assert Call.objects.get(pk=call.pk).state == CallState.CONNECTED
        # Meanwhile a private-banking customer joins (120 s of level bonus).
        later_visit = _queued_visit(make_customer(level=CustomerLevel.PRIVATE))
        later = queue_entry_enqueue(visit_id=later_visit.pk)

        os.kill(janus.process.pid, signal.SIGKILL)
        janus.process.wait(timeout=10)
    finally:
        for publisher in publishers:
            publisher.kill()
            publisher.wait()

    # The dispatcher's round notices the dead server.
    dispatcher_tick()
    call.refresh_from_db()
    assert call.state == CallState.ENDED and call.end_reason == CallEndReason.MEDIA_SERVER_FAILED
    ended = AuditRecord.objects.get(action=AuditAction.CALL_ENDED, target_id=str(call.pk))
    assert ended.data["reason"] == "media_server_failed" and "no answer" in ended.data["detail"]
    entry.refresh_from_db()
    assert entry.state == EntryState.SERVED and entry.end_reason == EndReason.CALL_FAILED
    assert AgentPresence.objects.get(staff=staff).state == AgentState.WRAP_UP

    # The recordings Janus never closed are kept and post-processed as they are.
    left_open = sorted(path.name for path in record_dir.glob("*.mjr.tmp"))
    assert len(left_open) == 4, left_open
    recording = recording_process(call_id=call.pk)  # what recording_process_task does
    assert recording.state == RecordingState.DONE, recording.error
    kinds = sorted(recording.files.values_list("kind", flat=True))
    assert kinds.count(RecordingFileKind.ORIGINAL_MJR) == 4
    assert kinds.count(RecordingFileKind.COMPOSITE) == 1
    assert recording.duration_seconds is not None and recording.duration_seconds >= 1.0
    assert sorted(path.name for path in record_dir.glob("*.mjr.tmp")) == left_open  # originals untouched
    assert Recording.objects.get(pk=recording.pk).files.count() == 4 + 2 * 3 + 1

    # The customer joins again, ahead of everyone waiting.
    response = _customer_browser(visit).post("/api/queueing/visit/join/")
    assert response.status_code == 201, response.content
    assert response.json()["state"] == "waiting" and response.json()["position"] == 1
    again = QueueEntry.objects.get(pk=response.json()["entry"])
    assert again.visit_id == visit.pk and again.enqueued_at == entry.enqueued_at  # the waited time is theirs
    assert entry_position(entry=QueueEntry.objects.get(pk=later.pk)) == 2
    rejoined = AuditRecord.objects.get(action=AuditAction.QUEUE_REJOINED, target_id=str(again.pk))
    assert rejoined.data == {"queue": "activation", "previous_entry": entry.pk, "reason": "call_failed"}
    assert_audit_chain_verifies()
