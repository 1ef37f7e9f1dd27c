"""The WebSocket origin check: the page that opens a socket must come from this very site.

Channels' AllowedHostsOriginValidator compares only the Origin's host with
ALLOWED_HOSTS, so http://bank.example:8080 (another service on the same
host) or plain http:// next to an https:// site would pass. Here the
Origin's scheme, host and port must equal those the socket itself was
opened on (ws → http, wss → https; SECURE_PROXY_SSL_HEADER counts behind a
TLS proxy), or be listed in CSRF_TRUSTED_ORIGINS; the host check stays.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import AllowedHostsOriginValidator, WebsocketDenier
from django.conf import settings

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_tuple(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = (parts.scheme or "").lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {name.decode("latin1").lower(): value.decode("latin1") for name, value in scope.get("headers", [])}


def websocket_origin_allowed(scope: dict[str, Any]) -> bool:
    """True when the handshake's Origin is exactly this site (scheme, host, port) or a trusted origin."""
    headers = _headers(scope)
    origin = _origin_tuple(headers.get("origin", ""))
    if origin is None:
        return False
    secure = scope.get("scheme") in ("wss", "https")
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, value = proxy_header
        header = name.lower().removeprefix("http_").replace("_", "-")
        secure = secure or headers.get(header, "").split(",")[0].strip() == value
    own = _origin_tuple(f"{'https' if secure else 'http'}://{headers.get('host', '')}")
    if own is not None and origin == own:
        return True
    trusted = {_origin_tuple(item) for item in getattr(settings, "CSRF_TRUSTED_ORIGINS", [])}
    return origin in trusted


class SameOriginValidator:
    """ASGI middleware: refuses a WebSocket handshake from any other origin (see the module docstring)."""

    def __init__(self, application: Any) -> None:
        self.application = AllowedHostsOriginValidator(application)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not websocket_origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
