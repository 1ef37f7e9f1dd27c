"""Calls over a real wide-area network: a customer behind NAT, UDP blocked, a weak mobile link.

The network is built by the test itself (``wan`` in conftest.py,
scripts/netns.sh ``wan-up``): the server namespace holds Janus, coturn and
the agent's peer; the customer's peer sits behind a NAT router (iptables
MASQUERADE) whose firewall the test sets; the customer's link is emulated by
tests/calls/linkem.py (delay, loss, rate; this kernel has no netem). Both
sides are aiortc peers (tests/calls/peer.py ``call``) that publish a
synthetic camera and count the remote frames they DECODE, except in the ICE
restart test, where the customer is headless Chromium running the shared
call library (tests/calls/browser_peer.py), and the simulcast test, where
both sides are.

Under CI=true these tests fail when a part is missing (root, iproute2,
iptables, coturn, janus, /dev/net/tun; chromium and playwright for the
browser test), as the other media tests do.
"""

from __future__ import annotations

import contextlib
import json
import math
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.calls.conftest import CI, WAN_SERVER_IP, WanHarness
from tests.calls.recording_files import closed_recordings

CUSTOMER, AGENT = "customer-wan", "agent-wan"


def _room_id() -> int:
    return secrets.randbelow(2**52) + 1


def _ok(result: dict[str, Any]) -> Any:
    assert "ok" in result, result
    return result["ok"]


