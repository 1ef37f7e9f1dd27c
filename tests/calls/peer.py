"""Janus-side helper for the calls tests: runs INSIDE the network namespace.

The test process cannot reach Janus (inside the namespace 127.0.0.1 lives on
v0, see docs/janus.md), so tests run this script with
``ip netns exec NS python tests/calls/peer.py ...``.

Commands:

``steps``  read a JSON list of steps on stdin, run them in order, print one
           JSON list of results (``{"ok": ...}`` or ``{"error": {...}}`` each).
           Step kinds:

           - ``{"op": "room", "method": NAME, "kwargs": {...}, "server": {...}}``
             calls ``JanusVideoRoom(server).NAME(**kwargs)``;
           - ``{"op": "join", "room_id", "session_token", "room_token", "ptype"}``
             joins like a browser (no media) and leaves;
           - ``{"op": "publish", "room_id", "session_token", "room_token",
             "display", "seconds", "kick_secret", "try_record_off"}`` joins as
             publisher with a synthetic video (numpy drawn frames) and audio
             (440 Hz sine) track, publishes, stays ``seconds``, and reports;
           - ``{"op": "call", "room_id", "session_token", "room_token",
             "display", "peer_display", "seconds", "ice_servers", "bitrate",
             "relay_only"}`` one participant of a two-way call (the network
             tests run two at once, in different namespaces): publishes
             like ``publish`` (through ``ice_servers``, the TURN relay, when
             given), subscribes to the publisher ``peer_display`` as soon as
             it appears, and reports when each remote video frame was
             DECODED, the selected ICE candidate pairs and the feed ids.

``events`` serve Janus' sample event handler feed on 127.0.0.1:PORT and append
           each accepted event as one JSON line to a file (until killed).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import fractions
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# Before anything imports aiortc's ICE: aioice leaves 127.0.0.1 out of its
# host candidates, and 127.0.0.1 is the only address inside the namespace.
import aioice.ice  # noqa: E402

from apps.calls.integrations.janus import (  # noqa: E402
    VIDEOROOM_PLUGIN,
    JanusError,
    JanusServer,
    JanusVideoRoom,
    _import_janus_client,
)

_host_addresses = aioice.ice.get_host_addresses


def _host_addresses_or_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    # In a namespace of scripts/netns.sh `up` the only address is 127.0.0.1
    # (on v0); in those of `wan-up` the real ones are found as usual.
    found = [address for address in _host_addresses(use_ipv4, False) if ":" not in address]
    return found or (["127.0.0.1"] if use_ipv4 else [])


aioice.ice.get_host_addresses = _host_addresses_or_loopback

janus_client = _import_janus_client()

import av  # noqa: E402
import numpy as np  # noqa: E402
from aiortc import RTCConfiguration, RTCIceServer  # noqa: E402
from aiortc.mediastreams import MediaStreamTrack, VideoStreamTrack  # noqa: E402
from aiortc.rtcconfiguration import RTCIceTransportPolicy  # noqa: E402

AUDIO_RATE = 48000
AUDIO_SAMPLES = 960  # 20 ms


class GradientVideoTrack(VideoStreamTrack):
    """320x240 frames at 30 fps: a moving colour gradient with a bright square."""

    def __init__(self) -> None:
        super().__init__()
        self.frames = 0
        y, x = np.mgrid[0:240, 0:320]
        self._x = x.astype(np.uint16)
        self._y = y.astype(np.uint16)

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        shift = self.frames * 4
        image = np.zeros((240, 320, 3), dtype=np.uint8)
        image[..., 0] = (self._x + shift) % 256
        image[..., 1] = (self._y + shift // 2) % 256
        image[..., 2] = 128
        left = (shift * 2) % 280
        image[100:140, left : left + 40] = 255
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = pts
        frame.time_base = time_base
        self.frames += 1
        return frame


class SineAudioTrack(MediaStreamTrack):
    """A 440 Hz sine, mono 48 kHz, in real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._start: float | None = None
        self._pts = 0
        self.frames = 0

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.time()
        else:
            self._pts += AUDIO_SAMPLES
            wait = self._start + self._pts / AUDIO_RATE - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
        t = (np.arange(AUDIO_SAMPLES) + self._pts) / AUDIO_RATE
        samples = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self.frames += 1
        return frame


@dataclasses.dataclass
class SyntheticPlayer:
    """What janus-client's ``publish`` expects of a player: ``.audio`` and ``.video`` tracks."""

    audio: SineAudioTrack
    video: GradientVideoTrack


def _error(exc: BaseException, stage: str) -> dict[str, Any]:
    code = getattr(exc, "code", None)
    if code is None:
        code = getattr(exc, "error_code", None)
    return {"error": {"stage": stage, "type": type(exc).__name__, "code": code, "message": str(exc)}}


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value


