"""The agent page follows the server over its WebSocket: no polling, and a reload shows what the server holds.

The defect: call.js asked ``/api/calls/mine/`` every 3 s while the agent was
not in a call, got 404 each time (a warning logged per request), and the page
stayed on wrap-up after the server had made the agent available. Now the
agent socket's first message is a full snapshot (tests/queueing/
test_consumers.py checks it is first and that changes are pushed); here, what
the console adds to it and what the page's scripts no longer do.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from apps.calls.models import Call
from apps.queueing.models import AgentPresence
from apps.queueing.selectors import agent_snapshot
from apps.staff.models import StaffProfile
from tests.recordings.conftest import make_live_call  # noqa: F401 - fixture reused
from tests.security.helpers import force_login_verified

pytestmark = pytest.mark.django_db

AGENT_PAGE = "/console/live/agent/"
SCRIPTS = Path(settings.BASE_DIR) / "apps" / "console" / "static" / "console"


def _presence_id(user: User) -> int:
    staff = StaffProfile.objects.get(user=user)
    return AgentPresence.objects.get_or_create(staff=staff, defaults={"state_since": staff.user.date_joined})[0].pk


def test_the_snapshot_names_the_call_the_agent_is_in(
    agent: User,
    make_live_call: Callable[..., Call],  # noqa: F811 - the imported fixture
) -> None:
    call = make_live_call()

    snapshot = agent_snapshot(presence_id=_presence_id(agent))

    assert snapshot["call"] == {
        "call": str(call.public_id),
        "state": "connected",
        "role": "agent",
        "room_ready": call.room_open,
        "business": "activation",
    }


def test_an_agent_in_no_call_has_none_in_the_snapshot(agent: User) -> None:
    assert agent_snapshot(presence_id=_presence_id(agent))["call"] is None


def test_nothing_on_the_agent_page_polls_the_server(agent: User) -> None:
    client = Client()
    force_login_verified(client, agent)
    response = client.get(AGENT_PAGE)
    assert response.status_code == 200
    urls = response.context["config"]["urls"]
    assert "call_mine" not in urls
    assert "me" not in urls  # the agent API is not asked on every event either: the snapshot carries it
    scripts = {name: (SCRIPTS / name).read_text() for name in ("agent.js", "call.js")}
    for name, script in scripts.items():
        assert "/api/calls/mine/" not in script, name
        assert "call_mine" not in script, name
        assert "config.urls.me" not in script, name
        # The only timer left is the offer's countdown, which asks nothing.
        assert "setInterval(" not in script.replace("setInterval(tickCountdown", ""), name
    # The page renders what the socket pushes.
    assert 'message.type === "snapshot"' in scripts["agent.js"]
    assert '"remotebank:snapshot"' in scripts["call.js"]


def test_the_page_is_rendered_with_what_the_server_holds_before_its_socket_connects(
    agent: User,
    make_live_call: Callable[..., Call],  # noqa: F811 - the imported fixture
) -> None:
    """A reload shows the call at once, also where the socket cannot connect (a proxy without WebSockets)."""
    call = make_live_call()
    _presence_id(agent)
    client = Client()
    force_login_verified(client, agent)

    snapshot = client.get(AGENT_PAGE).context["config"]["snapshot"]

    assert snapshot["type"] == "snapshot"
    assert snapshot["call"]["call"] == str(call.public_id)
    assert "onMessage(config.snapshot)" in (SCRIPTS / "agent.js").read_text()


def test_an_agent_who_never_connected_gets_no_snapshot_in_the_page(agent: User) -> None:
    client = Client()
    force_login_verified(client, agent)
    assert client.get(AGENT_PAGE).context["config"]["snapshot"] is None