def _call(
    wan: WanHarness,
    room_id: int,
    *,
    seconds: float,
    customer_ice: list[dict[str, Any]],
    customer_bitrate: int | None = None,
    agent_bitrate: int | None = None,
    during: Any = None,
    extra: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both sides at once: the agent in the server's namespace, the customer behind the NAT."""
    common = {"room_id": room_id, "session_token": wan.session_token(), "room_token": wan.room_token(room_id)}
    agent = wan.start(
        wan.server_ns,
        [
            {
                "op": "call",
                **common,
                "display": AGENT,
                "peer_display": CUSTOMER,
                "seconds": seconds,
                "bitrate": agent_bitrate,
                **(extra or {}),
            }
        ],
    )
    customer = wan.start(
        wan.customer_ns,
        [
            {
                "op": "call",
                **common,
                "display": CUSTOMER,
                "peer_display": AGENT,
                "seconds": seconds,
                "ice_servers": customer_ice,
                "bitrate": customer_bitrate,
                **({"stop_file": extra["stop_file"]} if extra and "stop_file" in extra else {}),
            }
        ],
    )
    if during is not None:
        during()
    (customer_result,) = wan.finish(customer, timeout=seconds + 60)
    (agent_result,) = wan.finish(agent, timeout=seconds + 60)
    return _ok(customer_result), _ok(agent_result)


def _create_room(wan: WanHarness, room_id: int, record_dir: Path) -> None:
    record_dir.mkdir(parents=True, exist_ok=True)
    (create,) = wan.run(
        wan.server_ns,
        [
            {
                "op": "room",
                "method": "create_room",
                "kwargs": {"room_id": room_id, "secret": "s", "description": "wan", "record_dir": str(record_dir)},
            }
        ],
    )
    _ok(create)


def _destroy_room(wan: WanHarness, room_id: int) -> None:
    (destroy,) = wan.run(
        wan.server_ns, [{"op": "room", "method": "destroy_room", "kwargs": {"room_id": room_id, "secret": "s"}}]
    )
    _ok(destroy)


def _closed_recordings(record_dir: Path) -> list[Path]:
    files = closed_recordings(record_dir, timeout=20)
    assert files and not [p for p in files if p.suffix != ".mjr"], f"recordings still open after 20 s: {files}"
    return files


def _fps(frames: list[float], start: float, end: float) -> float:
    return sum(1 for at in frames if start <= at < end) / (end - start)


def _cumulative(samples: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """A page's (second, framesDecoded) samples made cumulative across a counter that starts again.

    The page sums ``framesDecoded`` over its subscriptions' inbound-rtp
    stats; when a subscription or its receiver is replaced (as when the
    library subscribes again after a stall) the new stats count from 0 and
    the sum falls. A fall is taken as such a restart: the frames since are
    the new value (the old counter's last frames are not counted, which errs
    low). A CI run of 2026-12-04 computed −34.6 fps over the last 15 s
    without this; what replaced the counter there was not recorded.
    """
    total, previous, cumulative = 0, 0, []
    for at, frames in samples:
        total += frames - previous if frames >= previous else frames
        previous = frames
        cumulative.append((at, total))
    return cumulative


def _pp_rec() -> str:
    path = shutil.which("janus-pp-rec")
    if path is None:
        if CI:
            pytest.fail("CI=true but janus-pp-rec is not installed", pytrace=False)
        pytest.skip("janus-pp-rec is not installed")
    return path


def test_customer_behind_nat_with_udp_blocked_connects_through_the_turn_relay(wan: WanHarness, tmp_path: Path) -> None:
    pp_rec = _pp_rec()
    room_id = _room_id()
    record_dir = tmp_path / "recordings"
    _create_room(wan, room_id, record_dir)
    wan.firewall("relay-only")
    try:
        with wan.link():
            customer, agent = _call(wan, room_id, seconds=8, customer_ice=wan.ice_servers("call-customer"))
    finally:
        wan.firewall("open")
    _destroy_room(wan, room_id)

    # The only way through was the relay: the customer's selected pairs are
    # relay candidates on coturn, talking to Janus' host candidate.
    for pair in (customer["publisher_pair"], customer["subscriber_pair"]):
        assert pair is not None, customer
        assert pair["local"]["type"] == "relay", pair
        assert pair["local"]["address"].startswith(f"{WAN_SERVER_IP}:"), pair
        assert pair["remote"]["address"].startswith(f"{WAN_SERVER_IP}:"), pair
    # The agent on the server's network needs no relay.
    assert agent["subscriber_pair"]["local"]["type"] == "host", agent
    # Both sides decoded video, steadily, not a frame or two.
    for side in (customer, agent):
        frames = side["frames"]
        assert len(frames) >= 60, (len(frames), side)
        assert _fps(frames, frames[0], frames[-1]) > 10, side
    # Janus saw the customer's relayed address (behind the NAT, the phone's own 198.19.0.2 never appears).
    selected = [
        event["event"].get("selected-pair", "")
        for event in wan.events()
        if isinstance(event.get("event"), dict) and "selected-pair" in event["event"]
    ]
    assert selected and not any("198.19." in pair for pair in selected), selected
    # The recording of the relayed customer exists and holds their video.
    files = _closed_recordings(record_dir)
    customer_files = [p for p in files if f"-user-{customer['participant_id']}-" in p.name]
    assert {p.name.split("-")[-2] for p in customer_files} == {"audio", "video"}, files
    video = next(p for p in customer_files if "-video-" in p.name)
    header = json.loads(subprocess.run([pp_rec, "-j", str(video)], capture_output=True, text=True, check=True).stdout)
    assert header["c"] == "vp8"
    assert video.stat().st_size >= 0.5 * customer["outbound"]["video"]["bytes"], (video.stat().st_size, customer)
    # coturn accepted the platform's REST API credentials (expiry:participant, HMAC-SHA1 password).
    allocations = [
        line for line in wan.turn_log.read_text(errors="replace").splitlines() if "ALLOCATE processed, success" in line
    ]
    assert any(":call-customer>" in line for line in allocations), allocations[-5:]


def test_without_turn_the_same_customer_cannot_connect(wan: WanHarness, tmp_path: Path) -> None:
    """The control: behind the same NAT and firewall, no relay means no media (so the relay is what works)."""
    room_id = _room_id()
    _create_room(wan, room_id, tmp_path / "recordings")
    wan.firewall("relay-only")
    try:
        with wan.link():
            (customer,) = wan.run(
                wan.customer_ns,
                [
                    {
                        "op": "call",
                        "room_id": room_id,
                        "session_token": wan.session_token(),
                        "room_token": wan.room_token(room_id),
                        "display": CUSTOMER,
                        "peer_display": AGENT,
                        "seconds": 3,
                    }
                ],
                timeout=60,
            )
    finally:
        wan.firewall("open")
    _destroy_room(wan, room_id)
    assert "error" in customer, customer
    assert "webrtcup_seconds" not in customer.get("partial", {}), customer


def test_where_all_udp_is_blocked_turn_over_tcp_carries_the_call(wan: WanHarness, tmp_path: Path) -> None:
    room_id = _room_id()
    _create_room(wan, room_id, tmp_path / "recordings")
    wan.firewall("no-udp")
    try:
        with wan.link():
            customer, agent = _call(
                wan, room_id, seconds=8, customer_ice=wan.ice_servers("call-customer-tcp", transport="tcp")
            )
    finally:
        wan.firewall("open")
    _destroy_room(wan, room_id)
    assert customer["publisher_pair"]["local"]["type"] == "relay"
    assert customer["publisher_pair"]["turn_transport"] == "tcp"
    assert len(agent["frames"]) >= 60 and len(customer["frames"]) >= 60, (len(agent["frames"]), len(customer["frames"]))


def test_where_only_tls_gets_out_turn_over_tls_carries_the_call(wan: WanHarness, tmp_path: Path) -> None:
    """The customer's network lets out only TLS to 5349 and the signalling WebSocket: TURN over TLS (``turns:``)."""
    room_id = _room_id()
    _create_room(wan, room_id, tmp_path / "recordings")
    wan.firewall("tls-only")
    try:
        with wan.link():
            customer, agent = _call(
                wan, room_id, seconds=8, customer_ice=wan.ice_servers("call-customer-tls", transport="tls")
            )
    finally:
        wan.firewall("open")
    _destroy_room(wan, room_id)
    assert customer["publisher_pair"]["local"]["type"] == "relay"
    assert customer["publisher_pair"]["turn_transport"] == "tcp"  # aioice names TLS over TCP "tcp"
    assert len(agent["frames"]) >= 60 and len(customer["frames"]) >= 60, (len(agent["frames"]), len(customer["frames"]))
    # coturn served the customer's allocation over TLS on 5349 (its session line names the TLS version).
    import re

    turn_log = wan.turn_log.read_text(errors="replace")
    assert re.search(r"username=<\d+:call-customer-tls>.*method=TLSv1\.[23]", turn_log), wan.log_tails()
    assert re.search(r"user <\d+:call-customer-tls>.*local 198\.18\.0\.1:5349", turn_log), wan.log_tails()


# --- Pure parts: credentials and generated configurations -----------------------------


def test_turn_credentials_follow_the_rest_api_shared_secret_scheme() -> None:
    import base64
    import hashlib
    import hmac

    from apps.calls.integrations.turn import turn_credentials

    credentials = turn_credentials(
        secret="s3cret", user="abc-customer", urls=["turn:t.example:3478?transport=udp"], valid_seconds=60, now=1000
    )
    assert credentials.username == "1060:abc-customer"
    assert base64.b64decode(credentials.credential) == hmac.new(b"s3cret", b"1060:abc-customer", hashlib.sha1).digest()
    assert credentials.expires_at == 1060
    with pytest.raises(ValueError):
        turn_credentials(secret="s", user="a:b", urls=[], valid_seconds=60)
    with pytest.raises(ValueError):
        turn_credentials(secret="s", user="a", urls=[], valid_seconds=0)


def test_generated_turnserver_conf_uses_rest_credentials_and_relays_only_to_janus() -> None:
    from apps.calls.turn_config import TurnConfigError, TurnConfigOptions, turnserver_conf

    conf = turnserver_conf(
        TurnConfigOptions(
            secret="abc", listen_ip="10.0.0.5", external_ip="203.0.113.9/10.0.0.5", allowed_peer_ips=("10.0.0.6",)
        )
    ).splitlines()
    for line in (
        "use-auth-secret",
        "static-auth-secret=abc",
        "listening-ip=10.0.0.5",
        "listening-port=3478",
        "external-ip=203.0.113.9/10.0.0.5",
        "denied-peer-ip=0.0.0.0-255.255.255.255",
        "allowed-peer-ip=10.0.0.6",
        "no-tls",
        "no-cli",
    ):
        assert line in conf, line
    with_tls = turnserver_conf(TurnConfigOptions(secret="abc", tls_cert="/c.pem", tls_key="/k.pem")).splitlines()
    assert "tls-listening-port=5349" in with_tls and "no-tls" not in with_tls
    with pytest.raises(TurnConfigError):
        turnserver_conf(TurnConfigOptions(secret="abc", tls_cert="/c.pem"))
    with pytest.raises(TurnConfigError):
        turnserver_conf(TurnConfigOptions(secret=""))


def test_generated_janus_config_has_the_nat_mapping_and_the_turn_server() -> None:
    from apps.calls.janus_config import JanusConfigError, JanusConfigOptions, janus_config_files

    base = {
        "api_secret": "a",
        "admin_secret": "b",
        "admin_key": "c",
        "token_secret": "d",
        "events_url": "http://127.0.0.1:8000/e/",
        "events_secret": "e",
    }
    core = janus_config_files(
        JanusConfigOptions(
            **base, nat_1_1_mapping="203.0.113.7", turn_server="10.0.0.5", turn_user="99:janus", turn_pwd="pw"
        ),
        configs_folder=Path("/c"),
    )["janus.jcfg"]
    for line in ('nat_1_1_mapping = "203.0.113.7"', "keep_private_host = true", 'turn_server = "10.0.0.5"',
                 "turn_port = 3478", 'turn_type = "udp"', 'turn_user = "99:janus"', 'turn_pwd = "pw"'):  # fmt: skip
        assert line in core, line
    plain = janus_config_files(JanusConfigOptions(**base), configs_folder=Path("/c"))["janus.jcfg"]
    assert "turn_server" not in plain and "nat_1_1_mapping" not in plain
    with pytest.raises(JanusConfigError):
        janus_config_files(JanusConfigOptions(**base, turn_server="10.0.0.5"), configs_folder=Path("/c"))


def test_join_credentials_carry_per_participant_turn_credentials_and_role_bitrates(settings: Any) -> None:
    from types import SimpleNamespace
    from uuid import uuid4

    from apps.calls.selectors import _ice_servers

    settings.TURN_ENABLED = True
    settings.TURN_URLS = ["turn:turn.example:3478?transport=udp"]
    settings.TURN_URLS_BY_SERVER = {"janus-sh": ["turn:turn-sh.example:3478?transport=udp"]}
    call = SimpleNamespace(public_id=uuid4(), janus_server="janus-sh")
    customer = _ice_servers(call=call, participant=SimpleNamespace(handle="h-customer"))  # type: ignore[arg-type]
    agent = _ice_servers(call=call, participant=SimpleNamespace(handle="h-agent"))  # type: ignore[arg-type]
    assert customer[0]["urls"] == ["turn:turn-sh.example:3478?transport=udp"]  # the region's TURN
    assert customer[0]["username"].endswith(f":{call.public_id.hex[:12]}-h-customer")
    assert customer[0]["credential"] != agent[0]["credential"]
    settings.TURN_ENABLED = False
    assert _ice_servers(call=call, participant=SimpleNamespace(handle="h")) == []  # type: ignore[arg-type]


def test_a_weak_mobile_link_keeps_video_flowing_and_survives_a_5_s_outage(wan: WanHarness, tmp_path: Path) -> None:
    """300 ms one-way delay, 5 % loss, 500 kbit/s each way; then nothing passes for 5 s.

    The customer's bitrate cap (the platform's customer default) fits the
    link; the agent's side measures decoded frames per second. Once video
    is steady, the link is cut for 5 s: the customer's participation must not
    end, the same feed resumes (no rejoin, no new participant id). aiortc
    cannot restart ICE, so here the ICE session rides out the outage; the ICE
    restart after a stall is the browser library's
    (static/js/remotebank-call.js), see docs/janus.md.
    """
    import threading

    from django.conf import settings

    room_id = _room_id()
    _create_room(wan, room_id, tmp_path / "recordings")
    progress, stop = tmp_path / "agent-progress.json", tmp_path / "stop"
    outage: dict[str, float] = {}

    def cut_the_link_once_video_flows() -> None:
        def run() -> None:
            # Cut once the video is steady: 45 frames decoded in the last 3 s
            # (set-up over this link takes ~10 s, then keyframes get through).
            deadline = time.time() + 75
            history: list[tuple[float, int]] = []
            while time.time() < deadline:
                with contextlib.suppress(OSError, ValueError):  # not written yet, or mid-replace
                    history.append((time.time(), json.loads(progress.read_text())["frames"]))
                recent = [frames for at, frames in history if at >= time.time() - 3]
                if len(history) > 12 and recent and recent[-1] - recent[0] >= 45:
                    break
                time.sleep(0.25)
            outage["start"] = time.time()
            wan.firewall("outage")
            time.sleep(5)
            wan.firewall("open")
            outage["end"] = time.time()
            # 20 s of video after the outage for the rate below. With 12 s here
            # the rate was taken over about 11 s, and chance bursts of loss on
            # this link moved it a lot: 12.5, 15.2 and 37.0 fps in three runs of
            # 2026-12-04 against the floor of 10 (with 20 s: 23.7, 25.4, 39.1).
            # A clean-clone CI run of 2026-12-04 00:30 failed this test; its
            # figures were not seen.
            time.sleep(20)
            stop.touch()

        threading.Thread(target=run, daemon=True).start()

    with wan.link(delay_ms=300, loss=0.05, rate_kbit=500) as counters:
        customer, agent = _call(
            wan,
            room_id,
            seconds=90,
            customer_ice=wan.ice_servers("weak-customer"),
            customer_bitrate=settings.CALL_VIDEO_BITRATE_CUSTOMER,
            # What a weak subscriber gets: a low layer of the agent's video
            # (aiortc sends no simulcast, so a cap stands in for it; its VP8
            # encoder never goes below 250 kbit/s, half its default). The
            # agent's video at the default 500 kbit/s fills the downlink and
            # starves the RTCP (NACK, PLI, REMB) the customer's own video
            # depends on: seen, no customer frame decoded at all.
            agent_bitrate=150_000,
            during=cut_the_link_once_video_flows,
            extra={"progress_file": str(progress), "stop_file": str(stop)},
        )
    wan.firewall("open")
    _destroy_room(wan, room_id)
    assert counters["uplink"]["lost"] > 0 and counters["downlink"]["lost"] > 0, counters  # the link was lossy
    assert "end" in outage, "the outage never ran"

    frames = agent["frames"]  # seconds since the agent's peer started
    cut, back = outage["start"] - agent["started_at"], outage["end"] - agent["started_at"]
    before = _fps(frames, cut - 3, cut)
    after_frames = [at for at in frames if at > back]
    assert after_frames, f"video never came back after the outage (last frame {frames[-1]}, outage end {back})"
    resumed_after = after_frames[0] - back
    after = _fps(frames, after_frames[0] + 1, frames[-1])
    during = [at for at in frames if cut + 2 < at < back]
    summary = {
        "first_frame_s": frames[0],
        "frames_during_outage": len(during),
        "fps_before_outage": round(before, 1),
        "resumed_after_s": round(resumed_after, 2),
        "fps_after_outage": round(after, 1),
        "link": counters,
    }
    print(json.dumps(summary))
    # The outage was real. The window starts 2 s into it, past what the
    # link's queue (≤ 1 s) and delay held at the cut, so an open link would
    # show ≥ 30 frames here (the 10 fps floor below); a few decoded late by
    # a busy agent are not video passing (seen 0-2, and 3 in a clean-clone CI
    # of 2026-12-04 with Chromium, Janus and both peers on 2 cores).
    assert len(during) < 10, summary
    # Floor: the agent must keep seeing the customer move, at a third of the
    # 30 fps sent, in the 3 s before the cut and after the link came back.
    assert before >= 10, summary
    # Back well inside the rejoin grace period (CALL_REJOIN_GRACE_SECONDS,
    # 60 s): the decoder needs a new keyframe, asked for (PLI) and sent over
    # the lossy 600 ms round trip (seen 0-7.4 s).
    assert resumed_after < 15, summary
    assert after >= 10, summary
    # The same customer feed throughout: no rejoin happened.
    assert agent["peer_feed_id"] == customer["participant_id"]


def test_after_a_5_s_outage_the_browser_restarts_ice_and_the_call_goes_on(wan: WanHarness, tmp_path: Path) -> None:
    """The customer in headless Chromium with the shared call library (static/js/remotebank-call.js).

    Once the agent decodes the customer's video, nothing passes for 5 s. The
    library must restart ICE (state ``ice_restart``: a new offer with
    ``iceRestart`` for its publisher, ``configure`` ``restart`` for its
    subscription) and the call must go on: video decoded again on both sides,
    the customer joined the room once (no rejoin, no new feed).
    """
    import importlib.util
    import sys
    import threading

    from tests.calls.conftest import ROOT

    if not Path("/usr/bin/chromium").exists() or importlib.util.find_spec("playwright") is None:
        if CI:
            pytest.fail("CI=true but Debian's chromium or playwright is missing", pytrace=False)
        pytest.skip("chromium or playwright is missing")
    room_id = _room_id()
    _create_room(wan, room_id, tmp_path / "recordings")
    progress, stop = tmp_path / "agent-progress.json", tmp_path / "stop"
    outage: dict[str, float] = {}
    credentials = {
        "server_url": wan.server.public_ws_url,
        "room_id": room_id,
        "session_token": wan.session_token(),
        "room_token": wan.room_token(room_id),
        "handle": CUSTOMER,
        "role": "customer",
        "ice_servers": wan.ice_servers("browser-customer"),
        "video_bitrate": 300_000,
        "simulcast": False,
        "stall_seconds": 3,
    }

    def agent_frames() -> int:
        try:
            return int(json.loads(progress.read_text())["frames"])
        except (OSError, ValueError, KeyError):
            return 0

    def run_outage() -> None:
        deadline = time.time() + 90
        while time.time() < deadline and agent_frames() < 60:
            time.sleep(0.25)
        outage["start"] = time.time()
        wan.firewall("outage")
        time.sleep(5)
        wan.firewall("open")
        outage["end"] = time.time()
        at_reopening = agent_frames()
        # At least 15 s of call after the outage; longer (up to 45 s) while
        # the agent has not yet decoded 60 new frames: on a loaded 2-core CI
        # machine the restart once took most of a fixed 15 s (4 frames
        # after it). A call that never comes back still fails the asserts.
        time.sleep(15)
        give_up = outage["end"] + 45
        while time.time() < give_up and agent_frames() < at_reopening + 60:
            time.sleep(0.25)
        stop.touch()

    with wan.link():
        agent = wan.start(
            wan.server_ns,
            [
                {
                    "op": "call",
                    "room_id": room_id,
                    "session_token": wan.session_token(),
                    "room_token": wan.room_token(room_id),
                    "display": AGENT,
                    "peer_display": CUSTOMER,
                    "seconds": 150,
                    "find_seconds": 60,
                    "progress_file": str(progress),
                    "stop_file": str(stop),
                }
            ],
        )
        browser = subprocess.Popen(
            ["ip", "netns", "exec", wan.customer_ns, sys.executable, str(ROOT / "tests" / "calls" / "browser_peer.py"),
             "--seconds", "150", "--stop-file", str(stop)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )  # fmt: skip
        thread = threading.Thread(target=run_outage, daemon=True)
        thread.start()
        try:
            page_out, page_err = browser.communicate(json.dumps(credentials), timeout=200)
        finally:
            stop.touch()
            wan.firewall("open")
        (agent_result,) = wan.finish(agent, timeout=60)
    _destroy_room(wan, room_id)
    assert browser.returncode == 0, page_err[-3000:]
    page = json.loads(page_out)
    agent_report = _ok(agent_result)
    assert "end" in outage, ("the agent never decoded 60 frames", page["log"][-10:], agent_report["frames"][-3:])

    page_start = page["started_at"]
    cut, back = outage["start"] - page_start, outage["end"] - page_start
    restarts = [entry for entry in page["log"] if entry.get("state") == "ice_restart"]
    assert any(entry["at"] >= cut for entry in restarts), (cut, back, page["log"])
    assert not [entry for entry in page["log"] if entry.get("state") in ("room_closed", "closed")], page["log"]
    # The page decodes the agent again after the outage.
    decoded = _cumulative([(at, frames) for at, frames, *_ in page["frames"] if frames >= 0])
    before = max(frames for at, frames in decoded if at <= cut)
    after = max(frames for at, frames in decoded)
    assert after > before + 30, (before, after, decoded)
    # The agent decodes the customer again after the outage, on the same feed.
    agent_back = [at for at in agent_report["frames"] if at > outage["end"] - agent_report["started_at"]]
    assert len(agent_back) >= 30, (len(agent_back), agent_report["frames"][-5:])
    joins = [
        event
        for event in wan.events()
        if isinstance(event.get("event"), dict)
        and event["event"].get("plugin") == "janus.plugin.videoroom"
        and event["event"].get("data", {}).get("event") == "joined"
        and event["event"].get("data", {}).get("display") == CUSTOMER
        and event["event"].get("data", {}).get("room") == room_id
    ]
    assert len(joins) == 1, joins
    assert agent_report["peer_feed_id"] == joins[0]["event"]["data"]["id"]
    print(json.dumps({"restarts": restarts, "cut": round(cut, 2), "back": round(back, 2), "page_frames": decoded[-3:]}))


def test_a_weak_subscriber_gets_a_lower_simulcast_layer_of_the_agent_and_video_keeps_flowing(
    wan: WanHarness, tmp_path: Path
) -> None:
    """Both sides in headless Chromium with the shared call library; the agent publishes in simulcast.

    The customer's link is weak (300 ms one-way, 5 % loss, 500 kbit/s each
    way): the library rates its downlink poor or fair and asks Janus for a
    lower layer of the agent's camera (``configure`` ``substream``). Asserted:
    the agent really sent several layers; the customer asked for a lower one
    and then decoded the agent's video at a lower resolution than the top
    layer, at ≥ 10 fps; the customer's camera went out in temporal layers
    and the agent decoded it throughout (≥ 10 frames in every 10 s); and the
    agent's recording (Janus records a simulcast publisher's best layer,
    switching as layers come and go) lasts as long as the agent published,
    which the evidence file's duration depends on (docs/janus.md).
    """
    import importlib.util

    if not Path("/usr/bin/chromium").exists() or importlib.util.find_spec("playwright") is None:
        if CI:
            pytest.fail("CI=true but Debian's chromium or playwright is missing", pytrace=False)
        pytest.skip("chromium or playwright is missing")
    pp_rec = _pp_rec()
    room_id = _room_id()
    record_dir = tmp_path / "recordings"
    _create_room(wan, room_id, record_dir)
    stop = tmp_path / "stop"

    def credentials(handle: str, role: str, **extra: Any) -> dict[str, Any]:
        return {
            "server_url": wan.server.public_ws_url,
            "room_id": room_id,
            "session_token": wan.session_token(),
            "room_token": wan.room_token(room_id),
            "handle": handle,
            "role": role,
            "stall_seconds": 3,
            **extra,
        }

    seconds = 60
    with wan.link(delay_ms=300, loss=0.05, rate_kbit=500) as counters:
        agent = wan.browser(
            wan.server_ns,
            credentials(AGENT, "agent", ice_servers=[], video_bitrate=900_000, simulcast=True),
            seconds=seconds,
            stop=stop,
        )
        time.sleep(2)  # the agent publishes first, as in a real call
        customer = wan.browser(
            wan.customer_ns,
            credentials(CUSTOMER, "customer", ice_servers=wan.ice_servers("weak-simulcast"), video_bitrate=300_000,
                        simulcast=False),
            seconds=seconds - 2,
            stop=stop,
        )  # fmt: skip
        try:
            customer_out, customer_err = customer.communicate(timeout=seconds + 60)
            agent_out, agent_err = agent.communicate(timeout=60)
        finally:
            stop.touch()
            for process in (agent, customer):
                if process.poll() is None:
                    process.kill()
    _destroy_room(wan, room_id)
    assert agent.returncode == 0, agent_err[-3000:]
    assert customer.returncode == 0, customer_err[-3000:]
    agent_page, customer_page = json.loads(agent_out), json.loads(customer_out)
    assert counters["downlink"]["lost"] > 0, counters  # the link was lossy

    # The agent's camera went out in several simulcast layers.
    layers = [len(shape["layers"]) for _, shape in agent_page["shapes"]]
    top_width = max(layer["width"] for _, shape in agent_page["shapes"] for layer in shape["layers"])
    assert max(layers) >= 2, agent_page["shapes"][-3:]

    # The customer's library found its downlink weak and asked for a lower layer.
    asked = [entry for entry in customer_page["log"] if entry.get("state") == "substream"]
    assert any(entry["detail"]["substream"] < 2 for entry in asked), customer_page["log"][-15:]

    # ... and then decoded the agent at a lower resolution, the video still flowing.
    first_ask = min(entry["at"] for entry in asked if entry["detail"]["substream"] < 2)
    decoded = _cumulative([(at, frames) for at, frames, *_ in customer_page["frames"] if frames >= 0])
    end_at, end_frames = decoded[-1]
    start_at, start_frames = next((at, frames) for at, frames in decoded if at >= end_at - 15)
    fps = (end_frames - start_frames) / (end_at - start_at)
    widths = [shape["width"] for at, shape in customer_page["shapes"] if at > first_ask + 5 and shape["width"]]
    agent_decoded = _cumulative([(at, frames) for at, frames, *_ in agent_page["frames"] if frames >= 0])
    # The agent's frames of the customer in each 5 s after the first one decoded.
    first_decoded_at = next(at for at, frames in agent_decoded if frames > 0)
    agent_every_5_s = [
        max(frames for at, frames in agent_decoded if at <= start + 5)
        - max(frames for at, frames in agent_decoded if at <= start)
        for start in range(math.ceil(first_decoded_at), math.floor(agent_decoded[-1][0]) - 4, 5)
    ]
    agent_every_10_s = [a + b for a, b in zip(agent_every_5_s[0::2], agent_every_5_s[1::2], strict=False)]
    agent_fps = agent_decoded[-1][1] / (agent_decoded[-1][0] - first_decoded_at)
    customer_modes = sorted(
        {str(layer.get("mode")) for _, shape in customer_page["shapes"] for layer in shape["layers"]}
    )
    summary = {
        "agent_layers": agent_page["shapes"][-1][1]["layers"],
        "asked": asked,
        "customer_fps_last_15_s": round(fps, 1),
        "agent_fps_of_the_customer": round(agent_fps, 1),
        "agent_frames_of_the_customer_every_5_s": agent_every_5_s,
        # Who lost the frames when the agent decoded few: the customer's sender (frames sent, and why
        # its encoder held back) or the link and the agent's decoder (received, dropped, freezes).
        "customer_sent_every_5_s": [
            (shape["layers"] or [{}])[0].get("sent") for at, shape in customer_page["shapes"] if round(at) % 5 == 0
        ][-13:],
        "customer_modes": customer_modes,
        "customer_limited_by": sorted(
            {str(layer.get("limited")) for _, shape in customer_page["shapes"] for layer in shape["layers"]}
        ),
        "agent_received_of_the_customer": agent_page["shapes"][-1][1].get("received"),
        "customer_widths": sorted(set(widths)),
        "top_width": top_width,
        "link": counters,
    }
    print(json.dumps(summary))
    assert widths and min(widths) < top_width, summary
    # Not flapping: a layer change at most every 8 s on average (the library
    # goes down at once but up only after 6 s of better samples, seen: 11
    # changes in 50 s without that).
    assert len(asked) <= seconds / 8, summary
    assert fps >= 10, summary
    # The customer's phone sent its camera in three temporal layers (remotebank-call.js, L1T3), so a
    # packet lost on its uplink costs one frame rather than freezing the agent's picture for a round trip.
    assert customer_modes == ["L1T3"], summary
    # The agent kept seeing the customer move: at least 10 frames in every 10 s after the first one.
    # Not an average frame rate: on this uplink (300 kbit/s through 5 % loss at a 600 ms round trip) it
    # is the link's dice and counts frames decoded in a burst after a freeze as flowing video. Seen on
    # 2026-12-02/03: 7.9 to 18.4 fps on average (CI of stop 27 failed an 8 fps floor at 7.9); the fewest
    # frames in a 10 s window, over the seven runs that printed them, 41. The frozen time is the figure
    # that tells the temporal layers apart: 33-37 s of ~55 s without them (three runs), 12-26 s with
    # them (five runs).
    assert agent_every_10_s and min(agent_every_10_s) >= 10, summary

    # Every video recording, the agent's simulcast one included, lasts as long
    # as it was written: from its first packet (header "u") to its last write
    # (the file's mtime; Janus closes it when the room is destroyed).
    durations = []
    for path in [p for p in _closed_recordings(record_dir) if "-video-" in p.name]:
        header = json.loads(
            subprocess.run([pp_rec, "-e", str(path)], capture_output=True, text=True, check=True).stdout
        )
        target = tmp_path / f"{path.stem}.webm"
        subprocess.run([pp_rec, str(path), str(target)], capture_output=True, check=True)
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(target)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        written = path.stat().st_mtime - header["u"] / 1e6
        resolutions = {(item["width"], item["height"]) for item in header["extended"]["codec"]["resolution"]}
        durations.append(
            (path.name, float(json.loads(probe.stdout)["format"]["duration"]), written, sorted(resolutions))
        )
    print(json.dumps({"recordings": durations}))
    # Both are there (the customer's was missing once in CI, 2026-12-03,
    # most likely still open when the room's destroy answered: hence the
    # wait for Janus to close them), and the agent's holds several
    # resolutions (simulcast).
    assert len(durations) == 2, durations
    assert any(len(resolutions) > 1 for *_, resolutions in durations), durations
    for name, duration, written, _ in durations:
        assert written > 30, durations
        assert abs(duration - written) < 2.0, (name, duration, written)
