"""Benchmark of calls over a wide-area network: direct, relayed (TURN) and over a weak link.

Usage (root, like the Janus tests):
    .venv/bin/python bench/call_network_bench.py [--seconds 12] [--repeat 1]

Builds the test network of tests/calls/test_network.py (``wan_network`` in
tests/calls/conftest.py: a server namespace with Janus and coturn, the
customer behind a NAT router, the customer's link emulated by
tests/calls/linkem.py) and runs one two-way call per kind with aiortc peers
(tests/calls/peer.py ``call``, 320x240 synthetic video at 30 fps each way):

- direct: firewall open, no ICE servers (the customer reaches Janus' host
  candidate through the NAT: peer-reflexive pairs);
- relayed: UDP to the server blocked except TURN; the customer's media goes
  through coturn (its platform-style REST credentials);
- shaped: relayed, over a link of 300 ms one-way delay, 5 % loss and
  500 kbit/s each way; the customer capped at 300 kbit/s, the agent at 150;
  this call lasts 20 s longer (its set-up alone takes about 10 s);
- browser-shaped: the same link, both sides headless Chromium with the
  shared call library (tests/calls/browser_peer.py, Chromium's fake camera
  and microphone): the agent publishes in simulcast at the platform's staff
  cap and the weak customer asks for a lower layer, as in production. Frames
  are sampled once a second (``framesDecoded``), so its first-frame figure
  is to the second.

For each: time to the first decoded remote frame (from the peer's start, and
from its subscription), decoded frames per second on the agent's side and on
the customer's (from 1 s after the first frame to the end), and the CPU
seconds Janus and coturn spent during the call (utime + stime from /proc)
per second of call, i.e. the share of one core one such call costs.

Targets (ours, for a usable call on this machine): first frame within 5 s
direct and relayed, 15 s shaped; at least 20 decoded fps direct and relayed,
10 shaped. Prints the load average with the figures: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.calls.conftest import WanHarness, wan_network  # noqa: E402

TARGETS = {
    "direct": {"first_frame_s": 5.0, "fps": 20.0},
    "relayed": {"first_frame_s": 5.0, "fps": 20.0},
    "shaped": {"first_frame_s": 15.0, "fps": 10.0},
    "browser-shaped": {"first_frame_s": 15.0, "fps": 10.0},
}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def _fps(frames: list[float]) -> float:
    if len(frames) < 2:
        return 0.0
    start = frames[0] + 1
    window = [at for at in frames if at >= start]
    return len(window) / (frames[-1] - start) if frames[-1] > start else 0.0


def _unavailable(reason: str) -> None:
    raise SystemExit(f"cannot run: {reason}")


def one_call(
    wan: WanHarness, kind: str, seconds: float, workdir: Path, shaping: dict[str, float] | None = None
) -> dict[str, Any]:
    room_id = secrets.randbelow(2**52) + 1
    record_dir = workdir / f"rec-{room_id}"
    record_dir.mkdir()
    (create,) = wan.run(
        wan.server_ns,
        [
            {
                "op": "room",
                "method": "create_room",
                "kwargs": {"room_id": room_id, "secret": "s", "description": kind, "record_dir": str(record_dir)},
            }
        ],
    )
    assert "ok" in create, create
    common = {"room_id": room_id, "session_token": wan.session_token(), "room_token": wan.room_token(room_id)}
    customer_step: dict[str, Any] = {
        "op": "call",
        **common,
        "display": "customer",
        "peer_display": "agent",
        "seconds": seconds,
    }
    agent_step: dict[str, Any] = {
        "op": "call",
        **common,
        "display": "agent",
        "peer_display": "customer",
        "seconds": seconds,
    }
    link: dict[str, float] = {}
    if kind != "direct":
        customer_step["ice_servers"] = wan.ice_servers(f"bench-{kind}")
        wan.firewall("relay-only")
    if kind == "shaped":
        # Setting up over a 600 ms round trip with loss takes ~10 s here:
        # give the call time to reach a steady state after that.
        seconds += 20
        customer_step["seconds"] = agent_step["seconds"] = seconds
        link = shaping or {"delay_ms": 300, "loss": 0.05, "rate_kbit": 500}
        customer_step["bitrate"] = 300_000
        agent_step["bitrate"] = 150_000
    janus_pid, turn_pid = wan.janus_process.pid, wan.turn_process.pid
    try:
        with wan.link(**link):
            cpu_before = (_cpu_seconds(janus_pid), _cpu_seconds(turn_pid))
            wall_before = time.monotonic()
            agent = wan.start(wan.server_ns, [agent_step])
            customer = wan.start(wan.customer_ns, [customer_step])
            (customer_result,) = wan.finish(customer, timeout=seconds + 60)
            (agent_result,) = wan.finish(agent, timeout=seconds + 60)
            wall = time.monotonic() - wall_before
            cpu_after = (_cpu_seconds(janus_pid), _cpu_seconds(turn_pid))
    finally:
        wan.firewall("open")
    wan.run(wan.server_ns, [{"op": "room", "method": "destroy_room", "kwargs": {"room_id": room_id, "secret": "s"}}])
    figures: dict[str, Any] = {"kind": kind, "link": link, "load_average": [round(x, 2) for x in os.getloadavg()]}
    for side, result in (("agent", agent_result), ("customer", customer_result)):
        if "ok" not in result:
            figures[side] = {
                "error": result.get("error"),
                "decoded_frames": len(result.get("partial", {}).get("frames", [])),
            }
            continue
        report = result["ok"]
        frames = report["frames"]
        figures[side] = {
            "first_frame_s": frames[0] if frames else None,
            "first_frame_after_subscribe_s": round(frames[0] - report["subscribed_seconds"], 3) if frames else None,
            "decoded_fps": round(_fps(frames), 1),
            "decoded_frames": len(frames),
            "pair": (report.get("subscriber_pair") or {}).get("local", {}).get("type"),
        }
    figures["janus_cpu_share_per_call"] = round((cpu_after[0] - cpu_before[0]) / wall, 4)
    figures["coturn_cpu_share_per_call"] = round((cpu_after[1] - cpu_before[1]) / wall, 4)
    figures["call_wall_s"] = round(wall, 1)
    return figures


def browser_call(
    wan: WanHarness, seconds: float, workdir: Path, shaping: dict[str, float] | None = None
) -> dict[str, Any]:
    """Both sides in Chromium over the shaped, relayed link; the agent in simulcast."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "remotebank.settings.local")
    django.setup()  # the platform's own caps and stall setting, not copies
    from django.conf import settings

    room_id = secrets.randbelow(2**52) + 1
    record_dir = workdir / f"rec-{room_id}"
    record_dir.mkdir()
    (create,) = wan.run(
        wan.server_ns,
        [{"op": "room", "method": "create_room",
          "kwargs": {"room_id": room_id, "secret": "s", "description": "browser", "record_dir": str(record_dir)}}],
    )  # fmt: skip
    assert "ok" in create, create
    seconds += 20  # as "shaped": the set-up over the weak link takes seconds

    def credentials(handle: str, role: str, **extra: Any) -> dict[str, Any]:
        return {
            "server_url": wan.server.public_ws_url, "room_id": room_id, "session_token": wan.session_token(),
            "room_token": wan.room_token(room_id), "handle": handle, "role": role,
            "stall_seconds": settings.CALL_MEDIA_STALL_SECONDS, **extra,
        }  # fmt: skip

    link = shaping or {"delay_ms": 300, "loss": 0.05, "rate_kbit": 500}
    stop = workdir / f"stop-{room_id}"
    janus_pid, turn_pid = wan.janus_process.pid, wan.turn_process.pid
    wan.firewall("relay-only")
    try:
        with wan.link(**link):
            cpu_before = (_cpu_seconds(janus_pid), _cpu_seconds(turn_pid))
            wall_before = time.monotonic()
            agent = wan.browser(
                wan.server_ns,
                credentials("agent", "agent", ice_servers=[], video_bitrate=settings.CALL_VIDEO_BITRATE_STAFF,
                            simulcast=True),
                seconds=seconds, stop=stop,
            )  # fmt: skip
            customer = wan.browser(
                wan.customer_ns,
                credentials("customer", "customer", ice_servers=wan.ice_servers("bench-browser"),
                            video_bitrate=settings.CALL_VIDEO_BITRATE_CUSTOMER, simulcast=False),
                seconds=seconds, stop=stop,
            )  # fmt: skip
            outputs = [process.communicate(timeout=seconds + 60) for process in (agent, customer)]
            wall = time.monotonic() - wall_before
            cpu_after = (_cpu_seconds(janus_pid), _cpu_seconds(turn_pid))
    finally:
        stop.touch()
        wan.firewall("open")
    wan.run(wan.server_ns, [{"op": "room", "method": "destroy_room", "kwargs": {"room_id": room_id, "secret": "s"}}])
    figures: dict[str, Any] = {"kind": "browser-shaped", "link": link,
                               "load_average": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip
    for side, (stdout, stderr) in zip(("agent", "customer"), outputs, strict=True):
        try:
            report = json.loads(stdout)
        except ValueError:
            figures[side] = {"error": stderr[-500:]}
            continue
        samples = [(at, frames) for at, frames, *_ in report["frames"] if frames >= 0]
        first = next((at for at, frames in samples if frames > 0), None)
        steady = [(at, frames) for at, frames in samples if first is not None and at >= first + 1]
        fps = (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0]) if len(steady) > 1 else 0.0
        widths = sorted({shape["width"] for _, shape in report.get("shapes", []) if shape["width"]})
        figures[side] = {
            "first_frame_s": first,
            "decoded_fps": round(fps, 1),
            "decoded_frames": samples[-1][1] if samples else 0,
            "widths_decoded": widths,
            "layer_requests": [entry["detail"] for entry in report["log"] if entry.get("state") == "substream"],
        }
    figures["janus_cpu_share_per_call"] = round((cpu_after[0] - cpu_before[0]) / wall, 4)
    figures["coturn_cpu_share_per_call"] = round((cpu_after[1] - cpu_before[1]) / wall, 4)
    figures["call_wall_s"] = round(wall, 1)
    return figures


