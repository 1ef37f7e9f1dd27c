"""Server-side frame capture: the server subscribes to a participant's feed in Janus and decodes frames itself.

Touches no models. The live image of Gate 3 and every snapshot (R5) come from
here, never from a browser: an agent's browser could upload any picture (the
registry photo, say) as "the customer". The server joins the call's room as a
*subscriber* of the customer's feed (janus-client for signalling, aiortc for
WebRTC and the VP8 decoder), with a room token it signs itself, takes the
frames it was asked for and leaves. Each frame carries the feed id and the
server's own capture time.

Synchronous like :class:`~apps.calls.integrations.janus.JanusVideoRoom`: the
exchange runs on a private event loop in a thread of its own, bounded by a
timeout, so a silent Janus or a feed that sends nothing cannot hold a request.

``settings.MEDIA_CAPTURE_NETNS`` (development and CI only, needs root): when
Janus runs in a network namespace (docs/janus.md, "the loopback pitfall"),
the capture thread joins that namespace (``setns``, which moves only the
calling thread) so its sockets reach Janus there. aioice leaves loopback
addresses out of its host candidates; inside such a namespace 127.0.0.1 (on
a veth) is the only address, so when aioice finds none it is offered.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from PIL import Image

from apps.calls.integrations.janus import (
    JanusError,
    JanusServer,
    JanusUnavailable,
    janus_client_load,
    janus_token,
)

logger = logging.getLogger(__name__)

_CLONE_NEWNET = 0x40000000


class CaptureError(JanusError):
    """The frames could not be captured: Janus refused the subscription, or the feed sent no video in time."""


@dataclass(frozen=True)
class CapturedFrame:
    """One decoded frame of a participant's video, as the server received it."""

    image: Image.Image  # RGB
    feed_id: int
    captured_at: datetime  # the server's clock when the frame was decoded
    index: int  # 0-based position in the burst


def _host_addresses_with_fallback() -> None:
    """Offer 127.0.0.1 when aioice finds no usable host address (inside a namespace; see module doc)."""
    import aioice.ice

    original = aioice.ice.get_host_addresses
    if getattr(original, "_remotebank_fallback", False):
        return

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        found: list[str] = original(use_ipv4, use_ipv6)
        return found or (["127.0.0.1"] if use_ipv4 else [])

    host_addresses._remotebank_fallback = True  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = host_addresses


