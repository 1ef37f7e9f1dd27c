"""Janus WebRTC server: configuration, browser tokens and room control.

Touches no models. Services call :class:`JanusVideoRoom` (synchronous: from
Celery tasks or sync services, never from inside a running event loop) and
hand browsers what :func:`janus_session_token` and :func:`janus_token` return.
See docs/janus.md for the protocol details summarised here.

Tokens (Janus 1.1.2, ``token_auth`` + ``token_auth_secret``). A signed token is
``<expiry>,<realm>,<descriptor>[,<descriptor>...]:<signature>`` where expiry is
Unix seconds, and signature = base64(HMAC-SHA1(token_auth_secret, everything
before the colon)), standard alphabet with padding. Janus checks two different
realms, so a browser needs two tokens:

- the *session token* (realm ``janus``, descriptor ``janus.plugin.videoroom``):
  passed to janus.js as ``new Janus({token})`` and checked by the core on every
  request (create, attach, keep-alive, trickle...). It may be attached to the
  videoroom plugin only. It must stay valid for the whole call, because
  keep-alives carrying an expired token are refused and the session then dies.
- the *room token* (realm ``janus.plugin.videoroom``, descriptor
  ``room=<room id>``): put in the videoroom ``join`` request's ``token`` field.
  Rooms created by :meth:`JanusVideoRoom.create_room` have ``signed_tokens``
  on, so the plugin refuses a join without it, with a bad signature, after its
  expiry, or for another room (``Unauthorized (wrong token)``, code 433).

The Django server itself authenticates with the ``api_secret`` (Janus accepts
either a valid api_secret or a valid token) and creates rooms with the
videoroom ``admin_key``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings

VIDEOROOM_PLUGIN = "janus.plugin.videoroom"
SESSION_REALM = "janus"

# Janus error codes worth naming (core: apierror.h; videoroom: janus_videoroom.c).
JANUS_ERROR_UNAUTHORIZED = 403
VIDEOROOM_ERROR_NO_SUCH_ROOM = 426
VIDEOROOM_ERROR_ROOM_EXISTS = 427
VIDEOROOM_ERROR_UNAUTHORIZED = 433

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _import_janus_client() -> Any:
    """Import janus-client without its side effects.

    At import it calls ``logging.basicConfig(INFO)`` (janus_client/media.py)
    and touches a deprecated ``websockets`` name; afterwards it logs every
    message it sends or receives at INFO — secrets included (api_secret,
    admin_key, room secret). So: keep the root logger as it was, silence the
    deprecation warning of the import only, and cap its loggers at WARNING.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"janus_client(\..*)?$")
            warnings.filterwarnings("ignore", message=r"websockets\..* is deprecated", category=DeprecationWarning)
            import janus_client
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    logging.getLogger("janus_client").setLevel(logging.WARNING)
    return janus_client


# The janus-client module once loaded; see janus_client_load().
_janus_client: Any = None
_janus_client_lock = threading.Lock()


def janus_client_load() -> Any:
    """janus-client, imported once per process and outside any exchange's timeout.

    Importing it (websockets and its own modules) takes about 0.5 s on an idle
    machine and was measured at 3.6–5.9 s under load: inside the 5 s bound of
    an exchange it made the first call after a worker started fail
    ``media_server_failed``. Processes that talk to Janus load it when they
    start (``remotebank.warm_up``: Celery's ``worker_process_init``, Daphne's
    ASGI module); anything else still loads it here, before the exchange's
    clock starts. It is not imported at this module's import, so management
    commands and tests that never reach Janus do not pay for it.
    """
    global _janus_client  # noqa: PLW0603 - a deliberate per-process cache
    if _janus_client is None:
        with _janus_client_lock:
            if _janus_client is None:
                _janus_client = _import_janus_client()
    return _janus_client


def janus_client_warm_up() -> None:
    """Load janus-client now (a process start-up hook, ``remotebank.warm_up``)."""
    janus_client_load()


