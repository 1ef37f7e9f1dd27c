"""A real Janus in a network namespace of its own, and a customer's camera publishing into a call's room.

The Django side runs in this test process, outside the namespace; the server
capture joins the namespace in its own thread (``MEDIA_CAPTURE_NETNS``, see
apps/calls/integrations/media_capture.py), as Daphne would run inside it on a
development machine. The peer (tests/live/live_peer.py) runs inside with
``ip netns exec``. The Janus events the peer causes are collected and posted
to the Django event endpoint, so the customer's feed id is what Janus said.

Namespace ``rblive<pid>`` (tests/calls uses ``rbtest<pid>``: the fixed ports
cannot collide). Under CI=true a missing piece fails, as in tests/calls.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.calls.integrations.janus import JanusServer
from apps.calls.janus_config import JanusConfigOptions, available_modules, debian_janus_lib_dir, write_janus_config
from apps.calls.models import Call
from tests.calls.conftest import (
    ADMIN_PORT,
    EVENTS_PORT,
    PEER,
    ROOT,
    WS_PORT,
    JanusHarness,
    _stop,
    _unavailable,
    _wait_for_port,
    janus_control,  # noqa: F401 - fixtures re-exported for the gates fixtures
    janus_settings,  # noqa: F401
    network_namespace,
)
from tests.gates.conftest import InCall, make_in_call, on_commit, registry  # noqa: F401 - fixtures re-exported

CI = os.environ.get("CI", "").lower() == "true"
LIVE_PEER = ROOT / "tests" / "live" / "live_peer.py"


@pytest.fixture(scope="session")
def live_janus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JanusHarness]:
    """Janus 1.1.2 with random secrets inside ``rblive<pid>``, with its event collector."""
    with network_namespace("rblive") as netns:
        workdir = tmp_path_factory.mktemp("live-janus")
        server = JanusServer(
            name="live-janus",
            admin_ws_url=f"ws://127.0.0.1:{WS_PORT}",
            public_ws_url=f"ws://127.0.0.1:{WS_PORT}",
            api_secret=secrets.token_urlsafe(24),
            admin_key=secrets.token_urlsafe(24),
            token_secret=secrets.token_urlsafe(24),
            admin_secret=secrets.token_urlsafe(24),
            admin_api_url=f"ws://127.0.0.1:{ADMIN_PORT}",
        )
        events_secret = secrets.token_urlsafe(24)
        lib_dir = debian_janus_lib_dir()
        write_janus_config(
            JanusConfigOptions(
                api_secret=server.api_secret,
                admin_secret=server.admin_secret,
                admin_key=server.admin_key,
                token_secret=server.token_secret,
                events_url=f"http://127.0.0.1:{EVENTS_PORT}/api/calls/janus-events/",
                events_secret=events_secret,
                ws_port=WS_PORT,
                admin_port=ADMIN_PORT,
                rtp_port_range="42000-42999",
                ice_enforce_list="v0",
                server_name=server.name,
                lib_dir=lib_dir,
                modules=available_modules(lib_dir),
            ),
            workdir / "conf",
        )
        events_file = workdir / "events.jsonl"
        collector_log = workdir / "collector.log"
        with collector_log.open("wb") as collector_stderr:
            collector = subprocess.Popen(
                [
                    "ip", "netns", "exec", netns, sys.executable, str(PEER), "events",
                    "--port", str(EVENTS_PORT), f"--secret={events_secret}", "--out", str(events_file),
                ],
                stdout=subprocess.PIPE,
                stderr=collector_stderr,
                cwd=ROOT,
            )  # fmt: skip
        process: subprocess.Popen[bytes] | None = None
        try:
            assert collector.stdout is not None
            if collector.stdout.readline().strip() != b"ready":
                _unavailable(f"the event collector did not start: {collector_log.read_text(errors='replace')[-1500:]}")
            log = workdir / "janus.log"
            started = time.monotonic()
            process = subprocess.Popen(
                ["ip", "netns", "exec", netns, "janus", "-F", str(workdir / "conf"),
                 "-C", str(workdir / "conf" / "janus.jcfg"), "-o", "-N", "-L", str(log)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                umask=0o027,
            )  # fmt: skip
            if not _wait_for_port(netns, WS_PORT, timeout=10):
                _unavailable(
                    f"Janus did not open its WebSocket port within 10 s: {log.read_text(errors='replace')[-2000:] if log.exists() else ''}"
                )
            yield JanusHarness(
                netns=netns,
                server=server,
                workdir=workdir,
                log=log,
                events_file=events_file,
                startup_seconds=time.monotonic() - started,
                process=process,
            )
        finally:
            _stop(process)
            _stop(collector)
            if collector.stdout is not None:
                collector.stdout.close()


@dataclass
class LiveCall:
    """``in_call`` moved onto the live Janus, with the customer's camera publishing ``source``."""

    in_call: InCall
    janus: JanusHarness
    feed: int


