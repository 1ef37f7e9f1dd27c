"""Receivers of lower apps' signals; each only calls a service."""

from __future__ import annotations

from typing import Any

from apps.calls.signals import call_ended


def on_call_ended(sender: Any, call: Any, **kwargs: Any) -> None:
    from apps.recordings.services.processing import recording_schedule

    recording_schedule(call=call)


def connect() -> None:
    call_ended.connect(on_call_ended, dispatch_uid="recordings_schedule_on_call_end")
