"""Security middleware: response headers, the session's sliding idle deadline, and the second factor for back-office pages."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import Resolver404, resolve, reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from apps.security.policy import two_factor_satisfied

Handler = Callable[[HttpRequest], HttpResponse]


def _janus_origins() -> list[str]:
    """The browser-facing Janus addresses, as CSP sources (scheme://host[:port])."""
    origins: list[str] = []
    for server in getattr(settings, "JANUS_SERVERS", []) or []:
        url = server.get("public_ws_url") if isinstance(server, dict) else None
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme and parts.netloc:
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in origins:
                origins.append(origin)
    return origins


class SecurityHeadersMiddleware:
    """Content-Security-Policy, Permissions-Policy and Cross-Origin-Opener-Policy on every response.

    Scripts run only from our own origin, plus inline blocks carrying the
    per-request nonce (``request.csp_nonce``, used by templates that still have
    one). Styles allow 'unsafe-inline' because the Django admin sets inline
    styles. connect-src admits the Janus servers the browser talks to.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        self.connect_sources = " ".join(["'self'", "ws:", "wss:", *_janus_origins()])

    def __call__(self, request: HttpRequest) -> HttpResponse:
        nonce = secrets.token_urlsafe(16)
        request.csp_nonce = nonce  # type: ignore[attr-defined]
        response = self.get_response(request)
        policy = "; ".join(
            [
                "default-src 'self'",
                f"script-src 'self' 'nonce-{nonce}'",
                f"connect-src {self.connect_sources}",
                "img-src 'self' data: blob:",
                "media-src 'self' blob:",
                "style-src 'self' 'unsafe-inline'",
                "object-src 'none'",
                "base-uri 'self'",
                "form-action 'self'",
                "frame-ancestors 'none'",
            ]
        )
        response.headers.setdefault("Content-Security-Policy", policy)
        # The video pages need the camera and microphone, and the customer's page asks for the
        # location before calling (with consent, docs/gates.md "Location"); nothing else is allowed.
        response.headers.setdefault(
            "Permissions-Policy", "camera=(self), microphone=(self), geolocation=(self), payment=(), usb=()"
        )
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        return response


# In the session: when its idle deadline was last pushed back (Unix seconds).
SESSION_REFRESHED_KEY = "_refreshed_at"


class SessionRefreshMiddleware:
    """Pushes a used session's idle deadline back, writing the session at most every SESSION_REFRESH_SECONDS.

    The deadline is the session row's ``expire_date`` (SESSION_COOKIE_AGE from
    its last save). Django's SESSION_SAVE_EVERY_REQUEST saved it on every
    request: an UPDATE in its own savepoint and a commit for each of the
    console's and the customer page's reads (three of their six to twelve
    statements, issue 18). Here a
    request saves it only when the last refresh is older than the interval
    (or the session changed anyway), so the session still ends at most
    SESSION_COOKIE_AGE after its last request, and at least
    AGE - REFRESH after it: never later than before, at most a minute sooner.
    Must come right after SessionMiddleware, whose response step then saves.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        session = getattr(request, "session", None)
        # A session nobody read stays untouched (as Django's own middleware leaves it); an empty one is not saved.
        if session is None or not session.accessed or session.is_empty():
            return response
        now = int(time.time())
        refreshed = session.get(SESSION_REFRESHED_KEY)
        stale = not isinstance(refreshed, int) or not 0 <= now - refreshed < settings.SESSION_REFRESH_SECONDS
        if stale or session.modified:
            session[SESSION_REFRESHED_KEY] = now
        return response


# Back-office views a user who still owes the second factor may reach.
_EXEMPT_VIEWS = frozenset(
    {
        "admin:login",
        "admin:logout",
        "admin:jsi18n",
        "security:enrol",
        "security:verify",
        "security:recovery-codes",
        "set_language",
    }
)


class StaffTwoFactorMiddleware:
    """Sends supervisors, compliance officers and administrators through the second factor.

    Must follow django-otp's ``OTPMiddleware`` (which installs
    ``user.is_verified()``). A session that logged in with a password only
    reaches the back office (the admin site and the live pages under it,
    ``/console/``) after the verification step. Agents and experts are not
    affected (apps/security/policy.py). The JSON API under ``/api/`` answers
    such a session with 403 ``second_factor_required``: a stolen password
    must not open the API either.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is None or two_factor_satisfied(user):
            return self.get_response(request)
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        if match.view_name in _EXEMPT_VIEWS:
            return self.get_response(request)
        if request.path_info.startswith("/api/"):
            return JsonResponse(
                {
                    "code": "second_factor_required",
                    "message": str(_("Your role needs the second factor: verify it in the back office first.")),
                },
                status=403,
            )
        back_office = reverse("admin:index")
        if request.path_info.startswith(back_office):
            from django_otp.plugins.otp_totp.models import TOTPDevice

            enrolled = TOTPDevice.objects.filter(user=user, confirmed=True).exists()
            target = reverse("security:verify" if enrolled else "security:enrol")
            return redirect(f"{target}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)