async def _in_thread(function: Any, *args: Any, **kwargs: Any) -> Any:
    # JanusVideoRoom is synchronous and refuses to run inside an event loop.
    return await asyncio.get_running_loop().run_in_executor(None, lambda: function(*args, **kwargs))


def step_room(step: dict[str, Any]) -> dict[str, Any]:
    server = JanusServer(**step["server"])
    method = getattr(JanusVideoRoom(server, timeout=step.get("timeout", 5.0)), step["method"])
    try:
        return {"ok": _jsonable(method(**step.get("kwargs", {})))}
    except JanusError as exc:
        return _error(exc, "room")


async def _raw_request(transport: Any, message: dict[str, Any], **ids: Any) -> dict[str, Any]:
    transaction = await transport.send(message, **ids)
    try:
        reply: dict[str, Any] = await asyncio.wait_for(
            transaction.get(matcher=lambda r: r.get("janus") in ("success", "error", "event")), 5
        )
    finally:
        await transaction.done()
    return reply


async def step_join(step: dict[str, Any]) -> dict[str, Any]:
    """Join like a browser: core session token (if any), videoroom token (if any); no media."""
    transport = janus_client.JanusTransport.create_transport(base_url=step["url"], token=step.get("session_token"))
    await transport.connect()
    try:
        reply = await _raw_request(transport, {"janus": "create"})
        if reply["janus"] == "error":
            return {"error": {"stage": "session", **_janus_error(reply)}}
        session_id = reply["data"]["id"]
        reply = await _raw_request(transport, {"janus": "attach", "plugin": VIDEOROOM_PLUGIN}, session_id=session_id)
        if reply["janus"] == "error":
            return {"error": {"stage": "attach", **_janus_error(reply)}}
        handle_id = reply["data"]["id"]
        body: dict[str, Any] = {"request": "join", "room": step["room_id"], "ptype": step.get("ptype", "publisher")}
        if step.get("ptype") == "subscriber":
            body["streams"] = [{"feed": step["feed"]}]
        else:
            body["display"] = step.get("display", "probe")
        if step.get("room_token") is not None:
            body["token"] = step["room_token"]
        reply = await _raw_request(
            transport, {"janus": "message", "body": body}, session_id=session_id, handle_id=handle_id
        )
        if reply["janus"] == "error":
            return {"error": {"stage": "join", **_janus_error(reply)}}
        data = reply["plugindata"]["data"]
        if "error_code" in data:
            return {"error": {"stage": "join", "code": data["error_code"], "message": data.get("error")}}
        return {"ok": {"videoroom": data.get("videoroom"), "id": data.get("id")}}
    finally:
        await transport.disconnect()


def _janus_error(reply: dict[str, Any]) -> dict[str, Any]:
    error = reply.get("error") or {}
    return {"code": error.get("code"), "message": error.get("reason")}


