"""DRF glue shared by every app's api.py."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.utils.translation import gettext as _
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from apps.common.errors import ApplicationError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Turn ApplicationError into ``{"code", "message"}``; leave the rest to DRF.

    The message is rendered in the request's language (LocaleMiddleware has
    already activated it).
    """
    if isinstance(exc, ApplicationError):
        body: dict[str, Any] = {"code": exc.code, "message": str(exc.message)}
        if exc.extra:
            body["details"] = exc.extra
        return Response(body, status=exc.status_code)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    # DRF's own errors get the same envelope, keeping its field-level details.
    detail = response.data
    code = getattr(exc, "default_code", "error")
    message = detail.get("detail") if isinstance(detail, dict) and "detail" in detail else _("Invalid request.")
    envelope: dict[str, Any] = {"code": str(code), "message": str(message)}
    if not (isinstance(detail, dict) and set(detail) == {"detail"}):
        envelope["details"] = detail
    response.data = envelope
    return response


def require_permission(permission: str) -> type[BasePermission]:
    """A DRF permission class granting access to staff holding ``permission`` ("app.codename")."""

    class _HasPermission(BasePermission):
        message = _("Your role does not allow this.")

        def has_permission(self, request: Request, view: APIView) -> bool:
            user = request.user
            return bool(user and user.is_authenticated and user.is_staff and user.has_perm(permission))

    _HasPermission.__name__ = f"Has_{permission.replace('.', '_')}"
    return _HasPermission


def request_staff_user(request: Request) -> User:
    """The logged-in staff user of a view whose permission classes already demand one."""
    user = request.user
    if not isinstance(user, User):
        raise NotAuthenticated()
    return user
