"""A customer's camera for the live-capture tests: publishes a chosen video into a Janus room (runs INSIDE the namespace).

``ip netns exec NS python tests/live/live_peer.py STEP.json`` reads one JSON object:

    {"server": {...JanusServer...}, "room_id", "session_token", "room_token",
     "display", "source": {"kind": "photo", "path"} | {"kind": "gradient"},
     "seconds", "ready": PATH}

joins as publisher with that display (the participant's handle), publishes
the video (and a 440 Hz tone), writes ``{"feed": id}`` to ``ready`` once
Janus reports the PeerConnection up, stays ``seconds`` and leaves. Prints a
JSON report.

``photo`` plays one still image as the camera, frame after frame: what a
printed photo or a replayed picture in front of the phone looks like;
``shaken_photo`` the same picture held by a moving hand; ``file`` loops a
video file (a .y4m made from a photo with ffmpeg, as for Chromium's
``--use-file-for-fake-video-capture``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402
from aiortc import RTCConfiguration  # noqa: E402
from aiortc.mediastreams import VideoStreamTrack  # noqa: E402
from PIL import Image  # noqa: E402

from tests.calls.peer import (  # noqa: E402 - patches aioice's host addresses first
    GradientVideoTrack,
    SineAudioTrack,
    SyntheticPlayer,
    janus_client,
)


class StillImageTrack(VideoStreamTrack):
    """The same picture at 30 fps (even width and height, as VP8 wants)."""

    def __init__(self, path: str, width: int = 480) -> None:
        super().__init__()
        image = Image.open(path).convert("RGB")
        height = round(image.height * width / image.width / 2) * 2
        self.pixels = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))
        self.frames = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(self.pixels, format="rgb24")
        frame.pts = pts
        frame.time_base = time_base
        self.frames += 1
        return frame


class ShakenPhotoTrack(StillImageTrack):
    """The picture held up to the camera by a hand: it drifts and zooms a little, never the same two frames."""

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        phase = self.frames / 30.0
        dx, dy = int(6 * np.sin(2.1 * phase)), int(5 * np.cos(1.7 * phase))
        shifted = np.roll(np.roll(self.pixels, dx, axis=1), dy, axis=0)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(shifted), format="rgb24")
        frame.pts = pts
        frame.time_base = time_base
        self.frames += 1
        return frame


class LoopingFileTrack(VideoStreamTrack):
    """A video file (e.g. the .y4m Chromium's fake camera would play), looped, at its own frame rate."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.frames = 0
        self._decoded = [frame.to_ndarray(format="rgb24") for frame in av.open(path).decode(video=0)]

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(self._decoded[self.frames % len(self._decoded)], format="rgb24")
        frame.pts = pts
        frame.time_base = time_base
        self.frames += 1
        return frame


def _video(source: dict[str, Any]) -> Any:
    if source["kind"] == "photo":
        return StillImageTrack(source["path"], width=source.get("width", 480))
    if source["kind"] == "shaken_photo":
        return ShakenPhotoTrack(source["path"], width=source.get("width", 480))
    if source["kind"] == "file":
        return LoopingFileTrack(source["path"])
    return GradientVideoTrack()


async def publish(step: dict[str, Any]) -> dict[str, Any]:
    from apps.calls.integrations.janus import JanusServer

    server = JanusServer(**step["server"])
    session = janus_client.JanusSession(base_url=server.admin_ws_url, token=step["session_token"])
    plugin = janus_client.JanusVideoRoomPlugin(pc_config=RTCConfiguration(iceServers=[]))
    player = SyntheticPlayer(audio=SineAudioTrack(), video=_video(step["source"]))
    report: dict[str, Any] = {}
    try:
        await session.create()
        await plugin.attach(session)
        joined = await plugin.join_as_publisher(step["room_id"], display=step["display"], token=step["room_token"])
        report["feed"] = joined["id"]
        await plugin.publish(player, timeout=10)
        await asyncio.wait_for(plugin.webrtcup_event.wait(), 10)
        Path(step["ready"]).write_text(json.dumps({"feed": joined["id"]}))
        started = time.monotonic()
        while time.monotonic() - started < step.get("seconds", 10):
            if Path(step["ready"] + ".stop").exists():
                break
            await asyncio.sleep(0.1)
        await plugin.leave()
        report["video_frames"] = player.video.frames
        return {"ok": report}
    except Exception as exc:  # reported to the test as data
        return {"error": {"type": type(exc).__name__, "message": str(exc)}, "partial": report}
    finally:
        player.audio.stop()
        player.video.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(plugin.destroy(), 5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.destroy(), 5)
        await session.transport.disconnect()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(publish(json.loads(Path(sys.argv[1]).read_text())))))
