"""The soft per-username login delay (docs/security.md, "Login throttling").

django-axes locks an address after too many failures, whatever usernames it
tried (password spraying from one place). Across addresses, a username gets
a delay, never a lock: nobody outside can keep a member of staff out, but
guessing one user's password from many addresses goes at a few tries a
minute. ``LoginDelayBackend`` comes first in AUTHENTICATION_BACKENDS and
refuses, unchecked, an attempt made too soon after the previous failure;
``LoginDelayMiddleware`` answers it with 429 and the wait.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from apps.audit.actions import AuditAction
from apps.audit.models import ActorKind
from apps.audit.services import Actor, audit_record
from apps.common.network import client_address
from apps.security.models import LoginThrottle

# Set on the request when an attempt was refused for the delay, so the
# failure it causes is not counted again.
DELAYED_ATTRIBUTE = "security_login_delay_seconds"


def _key(username: str) -> str:
    return (username or "").strip().lower()[:150]


def _delay_after(failures: int) -> int:
    extra = failures - settings.LOGIN_USER_FREE_FAILURES
    if extra < 0:
        return 0
    return int(min(2**extra, settings.LOGIN_USER_MAX_DELAY_SECONDS))


def login_delay_remaining(*, username: str, now: datetime | None = None) -> int:
    """Seconds ``username`` must still wait before the next attempt is checked (0: go ahead)."""
    now = now or timezone.now()
    row = LoginThrottle.objects.filter(username=_key(username)).first()
    if row is None or now - row.last_failure_at > timedelta(seconds=settings.LOGIN_USER_WINDOW_SECONDS):
        return 0
    ready_at = row.last_failure_at + timedelta(seconds=_delay_after(row.failures))
    return max(0, math.ceil((ready_at - now).total_seconds()))


@transaction.atomic
def login_failure_count(*, username: str, now: datetime | None = None) -> LoginThrottle:
    """Count one failed login (or password confirmation) of ``username``."""
    now = now or timezone.now()
    row, created = LoginThrottle.objects.select_for_update().get_or_create(
        username=_key(username), defaults={"failures": 1, "last_failure_at": now}
    )
    if not created:
        quiet = now - row.last_failure_at > timedelta(seconds=settings.LOGIN_USER_WINDOW_SECONDS)
        row.failures = 1 if quiet else row.failures + 1
        row.last_failure_at = now
        row.save(update_fields=["failures", "last_failure_at"])
    return row


def login_failures_forget(*, username: str) -> None:
    """A right password: the username's earlier failures no longer slow it down."""
    LoginThrottle.objects.filter(username=_key(username)).delete()


class LoginDelayBackend:
    """First authentication backend: refuses an attempt made before the username's delay has passed."""

    def authenticate(self, request: HttpRequest | None, username: str | None = None, **kwargs: Any) -> None:
        if request is None or not username:
            return None
        wait = login_delay_remaining(username=username)
        if wait:
            setattr(request, DELAYED_ATTRIBUTE, wait)
            with transaction.atomic():
                audit_record(
                    actor=Actor(ActorKind.STAFF, "", username[:150]),
                    action=AuditAction.STAFF_LOGIN_DELAYED,
                    data={"ip": client_address(request), "wait_seconds": wait},
                )
            # PermissionDenied stops Django trying the other backends.
            raise PermissionDenied
        return None

    # No get_user(): Client.force_login and login() pick the first backend
    # that has one, and this backend never logs anybody in.


class LoginDelayMiddleware:
    """Turns a login refused for the per-user delay into 429 with the wait (after axes)."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response: HttpResponse = self.get_response(request)
        wait = getattr(request, DELAYED_ATTRIBUTE, 0)
        if wait:
            response = TemplateResponse(request, "security/login_delayed.html", {"wait_seconds": wait}, status=429)
            response["Retry-After"] = str(wait)
            response.render()
        return response