def _use_live_janus(live_janus: JanusHarness, settings: Any) -> None:
    """The platform knows the live Janus, and the server capture joins its namespace."""
    settings.JANUS_SERVERS = [
        *settings.JANUS_SERVERS,
        {
            "name": live_janus.server.name,
            "ws_url": live_janus.server.admin_ws_url,
            "public_ws_url": live_janus.server.public_ws_url,
            "admin_api_url": live_janus.server.admin_api_url,
            "api_secret": live_janus.server.api_secret,
            "admin_secret": live_janus.server.admin_secret,
            "admin_key": live_janus.server.admin_key,
            "token_secret": live_janus.server.token_secret,
        },
    ]
    settings.MEDIA_CAPTURE_NETNS = live_janus.netns


def _open_room_on_live_janus(live_janus: JanusHarness, call: Call, tmp_path: Path) -> None:
    """Move ``call`` onto the live Janus and open its room there."""
    # The room on the live Janus is the harness's, not one the platform opened: when the
    # service ends, the platform (outside the namespace) must not try to close it.
    Call.objects.filter(pk=call.pk).update(janus_server=live_janus.server.name, room_open=False)
    record_dir = tmp_path / f"rec-{call.pk}"
    record_dir.mkdir(mode=0o777)
    record_dir.chmod(0o777)
    created = live_janus.run(
        [
            {
                "op": "room",
                "method": "create_room",
                "kwargs": {
                    "room_id": call.room_id,
                    "secret": call.room_secret,
                    "description": "live capture test",
                    "record_dir": str(record_dir),
                },
            }
        ]
    )
    assert "ok" in created[0], created


@pytest.fixture
def live_call(
    live_janus: JanusHarness,
    make_in_call: Callable[..., InCall],  # noqa: F811 - the fixture re-exported above
    settings: Any,
    tmp_path: Path,
) -> Iterator[Callable[..., Any]]:
    """``with live_call(source, person=...) as live:`` a connected call whose customer publishes ``source`` for real."""
    _use_live_janus(live_janus, settings)

    @contextmanager
    def start(source: dict[str, Any], *, seconds: float = 25, **options: Any) -> Iterator[LiveCall]:
        in_call = make_in_call(**options)
        call = in_call.call
        _open_room_on_live_janus(live_janus, call, tmp_path)
        customer = call.participants.get(role="customer")
        ready = tmp_path / f"ready-{call.pk}.json"
        step = {
            "server": live_janus.server_dict,
            "room_id": call.room_id,
            "session_token": live_janus.session_token(),
            "room_token": live_janus.room_token(call.room_id),
            "display": customer.handle,
            "source": source,
            "seconds": seconds,
            "ready": str(ready),
        }
        step_file = tmp_path / f"peer-{call.pk}.json"
        step_file.write_text(json.dumps(step))
        peer = subprocess.Popen(
            ["ip", "netns", "exec", live_janus.netns, sys.executable, str(LIVE_PEER), str(step_file)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        try:
            deadline = time.monotonic() + 30
            while not ready.exists():
                if peer.poll() is not None or time.monotonic() > deadline:
                    peer.kill()
                    out, err = peer.communicate(timeout=5)
                    raise AssertionError(f"the customer's camera did not start: {out}{err}\n{live_janus.log_tail()}")
                time.sleep(0.1)
            feed = int(json.loads(ready.read_text())["feed"])
            _replay_janus_events(live_janus, room_id=call.room_id, settings=settings)
            customer.refresh_from_db()
            assert customer.janus_feed_id == feed, "the event feed did not name the customer's feed"
            yield LiveCall(in_call=in_call, janus=live_janus, feed=feed)
        finally:
            Path(str(ready) + ".stop").touch()
            try:
                peer.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                peer.kill()
                peer.communicate(timeout=5)

    yield start


def _replay_janus_events(janus: JanusHarness, *, room_id: int, settings: Any) -> None:
    """Post what Janus reported about this room to the Django event endpoint, as its event handler does."""

    def videoroom(event: dict[str, Any]) -> dict[str, Any]:
        body = event.get("event")
        data = body.get("data") if isinstance(body, dict) else None
        return data if isinstance(data, dict) else {}

    deadline = time.monotonic() + 5
    while True:
        events = [event for event in janus.events() if videoroom(event).get("room") == room_id]
        kinds = {videoroom(event).get("event") for event in events}
        if {"joined", "published"} <= kinds or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    response = Client().post(
        f"{reverse('calls:janus-events')}?secret={settings.JANUS_EVENTS_SECRET}",
        events,
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
