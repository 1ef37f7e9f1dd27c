"""Benchmark of recording post-processing: seconds of processing per minute of a two-party call.

Usage (root, like the Janus tests):
    .venv/bin/python bench/recording_bench.py [--seconds 30] [--repeat 2] [--keep DIR]
    .venv/bin/python bench/recording_bench.py --from DIR     # reuse .mjr files of a two-party call

Records a real call: a private network namespace (scripts/netns.sh, see
docs/janus.md), Janus 1.1.2 with a generated configuration, and two aiortc
peers (tests/calls/peer.py: 320×240 synthetic video at 30 fps, 440 Hz sine)
publishing together for ``--seconds`` (the second one 0.5 s later). Then it
runs the post-processing pipeline of ``apps.recordings.services.processing`` on those
files — the same pipeline functions (``apps.recordings.integrations.media``):
SHA-256 and ``janus-pp-rec -j`` of the originals, conversion of each .mjr,
per-participant mux with the ``-itsoffset`` alignment, the composite evidence
file (hstack, amix, burned-in caption and clock), SHA-256 of every output —
without the database and storage writes (milliseconds next to ffmpeg).

Prints each stage's time and the result as seconds of processing per minute
of call, for each repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from apps.calls.integrations.janus import JanusServer, janus_session_token, janus_token  # noqa: E402
from apps.calls.janus_config import (  # noqa: E402
    JanusConfigOptions,
    available_modules,
    debian_janus_lib_dir,
    write_janus_config,
)
from apps.recordings.integrations.media import (  # noqa: E402
    COMPOSITE_CODEC,
    COMPOSITE_CODECS,
    FeedMedia,
    Track,
    call_compose,
    call_duration,
    feed_mux,
    original_convert,
    original_read,
)

PEER = ROOT / "tests" / "calls" / "peer.py"
# Issue 18: post-processing of a two-party call, per minute of call.
TARGET_SECONDS_PER_MINUTE = 5.0
NETNS = ROOT / "scripts" / "netns.sh"
WS_PORT = 8188


def _wait_port(netns: str, port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = subprocess.run(
            ["ip", "netns", "exec", netns, "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return
        time.sleep(0.05)
    raise SystemExit(f"Janus did not open port {port}")


def _steps(netns: str, steps: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    completed = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, str(PEER), "steps"],
        input=json.dumps(steps),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )
    if completed.returncode != 0:
        raise SystemExit(f"peer.py failed: {completed.stderr[-2000:]}")
    results: list[dict[str, Any]] = json.loads(completed.stdout)
    for result in results:
        if "ok" not in result:
            raise SystemExit(f"peer step failed: {result}")
    return results


def record_two_party_call(seconds: float, folder: Path, workdir: Path) -> None:
    """A real Janus call with two publishing peers; the .mjr files land in ``folder``."""
    if os.geteuid() != 0 or shutil.which("janus") is None:
        raise SystemExit("recording a call needs root and Janus; or pass --from DIR")
    netns = f"rbbench{os.getpid()}"
    server = JanusServer(
        name="bench",
        admin_ws_url=f"ws://127.0.0.1:{WS_PORT}",
        public_ws_url=f"ws://127.0.0.1:{WS_PORT}",
        api_secret=secrets.token_urlsafe(24),
        admin_key=secrets.token_urlsafe(24),
        token_secret=secrets.token_urlsafe(24),
        admin_secret=secrets.token_urlsafe(24),
        admin_api_url="",
    )
    lib_dir = debian_janus_lib_dir()
    conf = workdir / "conf"
    write_janus_config(
        JanusConfigOptions(
            api_secret=server.api_secret,
            admin_secret=server.admin_secret,
            admin_key=server.admin_key,
            token_secret=server.token_secret,
            events_url="http://127.0.0.1:9/unused",
            events_secret=secrets.token_urlsafe(24),
            ws_port=WS_PORT,
            admin_port=7088,
            rtp_port_range="40000-40999",
            ice_enforce_list="v0",
            server_name=server.name,
            lib_dir=lib_dir,
            modules=available_modules(lib_dir),
        ),
        conf,
    )
    subprocess.run(["bash", str(NETNS), "up", netns], check=True, capture_output=True)
    janus = None
    try:
        janus = subprocess.Popen(
            ["ip", "netns", "exec", netns, "janus", "-F", str(conf), "-C", str(conf / "janus.jcfg"), "-o", "-N",
             "-L", str(workdir / "janus.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, umask=0o027,
        )  # fmt: skip
        _wait_port(netns, WS_PORT)
        room_id = secrets.randbelow(2**52) + 1
        common = {"url": server.admin_ws_url, "server": {**server.__dict__}}
        _steps(
            netns,
            [{**common, "op": "room", "method": "create_room",
              "kwargs": {"room_id": room_id, "secret": "s", "description": "bench", "record_dir": str(folder)}}],
            timeout=30,
        )  # fmt: skip

        def publish(display: str, delay: float) -> None:
            time.sleep(delay)
            _steps(
                netns,
                [{**common, "op": "publish", "room_id": room_id, "display": display, "seconds": seconds,
                  "session_token": janus_session_token(server, valid_seconds=3600),
                  "room_token": janus_token(server, room_id=room_id, valid_seconds=3600)}],
                timeout=seconds + 60,
            )  # fmt: skip

        threads = [threading.Thread(target=publish, args=(name, delay)) for name, delay in (("a", 0), ("b", 0.5))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        _steps(
            netns,
            [{**common, "op": "room", "method": "destroy_room", "kwargs": {"room_id": room_id, "secret": "s"}}],
            timeout=30,
        )
    finally:
        if janus is not None and janus.poll() is None:
            janus.send_signal(signal.SIGTERM)
            janus.wait(timeout=10)
        subprocess.run(["bash", str(NETNS), "down", netns], capture_output=True, check=False)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process(folder: Path, workdir: Path, codec: str = COMPOSITE_CODEC) -> tuple[float, dict[str, float], float]:
    """The pipeline of recording_process on the files of ``folder``.

    Returns (call seconds, stage wall times, CPU-seconds of the tools it ran).
    """
    stages: dict[str, float] = {}
    cpu_before = _children_cpu()

    def timed(stage: str, started: float) -> None:
        stages[stage] = stages.get(stage, 0.0) + time.perf_counter() - started

    feeds: dict[str, dict[str, Track]] = {}
    for path in sorted(folder.glob("*.mjr")):
        feed = path.name.split("-")[3]
        started = time.perf_counter()
        original = original_read(path)
        timed("header + hash originals", started)
        started = time.perf_counter()
        feeds.setdefault(feed, {})[original.kind] = original_convert(original, name=feed, workdir=workdir)
        timed("janus-pp-rec", started)
    call_start = min(track.first_write_us for tracks in feeds.values() for track in tracks.values())
    media: list[FeedMedia] = []
    for feed, tracks in feeds.items():
        started = time.perf_counter()
        media.append(feed_mux(tracks=tracks, name=feed, label=feed, call_start_us=call_start, workdir=workdir))
        timed("mux + probe + hash per participant", started)
    duration = call_duration(media)
    started = time.perf_counter()
    call_compose(
        feeds=media,
        duration=duration,
        caption="服务编号 Service no. bench\n通话 Call bench",
        call_start_us=call_start,
        target=workdir / f"composite{COMPOSITE_CODECS[codec][0]}",
        workdir=workdir,
        codec=codec,
    )
    timed(f"composite ({codec}) + hash", started)
    return duration, stages, _children_cpu() - cpu_before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30, help="length of the recorded call")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--from", dest="source", type=Path, help="folder with the .mjr files of a two-party call")
    parser.add_argument("--keep", type=Path, help="copy the recorded .mjr files here")
    parser.add_argument(
        "--codecs", default="h264,h264-veryfast,vp8", help="composite encoders to compare (COMPOSITE_CODECS)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="recording-bench-") as temporary:
        workdir = Path(temporary)
        folder = args.source
        if folder is None:
            folder = workdir / "call"
            folder.mkdir()
            started = time.perf_counter()
            record_two_party_call(args.seconds, folder, workdir)
            print(f"recorded a {args.seconds:.0f} s two-party call in {time.perf_counter() - started:.1f} s")
            if args.keep:
                shutil.copytree(folder, args.keep, dirs_exist_ok=True)
        sizes = sum(path.stat().st_size for path in folder.glob("*.mjr"))
        print(f"{len(list(folder.glob('*.mjr')))} .mjr files, {sizes / 1e6:.1f} MB; cores: {os.cpu_count()}")
        print(f"load average {os.getloadavg()[0]:.2f} (a shared machine: prefer the CPU-seconds)")
        for codec in args.codecs.split(","):
            for run in range(1, args.repeat + 1):
                out = workdir / f"{codec}-run{run}"
                out.mkdir()
                started = time.perf_counter()
                duration, stages, cpu = process(folder, out, codec)
                total = time.perf_counter() - started
                detail = ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in stages.items())
                per_minute = 60 * total / duration
                composite = out / f"composite{COMPOSITE_CODECS[codec][0]}"  # where process() writes it
                kbit_s = composite.stat().st_size * 8 / 1000 / duration
                print(
                    f"{codec} run {run}: call {duration:.1f} s processed in {total:.2f} s = "
                    f"{per_minute:.1f} s of processing per minute of call; tools' CPU {60 * cpu / duration:.1f} "
                    f"CPU-s per minute ({detail}); evidence file {kbit_s:.0f} kbit/s; load {os.getloadavg()[0]:.2f}"
                )
                print(f"  {'PASS' if per_minute <= TARGET_SECONDS_PER_MINUTE else 'MISS'}  {codec}: ≤ 5 s per minute")


if __name__ == "__main__":
    main()