def verdict(figures: dict[str, Any]) -> list[str]:
    target = TARGETS[figures["kind"]]
    lines = []
    for side in ("agent", "customer"):
        side_figures = figures[side]
        first = side_figures.get("first_frame_s")
        fps = side_figures.get("decoded_fps", 0.0)
        ok_first = first is not None and first <= target["first_frame_s"]
        ok_fps = fps >= target["fps"]
        lines.append(
            f"{figures['kind']:8s} {side:8s} first frame {first if first is not None else '-':>6} s "
            f"(target ≤ {target['first_frame_s']:g}) {'PASS' if ok_first else 'MISS'}; "
            f"decoded {fps:5.1f} fps (target ≥ {target['fps']:g}) {'PASS' if ok_fps else 'MISS'}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=12.0, help="length of each call")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--kinds", default="direct,relayed,shaped,browser-shaped")
    parser.add_argument("--delay-ms", type=float, default=300, help="shaped link: one-way delay")
    parser.add_argument("--loss", type=float, default=0.05, help="shaped link: loss probability per packet")
    parser.add_argument("--rate-kbit", type=float, default=500, help="shaped link: rate each way")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="call-network-bench-") as folder:
        workdir = Path(folder)
        with wan_network(workdir / "wan", _unavailable) as wan:
            results = []
            for _ in range(options.repeat):
                for kind in options.kinds.split(","):
                    shaping = {"delay_ms": options.delay_ms, "loss": options.loss, "rate_kbit": options.rate_kbit}
                    if kind == "browser-shaped":
                        figures = browser_call(wan, options.seconds, workdir, shaping)
                    else:
                        figures = one_call(wan, kind, options.seconds, workdir, shaping)
                    print(json.dumps(figures), flush=True)
                    results.append(figures)
    print()
    for figures in results:
        for line in verdict(figures):
            print(line)
        print(
            f"{figures['kind']:8s} Janus {figures['janus_cpu_share_per_call'] * 100:.1f} % of a core, "
            f"coturn {figures['coturn_cpu_share_per_call'] * 100:.1f} % of a core, per call; "
            f"load average {figures['load_average']}"
        )


if __name__ == "__main__":
    main()
