"""TURN (coturn) and the NAT settings of Janus (docs/janus.md, "TURN and NAT").

Customers call from phones behind carrier-grade NAT and from networks that
block UDP: their media then only reaches Janus through a TURN relay. The
platform runs coturn beside Janus (``scripts/turn.sh``, started by
``make run``) with a configuration generated from these settings
(``manage.py turn_config``), and hands each participant of each call
time-limited TURN credentials (the TURN REST API shared-secret scheme,
``apps.calls.integrations.turn``).

Environment only. Outside production the shared secret falls back to a fixed,
plainly non-secret development string; under ``remotebank.settings.production``
it is required while TURN is enabled.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from remotebank.settings.environment import env_bool, env_int, env_list, env_optional, env_path, env_str

__all__ = [
    "CALL_MEDIA_STALL_SECONDS",
    "CALL_VIDEO_BITRATE_CUSTOMER",
    "CALL_VIDEO_BITRATE_STAFF",
    "CALL_VIDEO_SIMULCAST_STAFF",
    "JANUS_KEEP_PRIVATE_HOST",
    "JANUS_NAT_1_1_MAPPING",
    "JANUS_TURN",
    "JANUS_TURN_CREDENTIAL_SECONDS",
    "TURN_ALLOWED_PEER_IPS",
    "TURN_CREDENTIAL_SECONDS",
    "TURN_ENABLED",
    "TURN_EXTERNAL_IP",
    "TURN_LISTEN_IP",
    "TURN_PORT",
    "TURN_REALM",
    "TURN_RELAY_IP",
    "TURN_RELAY_PORT_RANGE",
    "TURN_RUN_DIR",
    "TURN_SECRET",
    "TURN_TLS_CERT",
    "TURN_TLS_KEY",
    "TURN_TLS_PORT",
    "TURN_URLS",
    "TURN_URLS_BY_SERVER",
]

_VAR_DIR = env_path("REMOTEBANK_VAR_DIR", Path(__file__).resolve().parent.parent.parent / "var")
_PRODUCTION = env_str("DJANGO_SETTINGS_MODULE", "").endswith(".production")
_DEV_TURN_SECRET = "dev-turn-shared-secret"  # noqa: S105 - development default, refused in production

# Off: no ICE servers are handed to browsers and `make run` starts no coturn.
TURN_ENABLED = env_bool("REMOTEBANK_TURN_ENABLED", default=True)
# coturn's static-auth-secret: the platform signs every participant's
# credentials with it. Shared by every coturn of the deployment.
_secret = env_optional("REMOTEBANK_TURN_SECRET")
if _secret is None and _PRODUCTION and TURN_ENABLED:
    raise ImproperlyConfigured(
        "REMOTEBANK_TURN_SECRET is required in production (or set REMOTEBANK_TURN_ENABLED=false)"
    )
TURN_SECRET = _secret or _DEV_TURN_SECRET
if any(character in TURN_SECRET for character in '"\\\n\r'):
    raise ImproperlyConfigured("REMOTEBANK_TURN_SECRET must not contain quotes, backslashes or newlines")
TURN_REALM = env_str("REMOTEBANK_TURN_REALM", "remotebank")
# How long one participant's credentials stay valid. coturn checks them on
# every allocation refresh, so they must outlast the longest call.
TURN_CREDENTIAL_SECONDS = env_int("REMOTEBANK_TURN_CREDENTIAL_SECONDS", 4 * 3600)

# coturn's own addresses (the generated turnserver.conf).
TURN_LISTEN_IP = env_str("REMOTEBANK_TURN_LISTEN_IP", "127.0.0.1")
# Where relayed media leaves coturn towards Janus; default = the listening address.
TURN_RELAY_IP = env_str("REMOTEBANK_TURN_RELAY_IP", "")
# coturn behind a 1:1 NAT (cloud VM): "PUBLIC" or "PUBLIC/PRIVATE".
TURN_EXTERNAL_IP = env_str("REMOTEBANK_TURN_EXTERNAL_IP", "")
TURN_PORT = env_int("REMOTEBANK_TURN_PORT", 3478)
TURN_TLS_PORT = env_int("REMOTEBANK_TURN_TLS_PORT", 5349)
# TURN over TLS (turns:) only when both are set: the last way through a
# firewall that lets nothing but TLS out.
TURN_TLS_CERT = env_str("REMOTEBANK_TURN_TLS_CERT", "")
TURN_TLS_KEY = env_str("REMOTEBANK_TURN_TLS_KEY", "")
if bool(TURN_TLS_CERT) != bool(TURN_TLS_KEY):
    raise ImproperlyConfigured("REMOTEBANK_TURN_TLS_CERT and REMOTEBANK_TURN_TLS_KEY go together")
# UDP ports of the relayed allocations ("min-max"); open them in the firewall.
TURN_RELAY_PORT_RANGE = env_str("REMOTEBANK_TURN_RELAY_PORT_RANGE", "49152-65535")
# Addresses coturn may relay to (Janus' media addresses). Set in production,
# so that the TURN server cannot be used to reach anything else; empty =
# coturn's defaults (anything but loopback and multicast).
TURN_ALLOWED_PEER_IPS = env_list("REMOTEBANK_TURN_ALLOWED_PEER_IPS", [])
TURN_RUN_DIR = env_path("REMOTEBANK_TURN_RUN_DIR", _VAR_DIR / "turn")


def _default_urls() -> list[str]:
    host = env_str("REMOTEBANK_TURN_PUBLIC_HOST", TURN_LISTEN_IP)
    urls = [f"turn:{host}:{TURN_PORT}?transport=udp", f"turn:{host}:{TURN_PORT}?transport=tcp"]
    if TURN_TLS_CERT:
        urls.append(f"turns:{host}:{TURN_TLS_PORT}?transport=tcp")
    return urls


def _check_urls(urls: list[str], where: str) -> list[str]:
    for url in urls:
        if not url.startswith(("turn:", "turns:", "stun:")):
            raise ImproperlyConfigured(f"{where}: {url!r} is not a turn:, turns: or stun: URL")
    return urls


# What browsers are given (RTCIceServer urls): UDP first, then TCP, then TLS.
TURN_URLS = _check_urls(env_list("REMOTEBANK_TURN_URLS", _default_urls()), "REMOTEBANK_TURN_URLS")


def _urls_by_server() -> dict[str, list[str]]:
    raw = env_optional("REMOTEBANK_TURN_URLS_BY_SERVER")
    if raw is None:
        return {}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"REMOTEBANK_TURN_URLS_BY_SERVER is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict) or not all(
        isinstance(urls, list) and all(isinstance(url, str) for url in urls) for urls in parsed.values()
    ):
        raise ImproperlyConfigured("REMOTEBANK_TURN_URLS_BY_SERVER must map Janus server names to lists of URLs")
    return {name: _check_urls(urls, f"REMOTEBANK_TURN_URLS_BY_SERVER[{name}]") for name, urls in parsed.items()}


# One TURN per region: a call placed on Janus server NAME gets these URLs
# instead of TURN_URLS (the TURN beside that Janus).
TURN_URLS_BY_SERVER = _urls_by_server()

# Janus behind a 1:1 NAT (cloud VM): its public address(es), comma-separated,
# advertised in its candidates instead of the private one.
JANUS_NAT_1_1_MAPPING = env_str("REMOTEBANK_JANUS_NAT_1_1_MAPPING", "")
# With a mapping, also keep the private address as a candidate (callers inside
# the same network connect directly).
JANUS_KEEP_PRIVATE_HOST = env_bool("REMOTEBANK_JANUS_KEEP_PRIVATE_HOST", default=True)
# Janus gathers relay candidates on the same TURN too (only needed when Janus
# itself sits behind a firewall that drops inbound UDP).
JANUS_TURN = env_bool("REMOTEBANK_JANUS_TURN", default=False)
# Janus' TURN credentials are minted when its configuration is generated
# (scripts/janus.sh start): restart Janus before they expire.
JANUS_TURN_CREDENTIAL_SECONDS = env_int("REMOTEBANK_JANUS_TURN_CREDENTIAL_SECONDS", 30 * 24 * 3600)

# Weak links: the video bitrate cap (bits/s) Janus asks each publisher to keep
# to (videoroom ``configure`` ``bitrate``, enforced by REMB). A phone's 4G
# uplink is the narrowest part of a call, so the customer's cap is small.
# Staff cameras go out in simulcast layers and each weak subscriber (the
# customer's phone on a poor downlink) gets a lower one. On by default since
# 2026-12-03: tests/calls/test_network.py's simulcast test checks that a
# weak subscriber gets a lower layer and that the recordings last as long as
# they were written through the layer switches. docs/janus.md, "Weak links".
CALL_VIDEO_BITRATE_CUSTOMER = env_int("REMOTEBANK_CALL_VIDEO_BITRATE_CUSTOMER", 300_000)
CALL_VIDEO_BITRATE_STAFF = env_int("REMOTEBANK_CALL_VIDEO_BITRATE_STAFF", 900_000)
CALL_VIDEO_SIMULCAST_STAFF = env_bool("REMOTEBANK_CALL_VIDEO_SIMULCAST_STAFF", default=True)
# A remote video that decodes no frame for this long is a stall: the page
# restarts ICE (same session, new candidates) before the call's rejoin grace
# period (CALL_REJOIN_GRACE_SECONDS) would start.
CALL_MEDIA_STALL_SECONDS = env_int("REMOTEBANK_CALL_MEDIA_STALL_SECONDS", 3)