async def step_publish(step: dict[str, Any]) -> dict[str, Any]:
    """Publish synthetic audio + video for ``seconds``; optionally get kicked or try to stop recording."""
    result: dict[str, Any] = {"events": []}
    kicked = asyncio.Event()
    session = janus_client.JanusSession(base_url=step["url"], token=step["session_token"])
    plugin = janus_client.JanusVideoRoomPlugin(pc_config=RTCConfiguration(iceServers=[]))

    async def on_receive(response: dict[str, Any]) -> None:
        data = (response.get("plugindata") or {}).get("data") or {}
        if response.get("janus") in ("hangup", "webrtcup", "detached") or data.get("leaving") or data.get("kicked"):
            result["events"].append(response.get("janus") if response.get("janus") != "event" else data)
        if data.get("leaving") == "ok" or response.get("janus") in ("hangup", "detached"):
            kicked.set()
        await original_on_receive(response)

    original_on_receive = plugin.on_receive
    plugin.on_receive = on_receive  # type: ignore[method-assign]
    player = SyntheticPlayer(audio=SineAudioTrack(), video=GradientVideoTrack())
    started = time.monotonic()
    try:
        await session.create()
        await plugin.attach(session)
        joined = await plugin.join_as_publisher(step["room_id"], display=step["display"], token=step["room_token"])
        result["participant_id"] = joined["id"]
        # janus-client's publish() always sends "record": false, like a browser
        # trying to switch recording off: under lock_record Janus ignores it.
        await plugin.publish(player, timeout=10)
        await asyncio.wait_for(plugin.webrtcup_event.wait(), 10)
        result["webrtcup_seconds"] = round(time.monotonic() - started, 3)
        if step.get("try_record_off"):
            for request in (
                {"request": "configure", "record": False},
                {"request": "enable_recording", "room": step["room_id"], "record": False},
            ):
                try:
                    await plugin._send_request(request, timeout=5)
                    result.setdefault("record_off", []).append({"request": request["request"], "ok": True})
                except Exception as exc:  # a refusal is the expected answer: report it
                    result.setdefault("record_off", []).append(
                        {"request": request["request"], **_error(exc, "record_off")["error"]}
                    )
        if step.get("kick_secret"):
            await asyncio.sleep(step.get("kick_after", 1.0))
            server = JanusServer(**step["server"])
            room = JanusVideoRoom(server)
            before = await _in_thread(room.participants, room_id=step["room_id"])
            await _in_thread(
                room.kick, room_id=step["room_id"], secret=step["kick_secret"], participant_id=joined["id"]
            )
            try:
                await asyncio.wait_for(kicked.wait(), 5)
                result["kicked_notice"] = True
            except TimeoutError:
                result["kicked_notice"] = False
            after = await _in_thread(room.participants, room_id=step["room_id"])
            result["participants_before_kick"] = [dataclasses.asdict(item) for item in before]
            result["participants_after_kick"] = [dataclasses.asdict(item) for item in after]
        else:
            await asyncio.sleep(step.get("seconds", 3))
            if step.get("server"):
                room = JanusVideoRoom(JanusServer(**step["server"]))
                result["participants_while_publishing"] = [
                    dataclasses.asdict(item) for item in await _in_thread(room.participants, room_id=step["room_id"])
                ]
                result["sessions_while_publishing"] = await _in_thread(room.sessions_count)
            await plugin.leave()
        stats = await plugin.pc.getStats()
        result["outbound"] = {
            report.kind: {"packets": report.packetsSent, "bytes": report.bytesSent}
            for report in stats.values()
            if report.type == "outbound-rtp"
        }
        result["video_frames"] = player.video.frames
        result["audio_frames"] = player.audio.frames
        return {"ok": result}
    except Exception as exc:  # reported to the test as data, with what was measured so far
        return {**_error(exc, "publish"), "partial": result}
    finally:
        player.audio.stop()
        player.video.stop()
        # The handle or session may already be gone (kicked, room destroyed).
        with contextlib.suppress(Exception):
            await asyncio.wait_for(plugin.destroy(), 5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.destroy(), 5)
        await session.transport.disconnect()


def _ice_configuration(step: dict[str, Any]) -> RTCConfiguration:
    servers = [
        RTCIceServer(urls=server["urls"], username=server.get("username"), credential=server.get("credential"))
        for server in step.get("ice_servers") or []
    ]
    policy = RTCIceTransportPolicy.RELAY if step.get("relay_only") else RTCIceTransportPolicy.ALL
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)


def _selected_pair(pc: Any) -> dict[str, Any] | None:
    """The nominated ICE candidate pair of a peer connection (aioice's, component 1)."""
    for transceiver in pc.getTransceivers():
        transport = transceiver.receiver.transport or transceiver.sender.transport
        if transport is None:
            continue
        connection = transport.transport._connection
        pair = connection._nominated.get(1)
        if pair is None:
            return None
        local, remote = pair.local_candidate, pair.remote_candidate
        return {
            "local": {"type": local.type, "address": f"{local.host}:{local.port}", "protocol": local.transport},
            "remote": {"type": remote.type, "address": f"{remote.host}:{remote.port}", "protocol": remote.transport},
            "turn_transport": connection.turn_transport if local.type == "relay" else None,
        }
    return None


