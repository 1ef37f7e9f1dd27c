"""TURN credentials (coturn, the TURN REST API shared-secret scheme).

coturn runs with ``use-auth-secret`` and ``static-auth-secret`` (the
generated configuration, ``apps.calls.turn_config``): it accepts any username
of the form ``<expiry>:<anything>`` whose password is
``base64(HMAC-SHA1(secret, username))`` while ``expiry`` (Unix seconds) is in
the future. The platform mints them itself, per participant and call, so no
TURN account is ever stored and a leaked credential dies on its own. Touches
no models.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class TurnCredentials:
    """One RTCIceServer entry: ``{"urls": [...], "username": ..., "credential": ...}``."""

    urls: tuple[str, ...]
    username: str
    credential: str
    expires_at: int


def turn_password(secret: str, username: str) -> str:
    """coturn's REST API password of ``username``: base64(HMAC-SHA1(secret, username))."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def turn_credentials(
    *, secret: str, user: str, urls: tuple[str, ...] | list[str], valid_seconds: int, now: float | None = None
) -> TurnCredentials:
    """Credentials for ``user`` (an opaque participant reference), valid ``valid_seconds`` from ``now``."""
    if valid_seconds <= 0:
        raise ValueError("valid_seconds must be positive")
    if ":" in user:
        # coturn reads the expiry up to the first colon; keep the rest unambiguous.
        raise ValueError("a TURN user reference must not contain ':'")
    expiry = int(now if now is not None else time.time()) + valid_seconds
    username = f"{expiry}:{user}"
    return TurnCredentials(
        urls=tuple(urls), username=username, credential=turn_password(secret, username), expires_at=expiry
    )


def turn_urls_for(server_name: str) -> tuple[str, ...]:
    """The TURN URLs for a call on Janus server ``server_name``: that region's TURN, else the default."""
    if not settings.TURN_ENABLED:
        return ()
    return tuple(settings.TURN_URLS_BY_SERVER.get(server_name) or settings.TURN_URLS)


def turn_participant_credentials(*, server_name: str, user: str, now: float | None = None) -> TurnCredentials | None:
    """Credentials for one participant of a call on ``server_name``; None when TURN is off."""
    urls = turn_urls_for(server_name)
    if not urls:
        return None
    return turn_credentials(
        secret=settings.TURN_SECRET, user=user, urls=urls, valid_seconds=settings.TURN_CREDENTIAL_SECONDS, now=now
    )