def _enter_netns(name: str) -> None:
    """Move the calling thread (only) into the network namespace ``name`` (``ip netns`` naming)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise CaptureError(f"cannot enter network namespace {name!r}: {os.strerror(error)}")
    finally:
        os.close(fd)


def _to_rgb(frame: Any) -> Image.Image:
    return Image.fromarray(frame.to_ndarray(format="rgb24"), mode="RGB")


async def _subscribe_and_take(  # noqa: PLR0915 - one exchange, read top to bottom
    server: JanusServer,
    *,
    room_id: int,
    feed_id: int,
    count: int,
    interval: float,
    duration: float | None,
    on_frame: Callable[[CapturedFrame], None] | None,
) -> list[CapturedFrame]:
    from aiortc import RTCConfiguration

    janus_client = janus_client_load()
    session = janus_client.JanusSession(base_url=server.admin_ws_url, api_secret=server.api_secret)
    # No ICE servers: aiortc's default is a public STUN server, which a bank's server must not call.
    plugin = janus_client.JanusVideoRoomPlugin(pc_config=RTCConfiguration(iceServers=[]))
    frames: list[CapturedFrame] = []
    done = asyncio.get_running_loop().create_future()

    async def take(track: Any) -> None:
        next_at = 0.0
        first: float | None = None
        try:
            while len(frames) < count and (duration is None or first is None or time.monotonic() - first < duration):
                frame = await track.recv()
                now = time.monotonic()
                first = now if first is None else first
                if now < next_at:
                    continue  # frames between two takes are decoded (VP8 needs them) and dropped
                captured = CapturedFrame(
                    image=_to_rgb(frame), feed_id=feed_id, captured_at=datetime.now(tz=UTC), index=len(frames)
                )
                frames.append(captured)
                if on_frame is not None:
                    on_frame(captured)
                next_at = now + interval
            if not done.done():
                done.set_result(None)
        except Exception as exc:  # the track ended (publisher left): reported below as too few frames
            if not done.done():
                done.set_exception(CaptureError(f"the feed stopped after {len(frames)} frame(s): {exc}"))

    tasks: list[asyncio.Task[None]] = []

    @plugin.pc.on("track")
    def on_track(track: Any) -> None:
        if track.kind == "video":
            tasks.append(asyncio.ensure_future(take(track)))

    try:
        try:
            await session.create()
        except (OSError, TimeoutError) as exc:
            raise JanusUnavailable(f"Janus at {server.admin_ws_url} is unreachable: {exc}") from exc
        await plugin.attach(session)
        body = {
            "request": "join",
            "ptype": "subscriber",
            "room": room_id,
            "streams": [{"feed": feed_id}],
            # The server signs its own room token: the room has signed_tokens on.
            "token": janus_token(server, room_id=room_id, valid_seconds=60),
        }
        try:
            response = await plugin._send_request(body, timeout=10)
        except Exception as exc:  # VideoRoomError: no such feed, wrong token...
            raise CaptureError(f"Janus refused to subscribe to feed {feed_id}: {exc}") from exc
        if "jsep" not in response:
            raise CaptureError(f"Janus sent no offer for feed {feed_id}")
        await plugin.on_receive_jsep(response["jsep"])
        await plugin.pc.setLocalDescription(await plugin.pc.createAnswer())
        await plugin.start(timeout=10)
        await done
        return frames
    finally:
        for task in tasks:
            task.cancel()
        await _leave(session, plugin)


async def _leave(session: Any, plugin: Any) -> None:
    """Leave the room and close everything, best effort: Janus drops the session when the socket closes anyway."""
    for cleanup in (plugin.leave, plugin.destroy, session.destroy):
        try:
            await asyncio.wait_for(cleanup(), 2)
        except Exception:
            logger.debug("capture cleanup step failed", exc_info=True)
    try:
        await plugin.pc.close()
        await session.transport.disconnect()
    except Exception:
        logger.debug("closing the capture connection failed", exc_info=True)


def capture_frames(
    server: JanusServer,
    *,
    room_id: int,
    feed_id: int,
    count: int = 1,
    interval: float = 0.0,
    duration: float | None = None,
    timeout: float | None = None,
    on_frame: Callable[[CapturedFrame], None] | None = None,
) -> list[CapturedFrame]:
    """Subscribe to ``feed_id`` in ``room_id`` and return up to ``count`` frames at least ``interval`` seconds apart.

    With ``duration``, stop that many seconds after the first frame even if
    fewer than ``count`` came (a burst over a liveness challenge); ``timeout``
    (default MEDIA_CAPTURE_TIMEOUT_SECONDS) bounds the whole exchange.
    ``on_frame`` is called in the capture thread with each frame as it
    arrives (keep it quick: hand the frame to another thread).

    Raises :class:`CaptureError` (refused, no video in time) or
    :class:`~apps.calls.integrations.janus.JanusUnavailable`.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("capture_frames is synchronous; call it through sync_to_async or from a task")
    bound = float(timeout if timeout is not None else settings.MEDIA_CAPTURE_TIMEOUT_SECONDS)
    janus_client_load()
    _host_addresses_with_fallback()
    outcome: dict[str, Any] = {}
    netns = str(getattr(settings, "MEDIA_CAPTURE_NETNS", "") or "")

    def run() -> None:
        try:
            if netns:
                _enter_netns(netns)

            async def bounded() -> list[CapturedFrame]:
                try:
                    return await asyncio.wait_for(
                        _subscribe_and_take(
                            server,
                            room_id=room_id,
                            feed_id=feed_id,
                            count=count,
                            interval=interval,
                            duration=duration,
                            on_frame=on_frame,
                        ),
                        bound,
                    )
                except TimeoutError as exc:
                    raise CaptureError(f"no video from feed {feed_id} within {bound:g} s") from exc

            outcome["frames"] = asyncio.run(bounded())
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    # A thread of its own: setns must not move the caller's thread, and the
    # loop must not be the caller's.
    worker = threading.Thread(target=run, name=f"media-capture-{feed_id}", daemon=True)
    worker.start()
    worker.join(bound + 5)
    if worker.is_alive():
        raise CaptureError(f"the capture of feed {feed_id} did not finish within {bound + 5:g} s")
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, JanusError):
            raise error
        raise CaptureError(f"capturing feed {feed_id} failed: {error}") from error
    frames: list[CapturedFrame] = outcome["frames"]
    return frames
