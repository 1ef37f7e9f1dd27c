"""The customer's side of the API: the visit bound to the browser's session.

Customers are not users. ``visit_session_bind`` keeps the visit's id
server-side in the session, so one browser can act only on its own visit and
a forged id in a URL is impossible by construction. For the API,
``VisitSessionAuthentication`` puts that visit on ``request.auth`` (the user
stays anonymous) and enforces CSRF on every write although the caller is
anonymous; ``VisitRequired`` refuses a request without a visit. For
WebSockets, ``VisitSessionMiddleware`` puts the visit's id on the scope.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from apps.common.errors import NotFound
from apps.visits.models import Visit
from apps.visits.selectors import visit_for_session

SESSION_KEY = "remotebank_visit_id"


def visit_session_bind(request: HttpRequest, visit: Visit) -> None:
    """Bind ``visit`` to this browser. A new session id: a visit never inherits an earlier one's session."""
    request.session.cycle_key()
    request.session[SESSION_KEY] = visit.pk


def visit_session_unbind(request: HttpRequest) -> None:
    """Forget the visit bound to this browser, if any (the visit itself is left to its idle deadline)."""
    request.session.pop(SESSION_KEY, None)


class VisitSessionAuthentication(SessionAuthentication):
    """``request.auth`` is the session's visit (or None); writes need a valid CSRF token in any case."""

    def authenticate(self, request: Request) -> tuple[AnonymousUser, Visit | None]:
        # Enforced before looking at the visit: starting a visit is a write too.
        self.enforce_csrf(request)
        visit = visit_for_session(visit_id=request._request.session.get(SESSION_KEY))
        return AnonymousUser(), visit

    def enforce_csrf(self, request: Request) -> None:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            super().enforce_csrf(request)


class VisitRequired(BasePermission):
    """The request's session has a visit; otherwise 404 ``no_visit`` (start again)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not isinstance(request.auth, Visit):
            raise NotFound(_("No visit in progress. Please start again."), code="no_visit")
        return True


class CustomerApi(APIView):
    """Base of every customer endpoint that acts on the session's visit."""

    authentication_classes: tuple[type[BaseAuthentication], ...] = (VisitSessionAuthentication,)
    permission_classes: tuple[type[BasePermission], ...] = (VisitRequired,)


def request_visit(request: Request) -> Visit:
    """The visit of a request that passed ``VisitRequired``."""
    assert isinstance(request.auth, Visit)
    return request.auth


class VisitSessionMiddleware:
    """Channels middleware: ``scope["visit_id"]`` is the session's visit id (or None).

    Sits inside ``AuthMiddlewareStack`` (which provides ``scope["session"]``);
    consumers read the id and never the session key themselves.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        session = scope.get("session")
        visit_id = await database_sync_to_async(lambda: session.get(SESSION_KEY) if session is not None else None)()
        return await self.inner({**scope, "visit_id": visit_id if isinstance(visit_id, int) else None}, receive, send)