async def step_call(step: dict[str, Any]) -> dict[str, Any]:
    """One side of a two-way call: publish, subscribe to ``peer_display``, count decoded remote frames."""
    result: dict[str, Any] = {"frames": [], "audio_frames": 0}
    started, started_wall = time.monotonic(), time.time()
    session = janus_client.JanusSession(base_url=step["url"], token=step["session_token"])
    publisher = janus_client.JanusVideoRoomPlugin(pc_config=_ice_configuration(step))
    subscriber = janus_client.JanusVideoRoomPlugin(pc_config=_ice_configuration(step))
    player = SyntheticPlayer(audio=SineAudioTrack(), video=GradientVideoTrack())
    readers: list[asyncio.Task[None]] = []

    async def read(track: MediaStreamTrack) -> None:
        # recv() returns DECODED frames: each one counted here was decoded.
        while True:
            try:
                await track.recv()
            except Exception:  # MediaStreamError when the track ends
                return
            if track.kind == "video":
                result["frames"].append(round(time.monotonic() - started, 3))
            else:
                result["audio_frames"] += 1

    @subscriber.pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        readers.append(asyncio.ensure_future(read(track)))

    try:
        await session.create()
        await publisher.attach(session)
        joined = await publisher.join_as_publisher(step["room_id"], display=step["display"], token=step["room_token"])
        result["participant_id"] = joined["id"]
        await publisher.publish(player, bitrate=step.get("bitrate"), timeout=20)
        await asyncio.wait_for(publisher.webrtcup_event.wait(), 20)
        result["webrtcup_seconds"] = round(time.monotonic() - started, 3)
        feed = None
        deadline = time.monotonic() + step.get("find_seconds", 20)
        while feed is None and time.monotonic() < deadline:
            listing = await publisher._send_request({"request": "listparticipants", "room": step["room_id"]})
            for item in listing["plugindata"]["data"].get("participants", []):
                if item.get("display") == step["peer_display"] and item.get("publisher"):
                    feed = item["id"]
            if feed is None:
                await asyncio.sleep(0.2)
        if feed is None:
            raise TimeoutError(f"{step['peer_display']} never published")
        result["peer_feed_id"] = feed
        await subscriber.attach(session)
        response = await subscriber._send_request(
            {
                "request": "join",
                "ptype": "subscriber",
                "room": step["room_id"],
                "streams": [{"feed": feed}],
                "private_id": joined.get("private_id"),
                "token": step["room_token"],
            },
            timeout=20,
        )
        await subscriber.on_receive_jsep(response["jsep"])
        await subscriber.pc.setLocalDescription(await subscriber.pc.createAnswer())
        await subscriber.start(timeout=20)
        result["subscribed_seconds"] = round(time.monotonic() - started, 3)
        # Stay ``seconds`` in all, or until the test creates ``stop_file``;
        # meanwhile ``progress_file`` tells the test how much video decoded.
        stop_file = Path(step["stop_file"]) if step.get("stop_file") else None
        progress_file = Path(step["progress_file"]) if step.get("progress_file") else None
        while time.monotonic() - started < step.get("seconds", 5) and not (stop_file and stop_file.exists()):
            if progress_file is not None:
                progress = {"started_at": started_wall, "frames": len(result["frames"])}
                progress_file.with_suffix(".partial").write_text(json.dumps(progress))
                progress_file.with_suffix(".partial").replace(progress_file)
            await asyncio.sleep(0.25)
        result["started_at"] = started_wall
        result["publisher_pair"] = _selected_pair(publisher.pc)
        result["subscriber_pair"] = _selected_pair(subscriber.pc)
        result["ice_states"] = {
            "publisher": publisher.pc.iceConnectionState,
            "subscriber": subscriber.pc.iceConnectionState,
        }
        stats = await publisher.pc.getStats()
        result["outbound"] = {
            report.kind: {"packets": report.packetsSent, "bytes": report.bytesSent}
            for report in stats.values()
            if report.type == "outbound-rtp"
        }
        result["video_frames_sent"] = player.video.frames
        with contextlib.suppress(Exception):
            await asyncio.wait_for(publisher.leave(), 5)
        return {"ok": result}
    except Exception as exc:  # reported to the test as data, with what was measured so far
        return {**_error(exc, "call"), "partial": result}
    finally:
        player.audio.stop()
        player.video.stop()
        for reader in readers:
            reader.cancel()
        for plugin in (subscriber, publisher):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(plugin.destroy(), 5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.destroy(), 5)
        await session.transport.disconnect()


async def run_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results = []
    for step in steps:
        started = time.monotonic()
        try:
            if step["op"] == "room":
                outcome = await _in_thread(step_room, step)
            elif step["op"] == "join":
                outcome = await step_join(step)
            elif step["op"] == "publish":
                outcome = await step_publish(step)
            elif step["op"] == "call":
                outcome = await step_call(step)
            else:
                outcome = {"error": {"stage": "steps", "message": f"unknown op {step['op']!r}"}}
        except Exception as exc:  # every failure is data for the test
            outcome = _error(exc, step["op"])
        outcome["seconds"] = round(time.monotonic() - started, 3)
        results.append(outcome)
    return results


async def serve_events(port: int, secret: str, out: Path) -> None:
    from aiohttp import web

    expected_auth = "Basic " + base64.b64encode(f"janus:{secret}".encode()).decode()

    async def receive(request: web.Request) -> web.Response:
        if request.query.get("secret") != secret or request.headers.get("Authorization") != expected_auth:
            return web.Response(status=403)
        payload = await request.json()
        items = payload if isinstance(payload, list) else [payload]
        with out.open("a", encoding="utf-8") as handle:
            for item in items:
                handle.write(json.dumps(item) + "\n")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    out.touch()
    print("ready", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("steps")
    events = commands.add_parser("events")
    events.add_argument("--port", type=int, required=True)
    events.add_argument("--secret", required=True)
    events.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args()
    if arguments.command == "steps":
        steps = json.load(sys.stdin)
        print(json.dumps(asyncio.run(run_steps(steps))))
    else:
        asyncio.run(serve_events(arguments.port, arguments.secret, arguments.out))


if __name__ == "__main__":
    main()
