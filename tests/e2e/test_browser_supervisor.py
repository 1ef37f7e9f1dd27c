"""Issue 21, item 4, acceptance: a supervisor listens in on, then joins, a live call in the browser.

Same harness as tests/e2e/test_browser_call.py (real Janus and Daphne in a
network namespace, headless Chromium with fake cameras), scenario
``supervisor`` of tests/e2e/browser_call.py: the customer passes Gate 1 and
the agent answers; the agent's team supervisor (logged in with the second
factor) opens the wallboard and clicks 旁听 (listen): their page decodes
customer and agent while publishing nothing, and neither the customer nor
the agent is shown them; they leave, click 加入 (join) on the wallboard, and
now everyone decodes everyone, the agent's and the customer's pages caption
the new tile 主管 and the customer is told. The customer hangs up: the
supervisor's page says the call is over, and the server kept both seats
(closed) and their audit records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import BrowserCallRun


def _decoding(videos: list[dict[str, Any]]) -> int:
    return sum(1 for v in videos if v["advancing"] and v["width"] > 0 and v["height"] > 0)


def test_a_supervisor_listens_silently_then_joins_a_live_call_from_the_wallboard(
    browser_call: Callable[..., BrowserCallRun],
) -> None:
    run = browser_call("supervisor")
    report = run.report
    if not (report.get("ok") is True and run.returncode == 0):
        pytest.fail(run.explain(), pytrace=False)
    uncaught = [line for lines in report["console"].values() for line in lines if line.startswith("pageerror")]
    assert not uncaught, report["console"]
    supervisor = report["scenario"]["supervisor_username"]

    # The wallboard lists the team's live call with its two buttons, in Chinese.
    assert report["wallboard_buttons"] == ["旁听", "加入"], report["wallboard_buttons"]
    assert report["scenario"]["agent_name"] in report["wallboard_row"]

    # Listening: both remote videos decode on the supervisor's page; no camera of their own,
    # Janus has them in the room as a non-publisher, and nobody else is shown them.
    listen = report["listen"]
    assert _decoding(listen["supervisor_videos"]) == 2, listen
    assert listen["supervisor_local_tracks"] == [], listen
    assert sorted(listen["supervisor_captions"]) == ["坐席", "客户"], listen
    assert listen["janus"] == {"customer": True, "agent": True, "supervisor:listen": False}, listen["janus"]
    assert listen["customer_videos"] == 1 and listen["agent_videos"] == 1, listen
    assert listen["customer_roles"] == ["agent", "customer"] and listen["agent_roles"] == ["agent", "customer"]
    assert listen["customer_notice_hidden"] is True
    assert "静默旁听" in listen["mode_text"]

    # Joined: everyone decodes everyone; agent and customer caption the supervisor's tile; the customer is told.
    join = report["join"]
    assert _decoding(join["supervisor_videos"]) == 2, join
    assert _decoding(join["agent_videos"]) == 2, join
    assert _decoding(join["customer_videos"]) == 2, join
    assert sorted(join["supervisor_local_tracks"]) == ["audio", "video"], join
    assert "主管" in join["agent_captions"], join["agent_captions"]
    assert "主管" in join["customer_captions"], join["customer_captions"]
    assert "主管已加入通话" in join["customer_notice"], join["customer_notice"]
    assert join["agent_notice"] == "主管已加入通话。", join["agent_notice"]
    # The joined seat publishes. (The listening one, closed on leaving, may linger in Janus until
    # its session is torn down; it never published.)
    assert join["janus"].get("supervisor:join") is True, join["janus"]
    assert join["janus"]["customer"] is True and join["janus"]["agent"] is True, join["janus"]
    assert join["janus"].get("supervisor:listen", False) is False, join["janus"]

    # The call's end reaches the supervisor's page and closes the seat: nothing left dangling.
    assert report["supervisor_after_hangup"] == "通话已结束。", report["supervisor_after_hangup"]
    records = report["records"]
    assert records["call"] == {"state": "ended", "end_reason": "customer_hung_up"}
    assert records["seats"] == [
        {"mode": "listen", "staff": supervisor, "joined": True, "published": False, "left": True},
        {"mode": "join", "staff": supervisor, "joined": True, "published": True, "left": True},
    ], records["seats"]
    assert records["audit"] == [
        {"action": "calls.supervisor.entered", "actor": supervisor, "mode": "listen"},
        {"action": "calls.supervisor.left", "actor": supervisor, "mode": "listen"},
        {"action": "calls.supervisor.entered", "actor": supervisor, "mode": "join"},
    ], records["audit"]

    for name in ("supervisor-listening", "supervisor-joined", "agent-with-supervisor", "customer-with-supervisor"):
        assert (run.shots / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
