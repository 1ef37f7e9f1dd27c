"""Receivers of the platform's signals; each only calls a service."""

from __future__ import annotations

from typing import Any

from apps.common.signals import housekeeping_due


def on_housekeeping_due(sender: Any, now: Any, **kwargs: Any) -> None:
    from apps.verification.services import verifications_account_photo_expire, verifications_ocr_expire

    verifications_ocr_expire(now=now)
    verifications_account_photo_expire(now=now)


def connect() -> None:
    housekeeping_due.connect(on_housekeeping_due, dispatch_uid="verification_ocr_deadline_on_housekeeping")
