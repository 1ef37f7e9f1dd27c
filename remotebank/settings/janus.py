"""Janus WebRTC servers (docs/janus.md): read from the environment only.

Servers come either from ``REMOTEBANK_JANUS_SERVERS`` (a JSON list, one object
per server) or, for the common single-server case, from the
``REMOTEBANK_JANUS_*`` variables below. Each server object has the keys

    name            unique name, stored on every call placed on this server
    ws_url          Janus API WebSocket the Django server uses (ws://127.0.0.1:8188)
    public_ws_url   what browsers use (wss://bank.example/janus behind TLS); default ws_url
    admin_api_url   Admin API WebSocket (ws://127.0.0.1:7088); "" when not reachable
    api_secret      Janus ``api_secret`` (server-side requests)
    admin_secret    Janus ``admin_secret`` (Admin API)
    admin_key       videoroom ``admin_key`` (needed to create rooms)
    token_secret    Janus ``token_auth_secret`` (HMAC-signed browser tokens)

Outside production the secrets fall back to fixed, clearly non-secret
development strings so that `make run` works on a fresh machine; under
``remotebank.settings.production`` every secret must come from the environment
(ImproperlyConfigured otherwise).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from remotebank.settings.environment import env_int, env_optional, env_path, env_str

__all__ = [
    "JANUS_CONFIG_DIR",
    "JANUS_DEBUG_LEVEL",
    "JANUS_EVENTS_SECRET",
    "JANUS_EVENTS_URL",
    "JANUS_NETNS",
    "JANUS_RECORDINGS_DIR",
    "JANUS_RTP_PORT_RANGE",
    "JANUS_RUN_DIR",
    "JANUS_SERVERS",
    "JANUS_TOKEN_SECONDS",
]

_VAR_DIR = env_path("REMOTEBANK_VAR_DIR", Path(__file__).resolve().parent.parent.parent / "var")
_PRODUCTION = env_str("DJANGO_SETTINGS_MODULE", "").endswith(".production")

_SERVER_KEYS = (
    "name",
    "ws_url",
    "public_ws_url",
    "admin_api_url",
    "api_secret",
    "admin_secret",
    "admin_key",
    "token_secret",
)
_SECRET_KEYS = ("api_secret", "admin_secret", "admin_key", "token_secret")

# Development only: never valid under production settings (see below).
_DEV_SECRETS = {
    "api_secret": "dev-janus-api-secret",
    "admin_secret": "dev-janus-admin-secret",
    "admin_key": "dev-janus-admin-key",
    "token_secret": "dev-janus-token-secret",
}
_DEV_EVENTS_SECRET = "dev-janus-events-secret"  # noqa: S105 - development default, refused in production
# Production refuses shorter secrets: they are guessable (HMAC keys and
# shared passwords of the media server).
JANUS_SECRET_MIN_LENGTH = 16


def _server_from_mapping(raw: dict[str, Any], *, allow_dev_defaults: bool, where: str) -> dict[str, str]:
    unknown = set(raw) - set(_SERVER_KEYS)
    if unknown:
        raise ImproperlyConfigured(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    server = {key: str(raw.get(key) or "") for key in _SERVER_KEYS}
    if not server["name"]:
        raise ImproperlyConfigured(f"{where}: every Janus server needs a name")
    if not server["ws_url"].startswith(("ws://", "wss://")):
        raise ImproperlyConfigured(f"{where}: ws_url must be a ws:// or wss:// URL")
    server["public_ws_url"] = server["public_ws_url"] or server["ws_url"]
    for key in _SECRET_KEYS:
        if not server[key]:
            if not allow_dev_defaults:
                raise ImproperlyConfigured(f"{where}: {key} of Janus server {server['name']!r} is required")
            server[key] = _DEV_SECRETS[key]
        elif not allow_dev_defaults and len(server[key]) < JANUS_SECRET_MIN_LENGTH:
            raise ImproperlyConfigured(
                f"{where}: {key} of Janus server {server['name']!r} must be at least {JANUS_SECRET_MIN_LENGTH} characters"
            )
        elif '"' in server[key] or "\\" in server[key] or "\n" in server[key]:
            # They are written into Janus' configuration files as quoted strings.
            raise ImproperlyConfigured(f"{where}: {key} must not contain quotes, backslashes or newlines")
    return server


def janus_servers_from_env(*, allow_dev_defaults: bool) -> list[dict[str, str]]:
    """The configured Janus servers as plain dicts (see the module docstring)."""
    raw_list = env_optional("REMOTEBANK_JANUS_SERVERS")
    if raw_list:
        try:
            parsed = json.loads(raw_list)
        except json.JSONDecodeError as exc:
            raise ImproperlyConfigured(f"REMOTEBANK_JANUS_SERVERS is not valid JSON: {exc}") from exc
        if not isinstance(parsed, list) or not parsed or not all(isinstance(item, dict) for item in parsed):
            raise ImproperlyConfigured("REMOTEBANK_JANUS_SERVERS must be a non-empty JSON list of objects")
        servers = [
            _server_from_mapping(
                item, allow_dev_defaults=allow_dev_defaults, where=f"REMOTEBANK_JANUS_SERVERS[{index}]"
            )
            for index, item in enumerate(parsed)
        ]
        names = [server["name"] for server in servers]
        if len(set(names)) != len(names):
            raise ImproperlyConfigured("REMOTEBANK_JANUS_SERVERS: server names must be unique")
        return servers
    single = {
        "name": env_str("REMOTEBANK_JANUS_NAME", "janus-1"),
        "ws_url": env_str("REMOTEBANK_JANUS_WS_URL", "ws://127.0.0.1:8188"),
        "public_ws_url": env_optional("REMOTEBANK_JANUS_PUBLIC_WS_URL") or "",
        "admin_api_url": env_str("REMOTEBANK_JANUS_ADMIN_API_URL", "ws://127.0.0.1:7088"),
        "api_secret": env_optional("REMOTEBANK_JANUS_API_SECRET") or "",
        "admin_secret": env_optional("REMOTEBANK_JANUS_ADMIN_SECRET") or "",
        "admin_key": env_optional("REMOTEBANK_JANUS_ADMIN_KEY") or "",
        "token_secret": env_optional("REMOTEBANK_JANUS_TOKEN_SECRET") or "",
    }
    return [_server_from_mapping(single, allow_dev_defaults=allow_dev_defaults, where="REMOTEBANK_JANUS_*")]


JANUS_SERVERS = janus_servers_from_env(allow_dev_defaults=not _PRODUCTION)

# Where Janus writes .mjr recordings: one sub-folder per call below this one.
JANUS_RECORDINGS_DIR = env_path("REMOTEBANK_JANUS_RECORDINGS_DIR", _VAR_DIR / "recordings")
# The generated configuration folder, pidfile and log (scripts/janus.sh).
JANUS_RUN_DIR = env_path("REMOTEBANK_JANUS_RUN_DIR", _VAR_DIR / "janus")
JANUS_CONFIG_DIR = JANUS_RUN_DIR / "conf"

# Janus' sample event handler POSTs every event here (JSON list when grouped).
# It authenticates with the shared secret, sent both as ``?secret=`` in the URL
# and as HTTP basic auth (user "janus"); see docs/janus.md.
JANUS_EVENTS_URL = env_str("REMOTEBANK_JANUS_EVENTS_URL", "http://127.0.0.1:8000/api/calls/janus-events/")
_events_secret = env_optional("REMOTEBANK_JANUS_EVENTS_SECRET")
if _PRODUCTION and (_events_secret is None or len(_events_secret) < JANUS_SECRET_MIN_LENGTH):
    raise ImproperlyConfigured(
        f"REMOTEBANK_JANUS_EVENTS_SECRET is required in production, at least {JANUS_SECRET_MIN_LENGTH} characters"
    )
JANUS_EVENTS_SECRET = _events_secret or _DEV_EVENTS_SECRET

# UDP ports Janus uses for media ("min-max"); open them in the firewall.
JANUS_RTP_PORT_RANGE = env_str("REMOTEBANK_JANUS_RTP_PORT_RANGE", "20000-40000")
# Network namespace to run Janus in (scripts/netns.sh); empty = the host's.
JANUS_NETNS = env_str("REMOTEBANK_JANUS_NETNS", "")
# 0-7; 4 logs start-up, sessions and errors without per-packet noise.
JANUS_DEBUG_LEVEL = env_int("REMOTEBANK_JANUS_DEBUG_LEVEL", 4)
# How long the tokens handed to a browser stay valid. The session token is
# checked on every Janus request (keep-alives included), so it must outlast
# the longest call; the room token is only checked when joining.
JANUS_TOKEN_SECONDS = env_int("REMOTEBANK_JANUS_TOKEN_SECONDS", 4 * 3600)