@dataclass(frozen=True)
class JanusServer:
    """One Janus instance as configured in ``settings.JANUS_SERVERS``.

    ``admin_ws_url`` is where the Django server reaches the *Janus API*
    (WebSocket, e.g. ws://127.0.0.1:8188); the separate *Admin API* is at
    ``admin_api_url`` (e.g. ws://127.0.0.1:7088), used only to count sessions.
    """

    name: str
    admin_ws_url: str
    public_ws_url: str
    api_secret: str
    admin_key: str
    token_secret: str
    admin_secret: str = ""
    admin_api_url: str = ""


class UnknownJanusServer(LookupError):
    """No Janus server of that name is configured."""


def _server_from_settings(raw: dict[str, str]) -> JanusServer:
    return JanusServer(
        name=raw["name"],
        admin_ws_url=raw["ws_url"],
        public_ws_url=raw.get("public_ws_url") or raw["ws_url"],
        api_secret=raw["api_secret"],
        admin_key=raw["admin_key"],
        token_secret=raw["token_secret"],
        admin_secret=raw.get("admin_secret", ""),
        admin_api_url=raw.get("admin_api_url", ""),
    )


def janus_servers() -> list[JanusServer]:
    """Every configured Janus server, in settings order."""
    return [_server_from_settings(raw) for raw in settings.JANUS_SERVERS]


def janus_server(name: str) -> JanusServer:
    for server in janus_servers():
        if server.name == name:
            return server
    raise UnknownJanusServer(f"No Janus server named {name!r} is configured")


def _signed(secret: str, realm: str, descriptors: list[str], *, valid_seconds: int, now: float | None) -> str:
    if valid_seconds <= 0:
        raise ValueError("valid_seconds must be positive")
    expiry = int(now if now is not None else time.time()) + valid_seconds
    data = ",".join([str(expiry), realm, *descriptors])
    digest = hmac.new(secret.encode(), data.encode(), hashlib.sha1).digest()
    return f"{data}:{base64.b64encode(digest).decode()}"


def janus_session_token(server: JanusServer, *, valid_seconds: int, now: float | None = None) -> str:
    """The core token for janus.js (``new Janus({token})``): videoroom plugin only, any room.

    Checked on every request of the browser's Janus session, keep-alives
    included: make it outlast the call.
    """
    return _signed(server.token_secret, SESSION_REALM, [VIDEOROOM_PLUGIN], valid_seconds=valid_seconds, now=now)


def janus_token(server: JanusServer, *, room_id: int, valid_seconds: int, now: float | None = None) -> str:
    """The videoroom token bound to ONE room: the ``token`` of the ``join`` request.

    Only checked when joining (publisher or subscriber), so a rejoin needs a
    fresh one while it is still valid.
    """
    return _signed(server.token_secret, VIDEOROOM_PLUGIN, [f"room={room_id}"], valid_seconds=valid_seconds, now=now)


