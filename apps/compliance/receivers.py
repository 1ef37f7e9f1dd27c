"""Receivers of the platform's signals; each only calls a service."""

from __future__ import annotations

from typing import Any

from apps.common.signals import housekeeping_due


def on_housekeeping_due(sender: Any, now: Any, **kwargs: Any) -> None:
    from apps.compliance.services import audit_exports_expire

    audit_exports_expire(now=now)


def connect() -> None:
    housekeeping_due.connect(on_housekeeping_due, dispatch_uid="compliance_exports_expire_on_housekeeping")
