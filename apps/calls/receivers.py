"""Receivers of lower apps' signals; each only calls a service."""

from __future__ import annotations

from typing import Any

from apps.common.signals import housekeeping_due
from apps.queueing.signals import agent_service_closing, queue_entry_connected


def on_entry_connected(sender: Any, entry: Any, staff: Any, **kwargs: Any) -> None:
    from apps.calls.services import call_create_for_entry

    call_create_for_entry(entry=entry, staff=staff)


def on_housekeeping_due(sender: Any, now: Any, **kwargs: Any) -> None:
    from apps.calls.services import calls_expire, calls_media_servers_check

    calls_expire(now=now)
    calls_media_servers_check(now=now)


def on_agent_service_closing(sender: Any, staff: Any, actor: Any, **kwargs: Any) -> bool:
    from apps.calls.services import call_staff_hang_up

    return call_staff_hang_up(staff=staff, actor=actor)


def connect() -> None:
    queue_entry_connected.connect(on_entry_connected, dispatch_uid="calls_create_on_answer")
    housekeeping_due.connect(on_housekeeping_due, dispatch_uid="calls_expire_on_tick")
    agent_service_closing.connect(on_agent_service_closing, dispatch_uid="calls_hang_up_on_service_end")
