"""Receivers: each only calls a service (STYLE.md)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.http import HttpRequest


def on_staff_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    from apps.visits.authentication import visit_session_unbind

    # One browser, one identity: a member of staff logging in on a device a
    # customer used must not carry on (or act in) the customer's visit.
    if request is not None and hasattr(request, "session"):
        visit_session_unbind(request)


def connect() -> None:
    user_logged_in.connect(on_staff_login, dispatch_uid="visits_unbind_on_staff_login")
