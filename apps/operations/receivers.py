"""Receivers of lower apps' signals; each only calls a service."""

from __future__ import annotations

from typing import Any

from apps.calls.signals import call_ended
from apps.common.signals import housekeeping_due


def on_call_ended(sender: Any, call: Any, **kwargs: Any) -> None:
    from apps.operations.services import service_close_after_call

    service_close_after_call(call=call)


def on_housekeeping_due(sender: Any, now: Any, **kwargs: Any) -> None:
    from apps.operations.services import operations_stuck_release, visits_idle_close

    operations_stuck_release(now=now)
    visits_idle_close(now=now)


def connect() -> None:
    call_ended.connect(on_call_ended, dispatch_uid="operations_close_service_on_call_end")
    housekeeping_due.connect(on_housekeeping_due, dispatch_uid="operations_release_stuck_on_tick")
