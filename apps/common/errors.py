"""The one exception family services raise.

A service raises a subclass of ApplicationError with a stable ``code`` and a
translatable message; ``apps.common.api.exception_handler`` turns it into an
HTTP response and consumers turn it into a WebSocket error message, so every
client gets the same clear, bilingual explanation.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.utils.functional import Promise


class ApplicationError(Exception):
    """Base of every error a service reports to a user."""

    status_code: ClassVar[int] = 400
    default_code: ClassVar[str] = "error"

    def __init__(self, message: str | Promise, *, code: str | None = None, extra: dict[str, Any] | None = None):
        super().__init__(str(message))
        self.message = message
        self.code = code or self.default_code
        self.extra = extra or {}


class ValidationFailed(ApplicationError):
    default_code = "invalid"


class NotAllowed(ApplicationError):
    """The action is understood but refused in the current state or for this actor."""

    status_code = 409
    default_code = "not_allowed"


class PermissionDenied(ApplicationError):
    status_code = 403
    default_code = "permission_denied"


class NotFound(ApplicationError):
    status_code = 404
    default_code = "not_found"