class JanusError(Exception):
    """Janus refused a request (``code`` is Janus' error code) or could not be reached (``code`` None)."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(f"{message} (Janus error {code})" if code is not None else message)
        self.code = code
        self.message = message


class JanusUnavailable(JanusError):
    """Janus did not answer: connection refused, closed, or timed out."""


@dataclass(frozen=True)
class RoomParticipant:
    id: int
    display: str
    publisher: bool
    talking: bool | None


def _raise_for_error(response: dict[str, Any]) -> None:
    if response.get("janus") == "error":
        error = response.get("error") or {}
        raise JanusError(str(error.get("reason", "unknown error")), code=error.get("code"))
    data = (response.get("plugindata") or {}).get("data") or {}
    if "error" in data or "error_code" in data:
        raise JanusError(str(data.get("error", "unknown error")), code=data.get("error_code"))


class _JanusApi:
    """One short-lived WebSocket connection to the Janus (or Admin) API.

    Uses janus-client's transport for transactions; sessions and handles are
    managed here so that every refusal keeps Janus' error code.
    """

    def __init__(self, url: str, *, api_secret: str | None, admin: bool = False) -> None:
        janus_client = janus_client_load()
        config = {"subprotocol": "janus-admin-protocol"} if admin else {}
        self.transport = janus_client.JanusTransport.create_transport(
            base_url=url, api_secret=api_secret, config=config
        )
        self.url = url

    async def __aenter__(self) -> _JanusApi:
        try:
            await self.transport.connect()
        except (TimeoutError, OSError) as exc:
            raise JanusUnavailable(f"Janus at {self.url} is unreachable: {exc}") from exc
        except Exception as exc:  # websockets' handshake errors (InvalidStatus, InvalidURI...)
            raise JanusUnavailable(f"Janus at {self.url} refused the WebSocket: {exc}") from exc
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self.transport.disconnect()
        except Exception:  # closing a socket that is already gone is not a failure
            logger.debug("closing the Janus WebSocket failed", exc_info=True)

    async def call(
        self, message: dict[str, Any], *, session_id: int | None = None, handle_id: int | None = None
    ) -> dict[str, Any]:
        if not self.transport.connected:
            raise JanusUnavailable(f"Janus at {self.url} closed the connection")
        transaction = await self.transport.send(message, session_id=session_id, handle_id=handle_id)
        try:
            response: dict[str, Any] = await transaction.get(
                matcher=lambda reply: reply.get("janus") in ("success", "error", "pong", "server_info")
            )
        finally:
            await transaction.done()
        _raise_for_error(response)
        return response


class _VideoRoomHandle:
    """A Janus session with the videoroom plugin attached, for synchronous requests."""

    def __init__(self, api: _JanusApi) -> None:
        self.api = api
        self.session_id: int | None = None
        self.handle_id: int | None = None

    async def open(self) -> None:
        created = await self.api.call({"janus": "create"})
        self.session_id = int(created["data"]["id"])
        attached = await self.api.call({"janus": "attach", "plugin": VIDEOROOM_PLUGIN}, session_id=self.session_id)
        self.handle_id = int(attached["data"]["id"])

    async def request(self, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.api.call(
            {"janus": "message", "body": body}, session_id=self.session_id, handle_id=self.handle_id
        )
        data: dict[str, Any] = response["plugindata"]["data"]
        return data

    async def close(self) -> None:
        if self.session_id is None:
            return
        # Best effort: Janus also destroys the session when the WebSocket goes.
        try:
            await asyncio.wait_for(self.api.call({"janus": "destroy"}, session_id=self.session_id), 1.0)
        except (TimeoutError, JanusError):
            logger.debug("destroying the Janus control session failed", exc_info=True)


def _run_sync(factory: Callable[[], Awaitable[T]], *, timeout: float, what: str) -> T:
    """Run one Janus exchange on a private event loop, within ``timeout`` seconds."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        # Blocking a running loop (Daphne's) for seconds would stall every
        # other connection it serves: call through sync_to_async instead.
        raise RuntimeError("JanusVideoRoom is synchronous; call it through sync_to_async or from a task")

    # Loaded before the clock starts: the import alone could use up the bound.
    janus_client_load()

    async def bounded() -> T:
        try:
            return await asyncio.wait_for(factory(), timeout)
        except TimeoutError as exc:
            raise JanusUnavailable(f"Janus did not answer {what} within {timeout:g} s") from exc

    return asyncio.run(bounded())


