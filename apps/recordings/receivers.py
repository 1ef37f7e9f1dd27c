"""Receivers of lower apps' signals; each only calls a service."""

from __future__ import annotations

from typing import Any

from apps.calls.signals import call_ended
from apps.common.signals import housekeeping_due


def on_call_ended(sender: Any, call: Any, **kwargs: Any) -> None:
    from apps.recordings.services.processing import recording_schedule

    recording_schedule(call=call)


def on_housekeeping_due(sender: Any, now: Any, **kwargs: Any) -> None:
    from apps.recordings.services.processing import recordings_pending_sweep

    recordings_pending_sweep(now=now)


def connect() -> None:
    call_ended.connect(on_call_ended, dispatch_uid="recordings_schedule_on_call_end")
    housekeeping_due.connect(on_housekeeping_due, dispatch_uid="recordings_pending_sweep_on_housekeeping")
