"""Issue 5, acceptance (b): a real call in headless Chromium, customer page and agent console.

Against the live server (Daphne) and a real Janus, all inside a network
namespace (tests/e2e/conftest.py, docs/janus.md): the customer passes Gate 1
on the mobile page and calls; the agent accepts on the console; both decode
the other's video; the agent invites an expert who joins; the customer hangs
up; the call ends on the server, its Janus room is destroyed and every
participant's audio and video were recorded. During the call the agent
captures the customer's image with the console's button (R5): the snapshot
is stored with its hash, decodes to the customer's video size, and shows in
the console.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import BrowserCallRun

ROLES = ("customer", "agent", "expert")
# Seconds from the agent's click on Accept (or on Invite) to the first decoded remote frame.
FIRST_FRAME_LIMIT = 15
# Bytes: a few seconds of Opus at least; VP8 from a fake camera is far larger.
MIN_AUDIO_BYTES, MIN_VIDEO_BYTES = 5_000, 50_000
EXPECTED_CODEC = {"audio": ("a", "opus"), "video": ("v", "vp8")}


def _decoding(videos: list[dict[str, Any]]) -> int:
    return sum(1 for v in videos if v["advancing"] and v["width"] > 0 and v["height"] > 0)


def test_customer_agent_and_expert_in_a_real_browser_call(browser_call: Callable[[], BrowserCallRun]) -> None:
    run = browser_call()
    report = run.report
    if not (report.get("ok") is True and run.returncode == 0):
        pytest.fail(run.explain(), pytrace=False)
    # No page threw an uncaught exception.
    uncaught = [line for lines in report["console"].values() for line in lines if line.startswith("pageerror")]
    assert not uncaught, report["console"]

    # Gate 1 on the customer's page read the generated card of a seeded customer.
    assert report["id_card_read"] == {"name_ok": True, "number_ok": True}
    assert report["customer_page_lang"] == "zh-hans"

    # Both sides decode the other's video, a few seconds after Accept at most.
    assert _decoding(report["two_way"]["customer"]) >= 1, report["two_way"]
    assert _decoding(report["two_way"]["agent"]) >= 1, report["two_way"]
    for side in ("customer", "agent"):
        first = report["first_frame_s"][side]
        assert first is not None and 0 < first < FIRST_FRAME_LIMIT, report["first_frame_s"]
    # "connected" comes only from Janus' event feed (both publishing).
    assert report["state_during_call"] == "connected"

    # The agent captured the customer's image during the call (R5): one snapshot row, of the
    # customer, whose stored file hashes to the recorded SHA-256 and decodes to a JPEG of the size
    # of the customer's video as the agent's page received it; and the console shows it.
    (snapshot,) = report["snapshots"]
    assert snapshot["participant_role"] == "customer"
    assert snapshot["taken_by"] == report["scenario"]["agent_username"]
    assert snapshot["sha256_of_file"] == snapshot["sha256_recorded"], snapshot
    assert snapshot["decoded"].get("format") == "JPEG", snapshot["decoded"]
    assert snapshot["decoded"]["size"] == snapshot["size_recorded"]
    seen = report["snapshot"]
    # WebRTC may change the resolution it sends at any time: the frame is one of the two sizes around the click.
    assert snapshot["decoded"]["size"] in (seen["video_size_before"], seen["video_size_after"]), (snapshot, seen)
    width, height = snapshot["decoded"]["size"]
    assert width > 0 and abs(width / height - 360 / 480) < 0.02, snapshot  # the customer's portrait camera
    assert seen["shown"] == [
        {"id": snapshot["id"], "sha256": snapshot["sha256_recorded"], "natural_size": snapshot["decoded"]["size"]}
    ], seen
    assert seen["notice"] == seen["button_done_text"]

    # The expert joined: the agent decodes customer and expert, the expert at least one of them.
    assert _decoding(report["three_way"]["agent"]) == 2, report["three_way"]
    assert _decoding(report["three_way"]["expert"]) >= 1, report["three_way"]
    assert _decoding(report["three_way"]["customer"]) == 2, report["three_way"]
    expert_first = report["expert_first_frame_after_invite_s"]
    assert expert_first is not None and 0 < expert_first < FIRST_FRAME_LIMIT

    # The offer says what, who and for how long: business, level, time waited and the seconds left to answer.
    offer = report["offer_texts"]
    assert all((offer[name] or "").strip() for name in ("business", "level", "waited", "countdown")), offer
    assert re.search(r"\d", offer["waited"]) and re.search(r"\d", offer["countdown"]), offer

    # The quality line is in the page's language (issue #19: "连接质量: good"), with a figure once measured.
    for name, texts in report["page_texts_before_hangup"].items():
        quality = texts["quality"] or ""
        assert "连接质量" in quality, (name, quality)
        assert not re.search(r"\b(good|fair|poor)\b", quality, re.IGNORECASE), (name, quality)

    # Hang-up ends the call on the server, for everyone, and destroys the room.
    assert report["after_hangup"]["state"] == "ended"
    assert report["after_hangup"]["end_reason"] == "customer_hung_up"
    call = report["call"]
    assert call["state"] == "ended" and call["end_reason"] == "customer_hung_up"
    assert call["connected_after_created_s"] is not None
    assert call["room_open"] is False and report["room_exists_after_hangup"] is False
    assert report["agent_panel_closed_s"] is not None and report["expert_panel_closed_s"] is not None
    assert {p["role"] for p in call["participants"]} == set(ROLES)
    for participant in call["participants"]:
        assert participant["joined"] and participant["published"] and participant["left"], participant
        assert participant["feed_id"], participant

    # One audio and one video recording per participant, closed, in the call's folder.
    record_dir = Path(call["record_dir"])
    assert record_dir.is_relative_to(run.workdir), record_dir
    on_disk = {path.name: path for path in record_dir.iterdir()}
    assert all(name.endswith(".mjr") for name in on_disk), f"unfinished recordings: {sorted(on_disk)}"
    recordings = report["recordings"]
    assert sorted(on_disk) == sorted(r["file"] for r in recordings)
    for role in ROLES:
        feed = next(p["feed_id"] for p in call["participants"] if p["role"] == role)
        for kind, (letter, codec) in EXPECTED_CODEC.items():
            mine = [r for r in recordings if r["role"] == role and r["kind"] == kind]
            assert len(mine) == 1, (role, kind, recordings)
            path = on_disk[mine[0]["file"]]
            assert path.name.startswith(f"videoroom-{call['room_id']}-user-{feed}-"), path.name
            size = path.stat().st_size
            assert size == mine[0]["bytes"]
            assert size >= (MIN_AUDIO_BYTES if kind == "audio" else MIN_VIDEO_BYTES), (role, kind, size)
            parsed = subprocess.run(["janus-pp-rec", "-j", str(path)], capture_output=True, text=True, check=True)
            header = json.loads(parsed.stdout)
            assert (header["t"], header["c"]) == (letter, codec), (role, kind, header)

    # The agent found the call's recording (and only it: own services) in the back office, processed,
    # and played the evidence file in the browser: range requests answered 206, seeking landed.
    page = report["recordings_page"]
    assert page["rows"] == [{"id": report["recording"]["id"], "state": "done", "service": page["rows"][0]["service"]}]
    playback = page["playback"]
    assert playback["error"] is None and playback["seeked"] is True, playback
    assert abs(playback["duration"] - report["recording"]["duration"]) < 1.0, (playback, report["recording"])
    assert abs(playback["after_seek"] - playback["target"]) < 1.0, playback
    assert playback["after_play"] > playback["after_seek"], playback
    assert (playback["width"], playback["height"]) == (3 * 480, 360), playback  # customer, agent, expert
    # The media element asks for byte ranges and gets 206 + Content-Range each time. Whether it
    # needs a second range to seek depends on how much it buffered (a short call's file may come
    # whole in the first response); mid-file ranges are checked in tests/recordings.
    responses = page["file_responses"]
    assert responses and all(item["status"] == 206 for item in responses), responses
    assert all(item["range"] and item["range"].startswith("bytes=") for item in responses), responses
    assert all(item["content_range"] and item["content_range"].startswith("bytes ") for item in responses), responses
    played = [item for item in report["playback_audit"] if item["action"] == "recordings.file.played"]
    assert played and all(item["kind"] == "composite" for item in played), report["playback_audit"]

    # What a person would have seen, kept for looking at.
    for name in (
        "customer-call",
        "agent-call",
        "agent-snapshot",
        "agent-player",
        "customer-three-way",
        "agent-three-way",
        "expert-three-way",
    ):
        shot = run.shots / f"{name}.png"
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", shot

    assert report["timings"]["total"] < 180, report["timings"]
