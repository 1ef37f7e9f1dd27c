"""Janus for real: rooms, tokens, a publishing peer and its recordings (docs/janus.md).

The Janus-side work runs in tests/calls/peer.py inside the network namespace
(see conftest.py); these tests assert on its JSON report and on the files
Janus leaves behind.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from apps.calls.integrations.janus import (
    JANUS_ERROR_UNAUTHORIZED,
    VIDEOROOM_ERROR_NO_SUCH_ROOM,
    VIDEOROOM_ERROR_UNAUTHORIZED,
    JanusServer,
    janus_session_token,
    janus_token,
)
from apps.calls.janus_config import JanusConfigOptions, JanusModules, janus_config_files
from tests.calls.conftest import CI, JanusHarness
from tests.calls.recording_files import closed_recordings


def _room_id() -> int:
    # Random like the calls app's room ids; JavaScript-safe (< 2**53).
    return secrets.randbelow(2**52) + 1


def _create_step(room_id: int, record_dir: Path, secret: str = "room-secret") -> dict[str, Any]:
    return {
        "op": "room",
        "method": "create_room",
        "kwargs": {"room_id": room_id, "secret": secret, "description": "test call", "record_dir": str(record_dir)},
    }


def _ok(result: dict[str, Any]) -> Any:
    assert "ok" in result, result
    return result["ok"]


def _refused(result: dict[str, Any], *, code: int, stage: str) -> None:
    assert "error" in result, f"expected a refusal, got {result}"
    assert (result["error"]["stage"], result["error"]["code"]) == (stage, code), result


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if CI:
            pytest.fail(f"CI=true but `{name}` is not installed", pytrace=False)
        pytest.skip(f"`{name}` is not installed")
    return path


# --- Tokens and configuration: pure functions -------------------------------------------


SERVER = JanusServer(
    name="unit",
    admin_ws_url="ws://127.0.0.1:8188",
    public_ws_url="wss://bank.example/janus",
    api_secret="api",
    admin_key="key",
    token_secret="token-secret",
)


def test_room_token_is_an_hmac_sha1_signed_videoroom_token_for_one_room() -> None:
    token = janus_token(SERVER, room_id=42, valid_seconds=60, now=1_000_000)
    data, signature = token.split(":")
    assert data == "1000060,janus.plugin.videoroom,room=42"
    expected = hmac.new(b"token-secret", data.encode(), hashlib.sha1).digest()
    assert base64.b64decode(signature) == expected


def test_session_token_opens_only_the_videoroom_plugin() -> None:
    token = janus_session_token(SERVER, valid_seconds=3600, now=1_000_000)
    assert token.split(":")[0] == "1003600,janus,janus.plugin.videoroom"


def test_generated_config_loads_only_the_modules_we_use_and_keeps_secrets_in_it() -> None:
    modules = JanusModules(
        plugins=("libjanus_echotest.so", "libjanus_videoroom.so"),
        transports=("libjanus_http.so", "libjanus_websockets.so"),
        events=("libjanus_sampleevh.so", "libjanus_wsevh.so"),
        loggers=("libjanus_jsonlog.so",),
    )
    files = janus_config_files(
        JanusConfigOptions(
            api_secret="api",
            admin_secret="admin",
            admin_key="key",
            token_secret="tok",
            events_url="http://127.0.0.1:8000/api/calls/janus-events/",
            events_secret="evt",
            ice_enforce_list="v0",
            modules=modules,
        ),
        configs_folder=Path("/srv/janus/conf"),
    )
    core = files["janus.jcfg"]
    assert 'disable = "libjanus_echotest.so"' in core
    assert 'disable = "libjanus_http.so"' in core
    assert 'disable = "libjanus_wsevh.so"' in core
    assert 'ice_enforce_list = "v0"' in core
    assert 'token_auth_secret = "tok"' in core and "token_auth = true" in core
    assert 'recordings_tmp_ext = "tmp"' in core
    assert "stun_server" not in core and "turn_server" not in core
    assert 'configs_folder = "/srv/janus/conf"' in core
    assert 'admin_key = "key"' in files["janus.plugin.videoroom.jcfg"]
    assert "room-" not in files["janus.plugin.videoroom.jcfg"]  # no demo rooms
    events = files["janus.eventhandler.sampleevh.jcfg"]
    assert 'backend = "http://127.0.0.1:8000/api/calls/janus-events/?secret=evt"' in events
    assert 'backend_pwd = "evt"' in events and "enabled = true" in events
    websockets = files["janus.transport.websockets.jcfg"]
    assert 'ws_ip = "127.0.0.1"' in websockets and "ws_port = 8188" in websockets
    assert "admin_ws_port = 7088" in websockets


# --- Rooms through JanusVideoRoom -------------------------------------------------------


def test_server_creates_a_private_room_lists_it_and_destroys_it(janus: JanusHarness, tmp_path: Path) -> None:
    room_id = _room_id()
    create, exists, participants, other, destroy, gone, listing = janus.run(
        [
            _create_step(room_id, tmp_path),
            {"op": "room", "method": "exists", "kwargs": {"room_id": room_id}},
            {"op": "room", "method": "participants", "kwargs": {"room_id": room_id}},
            {"op": "room", "method": "exists", "kwargs": {"room_id": room_id + 1}},
            {"op": "room", "method": "destroy_room", "kwargs": {"room_id": room_id, "secret": "room-secret"}},
            {"op": "room", "method": "exists", "kwargs": {"room_id": room_id}},
            {"op": "room", "method": "participants", "kwargs": {"room_id": room_id}},
        ]
    )
    _ok(create)
    assert _ok(exists) is True
    assert _ok(participants) == []
    assert _ok(other) is False
    _ok(destroy)
    assert _ok(gone) is False
    _refused(listing, code=VIDEOROOM_ERROR_NO_SUCH_ROOM, stage="room")


def test_rooms_cannot_be_created_without_the_admin_key_or_destroyed_without_the_secret(
    janus: JanusHarness, tmp_path: Path
) -> None:
    room_id = _room_id()
    wrong_key = dataclasses.asdict(dataclasses.replace(janus.server, admin_key="guessed"))
    no_key = dataclasses.asdict(dataclasses.replace(janus.server, admin_key=""))
    wrong_api_secret = dataclasses.asdict(dataclasses.replace(janus.server, api_secret="guessed"))
    results = janus.run(
        [
            {**_create_step(room_id, tmp_path), "server": wrong_key},
            {**_create_step(room_id, tmp_path), "server": no_key},
            {**_create_step(room_id, tmp_path), "server": wrong_api_secret},
            {"op": "room", "method": "exists", "kwargs": {"room_id": room_id}},
            _create_step(room_id, tmp_path),
            {"op": "room", "method": "destroy_room", "kwargs": {"room_id": room_id, "secret": "guessed"}},
            {"op": "room", "method": "exists", "kwargs": {"room_id": room_id}},
            {"op": "room", "method": "ping"},
        ]
    )
    _refused(results[0], code=VIDEOROOM_ERROR_UNAUTHORIZED, stage="room")
    assert "error" in results[1], results[1]
    _refused(results[2], code=JANUS_ERROR_UNAUTHORIZED, stage="room")
    assert _ok(results[3]) is False
    _ok(results[4])
    _refused(results[5], code=VIDEOROOM_ERROR_UNAUTHORIZED, stage="room")
    assert _ok(results[6]) is True
    assert 0 < _ok(results[7]) < 1


def test_joining_needs_a_valid_session_token_and_a_token_for_this_very_room(
    janus: JanusHarness, tmp_path: Path
) -> None:
    room_id = _room_id()
    session = janus.session_token()
    forged = dataclasses.replace(janus.server, token_secret="not-the-secret")
    an_hour_ago = time.time() - 3600
    attempts = {
        "right tokens": {"session_token": session, "room_token": janus.room_token(room_id)},
        "no room token": {"session_token": session, "room_token": None},
        "token of another room": {"session_token": session, "room_token": janus.room_token(room_id + 1)},
        "forged room token": {"session_token": session, "room_token": janus_token(forged, room_id=room_id, valid_seconds=600)},
        "expired room token": {"session_token": session, "room_token": janus.room_token(room_id, valid_seconds=60, now=an_hour_ago)},
        "session token as room token": {"session_token": session, "room_token": session},
        "listen without room token": {"session_token": session, "room_token": None, "ptype": "subscriber", "feed": 1},
        "no session token": {"session_token": None, "room_token": janus.room_token(room_id)},
        "expired session token": {"session_token": janus.session_token(valid_seconds=60, now=an_hour_ago), "room_token": janus.room_token(room_id)},
        "forged session token": {"session_token": janus_session_token(forged, valid_seconds=600), "room_token": janus.room_token(room_id)},
        "room token as session token": {"session_token": janus.room_token(room_id), "room_token": janus.room_token(room_id)},
    }  # fmt: skip
    create, *results = janus.run(
        [_create_step(room_id, tmp_path)]
        + [{"op": "join", "room_id": room_id, "display": "probe", **attempt} for attempt in attempts.values()]
    )
    _ok(create)
    outcome = dict(zip(attempts, results, strict=True))
    assert _ok(outcome.pop("right tokens"))["videoroom"] == "joined"
    for name in ("no session token", "expired session token", "forged session token", "room token as session token"):
        _refused(outcome.pop(name), code=JANUS_ERROR_UNAUTHORIZED, stage="session")
    for name, result in outcome.items():
        assert "error" in result, f"{name}: {result}"
        _refused(result, code=VIDEOROOM_ERROR_UNAUTHORIZED, stage="join")


# --- Media: a Python peer publishes, Janus records ------------------------------------


def test_a_publishing_peer_is_recorded_from_the_start_and_cannot_switch_it_off(
    janus: JanusHarness, tmp_path: Path
) -> None:
    pp_rec, ffprobe = _tool("janus-pp-rec"), _tool("ffprobe")
    room_id = _room_id()
    record_dir = tmp_path / "recordings"
    record_dir.mkdir()
    display = f"customer-{room_id}"
    create, publish, after, destroy = janus.run(
        [
            _create_step(room_id, record_dir),
            {
                "op": "publish",
                "room_id": room_id,
                "session_token": janus.session_token(),
                "room_token": janus.room_token(room_id),
                "display": display,
                "seconds": 3,
                "try_record_off": True,
            },
            {"op": "room", "method": "participants", "kwargs": {"room_id": room_id}},
            {"op": "room", "method": "destroy_room", "kwargs": {"room_id": room_id, "secret": "room-secret"}},
        ]
    )
    _ok(create)
    report = _ok(publish)
    _ok(destroy)
    participant_id = report["participant_id"]
    assert report["webrtcup_seconds"] < 5
    assert report["participants_while_publishing"] == [
        {
            "id": participant_id,
            "display": display,
            "publisher": True,
            "talking": report["participants_while_publishing"][0]["talking"],
        }
    ]
    assert report["sessions_while_publishing"] >= 1  # Admin API
    assert _ok(after) == []
    # Nobody enabled recording, and the publisher's attempts to stop it were not honoured:
    # "record": false in publish and configure is ignored under lock_record, and
    # enable_recording needs the room secret.
    assert {attempt["request"] for attempt in report["record_off"]} == {"configure", "enable_recording"}
    assert not any(attempt["request"] == "enable_recording" and attempt.get("ok") for attempt in report["record_off"])

    files = closed_recordings(record_dir, timeout=20)
    assert not [path for path in files if path.suffix != ".mjr"], f"unfinished recordings: {files}"
    by_kind = {"audio": [p for p in files if "-audio-" in p.name], "video": [p for p in files if "-video-" in p.name]}
    assert len(by_kind["audio"]) == 1 and len(by_kind["video"]) == 1, files
    expected_codec = {"audio": "opus", "video": "vp8"}
    for kind, (path,) in by_kind.items():
        assert path.name.startswith(f"videoroom-{room_id}-user-{participant_id}-")
        header = json.loads(
            subprocess.run([pp_rec, "-j", str(path)], capture_output=True, text=True, check=True).stdout
        )
        assert header["t"] == kind[0] and header["c"] == expected_codec[kind], header
        # The whole stream is in the file: recording ran from the first packet to the
        # last, through the attempts to switch it off.
        sent = report["outbound"][kind]["bytes"]
        assert path.stat().st_size >= 0.8 * sent, (kind, path.stat().st_size, sent)
        converted = tmp_path / (path.stem + (".opus" if kind == "audio" else ".webm"))
        subprocess.run([pp_rec, str(path), str(converted)], capture_output=True, check=True)
        duration = float(
            subprocess.run(
                [ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(converted)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        assert 2.0 < duration < 4.5, (kind, duration)

    # Janus' event handler told the web app who joined and published, by display name.
    deadline = time.monotonic() + 3
    seen: set[str] = set()
    while time.monotonic() < deadline and not {"joined", "published"} <= seen:
        seen = {
            event["event"]["data"].get("event")
            for event in janus.events()
            if isinstance(event.get("event"), dict)
            and event["event"].get("plugin") == "janus.plugin.videoroom"
            and event["event"].get("data", {}).get("display") == display
        }
        time.sleep(0.1)
    assert {"joined", "published"} <= seen, seen


def test_kick_removes_a_participant_from_the_room(janus: JanusHarness, tmp_path: Path) -> None:
    room_id = _room_id()
    create, publish = janus.run(
        [
            _create_step(room_id, tmp_path),
            {
                "op": "publish",
                "room_id": room_id,
                "session_token": janus.session_token(),
                "room_token": janus.room_token(room_id),
                "display": "to-be-kicked",
                "kick_secret": "room-secret",
                "kick_after": 0.5,
            },
        ]
    )
    _ok(create)
    report = _ok(publish)
    assert [item["id"] for item in report["participants_before_kick"]] == [report["participant_id"]]
    assert report["kicked_notice"] is True
    assert {"videoroom": "event", "room": room_id, "leaving": "ok", "reason": "kicked"} in report["events"]
    assert report["participants_after_kick"] == []
