"""Receivers of the platform's signals; each only calls a service."""

from __future__ import annotations

from typing import Any

from apps.common.signals import housekeeping_due


def on_housekeeping_due(sender: Any, now: Any, **kwargs: Any) -> None:
    from apps.audit.services import audit_checkpoint_sweep, audit_pending_sweep

    audit_pending_sweep()
    audit_checkpoint_sweep()


def connect() -> None:
    housekeeping_due.connect(on_housekeeping_due, dispatch_uid="audit_pending_sweep_on_housekeeping")
