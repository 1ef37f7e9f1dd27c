"""A Janus server that stops answering: its live calls end ``media_server_failed`` (calls_media_servers_check).

The whole fault, with a real Janus killed mid-call, is tests/faults/test_janus_stopped.py;
here the timing rules, against an address where nothing listens.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.audit.actions import AuditAction
from apps.audit.models import AuditRecord
from apps.calls.models import Call, CallEndReason, CallState
from apps.calls.services import calls_media_servers_check
from tests.recordings.conftest import make_live_call  # noqa: F401 - fixture reused

pytestmark = pytest.mark.django_db


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_server(settings: Any) -> str:
    """A configured Janus server at an address where nothing listens."""
    settings.JANUS_SERVERS = [
        {
            "name": "test-janus",
            "ws_url": f"ws://127.0.0.1:{free_port()}",
            "api_secret": "s",
            "admin_key": "k",
            "token_secret": "t",
        }
    ]
    settings.CALL_MEDIA_SERVER_CHECK_SECONDS = 5
    settings.CALL_MEDIA_SERVER_FAILURE_SECONDS = 10
    return "test-janus"


@pytest.fixture
def live_call(make_live_call: Callable[..., Call]) -> Callable[[], Call]:  # noqa: F811 - the imported fixture
    return make_live_call


def _open_room(call: Call) -> Call:
    Call.objects.filter(pk=call.pk).update(room_open=True)
    call.refresh_from_db()
    return call


def test_calls_end_only_once_the_server_has_not_answered_for_the_failure_time(
    silent_server: str, live_call: Callable[[], Call]
) -> None:
    call = _open_room(live_call())
    start = timezone.now()
    assert calls_media_servers_check(now=start) == 0  # one lost ping is not a dead server
    assert calls_media_servers_check(now=start + timedelta(seconds=2)) == 0  # not asked again so soon
    assert calls_media_servers_check(now=start + timedelta(seconds=6)) == 0
    assert calls_media_servers_check(now=start + timedelta(seconds=11)) == 1
    call.refresh_from_db()
    assert call.state == CallState.ENDED and call.end_reason == CallEndReason.MEDIA_SERVER_FAILED
    ended = AuditRecord.objects.get(action=AuditAction.CALL_ENDED, target_id=str(call.pk))
    assert ended.data["reason"] == "media_server_failed"


def test_a_failure_seen_long_ago_does_not_end_calls_at_the_next_check(
    silent_server: str, live_call: Callable[[], Call]
) -> None:
    call = _open_room(live_call())
    start = timezone.now()
    assert calls_media_servers_check(now=start) == 0
    # Nobody checked for a minute (the dispatcher was down): the streak starts again.
    assert calls_media_servers_check(now=start + timedelta(seconds=60)) == 0
    call.refresh_from_db()
    assert call.state == CallState.CONNECTED


def test_calls_without_an_open_room_are_not_the_media_checks_business(
    silent_server: str, live_call: Callable[[], Call]
) -> None:
    call = live_call()
    start = timezone.now()
    assert calls_media_servers_check(now=start) == 0
    assert calls_media_servers_check(now=start + timedelta(seconds=30)) == 0
    call.refresh_from_db()
    assert call.state == CallState.CONNECTED