class JanusVideoRoom:
    """Server-side control of video rooms on one Janus server (synchronous).

    Each method opens its own short WebSocket session (a few milliseconds on
    a local network) and raises :class:`JanusError` on a refusal or
    :class:`JanusUnavailable` when Janus cannot be reached in ``timeout``.
    """

    def __init__(self, server: JanusServer, *, timeout: float = 5.0) -> None:
        self.server = server
        self.timeout = timeout

    def _videoroom(self, body: dict[str, Any], *, what: str) -> dict[str, Any]:
        async def exchange() -> dict[str, Any]:
            async with _JanusApi(self.server.admin_ws_url, api_secret=self.server.api_secret) as api:
                handle = _VideoRoomHandle(api)
                try:
                    await handle.open()
                    return await handle.request(body)
                finally:
                    await handle.close()

        return _run_sync(exchange, timeout=self.timeout, what=what)

    def create_room(
        self,
        *,
        room_id: int,
        secret: str,
        description: str,
        record_dir: str,
        publishers: int = 3,
        pin: str | None = None,
    ) -> None:
        """Create a private room recorded from the start, joinable only with :func:`janus_token`.

        ``record`` + ``lock_record``: every publisher is recorded (audio and
        video, one .mjr per stream) into ``record_dir``, and only a request
        carrying the room secret can change that, so no browser can turn the
        recording off. ``record_dir`` must exist and be writable by Janus.
        Raises JanusError with code 427 if the room already exists.
        """
        body: dict[str, Any] = {
            "request": "create",
            "admin_key": self.server.admin_key,
            "room": room_id,
            "permanent": False,
            "description": description,
            "secret": secret,
            "is_private": True,
            "publishers": publishers,
            "signed_tokens": True,
            "audiocodec": "opus",
            "videocodec": "vp8",
            "record": True,
            "lock_record": True,
            "rec_dir": record_dir,
            "notify_joining": True,
            "audiolevel_event": True,
        }
        if pin:
            body["pin"] = pin
        self._videoroom(body, what="create")

    def destroy_room(self, *, room_id: int, secret: str) -> None:
        """Destroy the room; participants are told and dropped, recordings are closed."""
        self._videoroom({"request": "destroy", "room": room_id, "secret": secret, "permanent": False}, what="destroy")

    def exists(self, *, room_id: int) -> bool:
        data = self._videoroom({"request": "exists", "room": room_id}, what="exists")
        return bool(data.get("exists"))

    def participants(self, *, room_id: int) -> list[RoomParticipant]:
        data = self._videoroom({"request": "listparticipants", "room": room_id}, what="listparticipants")
        return [
            RoomParticipant(
                id=int(item["id"]),
                display=str(item.get("display", "")),
                publisher=bool(item.get("publisher", False)),
                talking=item.get("talking") if isinstance(item.get("talking"), bool) else None,
            )
            for item in data.get("participants", [])
        ]

    def kick(self, *, room_id: int, secret: str, participant_id: int) -> None:
        """Remove a participant; Janus hangs up its PeerConnection."""
        self._videoroom({"request": "kick", "room": room_id, "secret": secret, "id": participant_id}, what="kick")

    def ping(self) -> float:
        """Round-trip time of a Janus API ping, in seconds."""

        async def exchange() -> float:
            async with _JanusApi(self.server.admin_ws_url, api_secret=self.server.api_secret) as api:
                started = time.perf_counter()
                await api.call({"janus": "ping"})
                return time.perf_counter() - started

        return _run_sync(exchange, timeout=self.timeout, what="ping")

    def sessions_count(self) -> int:
        """Live Janus sessions according to the Admin API; 0 if it is not configured or not reachable."""
        if not (self.server.admin_api_url and self.server.admin_secret):
            return 0

        async def exchange() -> int:
            async with _JanusApi(self.server.admin_api_url, api_secret=None, admin=True) as api:
                response = await api.call({"janus": "list_sessions", "admin_secret": self.server.admin_secret})
                return len(response.get("sessions", []))

        try:
            return _run_sync(exchange, timeout=self.timeout, what="list_sessions")
        except JanusError as exc:
            logger.warning("Janus Admin API of %s not usable: %s", self.server.name, exc)
            return 0
