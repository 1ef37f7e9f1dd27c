"""Receivers: each only calls a service (STYLE.md)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.http import HttpRequest

from apps.common.signals import housekeeping_due


def on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    from apps.security.throttling import DELAYED_ATTRIBUTE, login_failure_count

    # Attempts refused unchecked (the user's delay, a locked address) tested no password: not counted.
    refused_unchecked = bool(getattr(request, DELAYED_ATTRIBUTE, 0)) or bool(getattr(request, "axes_locked_out", False))
    if request is not None and refused_unchecked:
        return
    username = credentials.get("username") or ""
    if username:
        login_failure_count(username=username)


def on_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    from apps.security.throttling import login_failures_forget

    login_failures_forget(username=user.get_username())


def on_housekeeping_due(sender: Any, now: Any, **kwargs: Any) -> None:
    from apps.security.services import totp_enrolments_expire

    totp_enrolments_expire(now=now)


def connect() -> None:
    user_login_failed.connect(on_login_failed, dispatch_uid="security_login_delay_count")
    user_logged_in.connect(on_login, dispatch_uid="security_login_delay_forget")
    # Pending authenticator secrets expire (TOTP_ENROLMENT_SECONDS).
    housekeeping_due.connect(on_housekeeping_due, dispatch_uid="security_totp_enrolments_expire_on_housekeeping")
