"""Receivers of lower apps' signals; each only reads through a selector."""

from __future__ import annotations

from typing import Any

from apps.queueing.signals import agent_snapshot_requested


def on_agent_snapshot_requested(sender: Any, staff: Any, **kwargs: Any) -> dict[str, Any]:
    """The agent page's snapshot carries the call the agent is in (queueing cannot look at calls)."""
    from apps.console.selectors import agent_current_call

    return {"call": agent_current_call(staff=staff)}


def connect() -> None:
    agent_snapshot_requested.connect(on_agent_snapshot_requested, dispatch_uid="console_agent_snapshot_call")
