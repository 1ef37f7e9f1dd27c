"""The small items of issue #17: WebSocket origin, Janus secret length, the schema, a visit and a staff login."""

from __future__ import annotations

from typing import Any

import pytest
from channels.security.websocket import AllowedHostsOriginValidator
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.urls import reverse

from apps.security.websocket import SameOriginValidator, websocket_origin_allowed
from apps.visits.authentication import SESSION_KEY
from remotebank.settings.janus import janus_servers_from_env


def _scope(origin: str, *, host: str = "bank.example", scheme: str = "wss", extra: list[Any] | None = None) -> dict:
    headers = [(b"host", host.encode()), (b"origin", origin.encode()), *(extra or [])]
    return {"type": "websocket", "scheme": scheme, "headers": headers}


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://bank.example", True),
        ("https://bank.example:443", True),
        ("https://BANK.example", True),
        ("http://bank.example", False),  # another scheme
        ("https://bank.example:8443", False),  # another port: another service on the host
        ("https://evil.example", False),
        ("null", False),
        ("", False),
    ],
)
def test_the_websocket_origin_must_match_scheme_host_and_port(origin: str, allowed: bool) -> None:
    assert websocket_origin_allowed(_scope(origin)) is allowed


def test_the_websocket_origin_behind_a_tls_proxy_and_trusted_origins(settings: Any) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    proxied = [(b"x-forwarded-proto", b"https")]
    assert websocket_origin_allowed(_scope("https://bank.example", scheme="ws", extra=proxied))
    assert not websocket_origin_allowed(_scope("https://bank.example", scheme="ws"))
    settings.CSRF_TRUSTED_ORIGINS = ["https://branch.bank.example:8443"]
    assert websocket_origin_allowed(_scope("https://branch.bank.example:8443"))


async def _accepting(scope: dict, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})


async def _handshake(application: Any, origin: bytes) -> bool:
    socket = WebsocketCommunicator(application, "/ws/agent/", headers=[(b"origin", origin), (b"host", b"localhost")])
    connected, _ = await socket.connect(timeout=5)
    # Also after a refusal: the denier waits for the browser's side to go.
    await socket.disconnect(timeout=1)
    return connected


async def test_the_sockets_of_the_platform_refuse_another_port_at_the_handshake() -> None:
    from remotebank.asgi import application

    # The real stack is guarded by the strict check ...
    assert isinstance(application.application_mapping["websocket"], SameOriginValidator)
    # ... which, unlike a host-only check, refuses another port or scheme of the same host.
    assert await _handshake(SameOriginValidator(_accepting), b"http://localhost")
    assert not await _handshake(SameOriginValidator(_accepting), b"http://localhost:8080")
    assert not await _handshake(SameOriginValidator(_accepting), b"https://localhost")
    assert await _handshake(AllowedHostsOriginValidator(_accepting), b"http://localhost:8080")


@pytest.mark.parametrize("secret", ["ab", "x" * 15])
def test_short_janus_secrets_are_refused_in_production(monkeypatch: pytest.MonkeyPatch, secret: str) -> None:
    monkeypatch.delenv("REMOTEBANK_JANUS_SERVERS", raising=False)
    for name in ("API_SECRET", "ADMIN_SECRET", "ADMIN_KEY", "TOKEN_SECRET"):
        monkeypatch.setenv(f"REMOTEBANK_JANUS_{name}", "long-enough-secret-0123456789")
    monkeypatch.setenv("REMOTEBANK_JANUS_API_SECRET", secret)
    with pytest.raises(ImproperlyConfigured, match="at least 16"):
        janus_servers_from_env(allow_dev_defaults=False)
    monkeypatch.setenv("REMOTEBANK_JANUS_API_SECRET", "x" * 16)
    assert janus_servers_from_env(allow_dev_defaults=False)[0]["api_secret"] == "x" * 16


@pytest.mark.django_db
def test_the_api_schema_needs_a_staff_login(client: Client, agent: User) -> None:
    assert client.get("/api/schema/").status_code == 403
    client.force_login(agent)
    assert client.get("/api/schema/").status_code == 200


@pytest.mark.django_db
def test_a_staff_login_in_the_same_browser_ends_the_customers_visit_there(client: Client, agent: User) -> None:
    started = client.post(
        reverse("verification:visit-start"), {"business": "activation", "mobile": "13912345678"}, "application/json"
    )
    assert started.status_code == 201
    assert client.get(reverse("verification:visit-current")).status_code == 200
    response = client.post(
        reverse("admin:login"), {"username": agent.username, "password": "correct horse battery", "next": "/console/"}
    )
    assert response.status_code == 302
    assert SESSION_KEY not in client.session
    assert client.get(reverse("verification:visit-current")).status_code in (403, 404)
