"""Benchmark of the waiting customers' WebSockets: how many one Daphne process holds with updates within 1 s p99.

Usage: .venv/bin/python bench/queue_websocket_bench.py [--sizes 500,1000,2000] [--max-n 16000]
       [--dequeues 20] [--rate 2] [--budget 540] [--keep-db]

Starts a real Daphne (``remotebank.asgi:application``, local settings with
secrets from the environment, Redis channel layer on db 14, eager Celery) on a
free port, against a fresh database ``remotebank_bench_ws``. For each N (500,
1,000, 2,000, then doubling while it holds) it prepares one queue with N
waiting entries (visit + Django session holding the visit id) and enough
available agents, then opens N WebSocket clients to ``/ws/visit/`` (session
cookie and Origin, as a browser sends them) and waits for each first
``position`` message. Then:

A. Dequeues: a separate dispatcher process calls ``dispatch_queue`` ``--dequeues``
   times at ``--rate`` per second; the head customer is offered to an agent and
   every other client must see its position go down by one. Delay = client
   receipt − the dequeue's COMMIT (both on the machine's monotonic clock).
B. A position re-sync, as ``run_dispatcher`` sends to every queue every 15 s
   (``queue.resync``), with one more dequeue 0.1 s later: how long until every
   client has its recount, how late that dequeue's update is, and how many
   positions are wrong once everything has arrived.

Stops after the first N whose A-phase p99 exceeds 1 s or that shows errors
(failed connections, lost updates), when the next N would not fit the open-file
limit, or when the time budget would be exceeded. Prints Daphne's RSS and CPU,
the largest N that held, and a PASS/MISS line per N. Daphne is stopped, the
database dropped and Redis db 14 flushed at the end.

The clients run in this process (one asyncio loop on the same 2-core machine
as Daphne, PostgreSQL and Redis): their own CPU time is printed so that a
client-side bottleneck can be told from a server-side one.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import random
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine import speed_line  # noqa: E402
from queue_dispatch_bench import (  # noqa: E402 (after the path set-up)
    REDIS_BENCH_URL,
    drop_database,
    flush_redis_bench_db,
    make_agents,
    make_customers,
    make_waiting_entries,
    ms,
    percentile,
    recreate_database,
)

DB_NAME = os.environ.get("BENCH_WS_DB_NAME", "remotebank_bench_ws")
TARGET_P99_SECONDS = 1.0
BUSINESS = "activation"
CONNECT_CONCURRENCY = 100
# File descriptors kept free for everything but the client sockets.
FD_MARGIN = 300


# --- Environment and processes -----------------------------------------------------


def bench_environment(var_dir: Path, redis_url_options: str) -> dict[str, str]:
    """Local settings with every secret from the environment (no dev-secrets file in the tree)."""
    redis_url = f"{REDIS_BENCH_URL}?{redis_url_options}" if redis_url_options else REDIS_BENCH_URL
    return {
        "DJANGO_SETTINGS_MODULE": "remotebank.settings.local",
        "REMOTEBANK_SECRET_KEY": secrets.token_urlsafe(50),
        "REMOTEBANK_FIELD_ENCRYPTION_KEYS": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "REMOTEBANK_BLIND_INDEX_KEY": secrets.token_urlsafe(32),
        "REMOTEBANK_DEBUG": "false",
        "REMOTEBANK_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "REMOTEBANK_VAR_DIR": str(var_dir),
        "REDIS_URL": redis_url,
        # With REDIS_URL set Celery would send tasks to a broker nobody reads.
        "REMOTEBANK_CELERY_EAGER": "true",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_EXPERIMENT_APP: Any = None


async def experiment_application(scope: Any, receive: Any, send: Any) -> None:
    """``--experiment no-close-hop``: the app with queue.changed handled without channels' per-message hop.

    channels (4.3) ``AsyncConsumer.dispatch`` awaits ``aclose_old_connections()``
    before every handler: a trip to the single thread-sensitive sync thread
    for every message of every client. ``queue_changed`` touches no database,
    so this variant calls it directly. Used only to measure what that costs.
    """
    global _EXPERIMENT_APP  # noqa: PLW0603 (built once, on first use, inside Daphne)
    if _EXPERIMENT_APP is None:
        import remotebank.asgi  # sets Django up: first

        application = remotebank.asgi.application
        from apps.queueing import events
        from apps.queueing.consumers import VisitConsumer

        original = VisitConsumer.dispatch

        async def dispatch(self: Any, message: dict[str, Any]) -> None:
            if message.get("type") == events.QUEUE_CHANGED:
                await self.queue_changed(message)
            else:
                await original(self, message)

        VisitConsumer.dispatch = dispatch  # type: ignore[method-assign]
        _EXPERIMENT_APP = application
    await _EXPERIMENT_APP(scope, receive, send)


def start_daphne(port: int, log_path: Path, *, experiment: str, db_pool: int) -> subprocess.Popen[bytes]:
    daphne = Path(sys.executable).parent / "daphne"
    log = log_path.open("wb")
    app = "bench.queue_websocket_bench:experiment_application" if experiment else "remotebank.asgi:application"
    process = subprocess.Popen(
        [str(daphne), "-b", "127.0.0.1", "-p", str(port), app],
        cwd=ROOT,
        # Inherits the raised open-file limit too; the pool as scripts/run.sh starts Daphne.
        env=os.environ | {"REMOTEBANK_DB_POOL_SIZE": str(db_pool)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Daphne exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("Daphne did not start listening within 60 s")


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


class DaphneLog:
    """New ERROR lines of Daphne's log since the last look (exceptions inside the application)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def new_errors(self) -> list[str]:
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            text = handle.read().decode(errors="replace")
            self.offset = handle.tell()
        return [line.split(" ERROR ", 1)[1].strip() for line in text.splitlines() if " ERROR " in line]


def summarize(errors: list[str]) -> str:
    counts = Counter(errors)
    return "; ".join(f"{count} × {message[:120]}" for message, count in counts.most_common(3))


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) in kB, from /proc."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _sep, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _dispatcher(connection: Any) -> None:
    """Child process: run dispatch_queue on request; answer (commit time, return time, entry id)."""
    import django

    django.setup()
    from django.db import transaction

    from apps.queueing.services.offers import dispatch_queue

    while True:
        queue_id = connection.recv()
        if queue_id is None:
            break
        marks: dict[str, float] = {}
        with transaction.atomic():
            # Registered first, so it runs first after COMMIT, before the dispatcher's broadcasts.
            transaction.on_commit(lambda marks=marks: marks.__setitem__("commit", time.monotonic()))
            offer = dispatch_queue(queue_id=queue_id)
        connection.send((marks.get("commit"), time.monotonic(), offer.entry_id if offer else None))


class Dispatcher:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_dispatcher, args=(child,))
        self.process.start()

    def dequeue(self, queue_id: int) -> tuple[float | None, float, int | None]:
        self.connection.send(queue_id)
        return self.connection.recv()

    def stop(self) -> None:
        if self.process.is_alive():
            self.connection.send(None)
            self.process.join(20)
        if self.process.is_alive():
            self.process.terminate()


# --- One round ---------------------------------------------------------------------


@dataclass
class Client:
    entry_id: int
    session_key: str
    rank: int  # true place in the queue at the start: 1 = next to be offered
    ws: Any = None
    positions: list[tuple[float, int]] = field(default_factory=list)
    visit_events: list[tuple[float, str]] = field(default_factory=list)
    other: list[Any] = field(default_factory=list)
    first_position: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None
    closing: bool = False
    # The page's algorithm (apps/queueing/position.py mirrors static/queueing/position.js).
    tracker: Any = None
    resyncs: list[float] = field(default_factory=list)
    snapshots_asked: int = 0
    gap_task: Any = None

    @property
    def initial(self) -> int:
        return self.positions[0][1]

    def first_at_or_below(self, position: int, after: float) -> float | None:
        return next((t for t, value in self.positions if t >= after and value <= position), None)

    def first_after(self, after: float) -> float | None:
        return next((t for t, _value in self.positions if t >= after), None)


@dataclass
class Round:
    n: int
    queue_id: int
    clients: list[Client]


def prepare_round(n: int, *, agents_start: int, agents: int, customers: list[Any], rng: random.Random) -> Round:
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.utils import timezone
    from django.utils.crypto import get_random_string

    from apps.queueing.models import ServiceQueue
    from apps.visits.authentication import SESSION_KEY

    queue = ServiceQueue.objects.create(code=f"ws-{n}", name=f"WebSocket bench {n}", businesses=[BUSINESS])
    entries = make_waiting_entries(queue, customers, n, rng=rng, spread_seconds=600)
    make_agents(agents, start=agents_start, rng=rng, businesses=(BUSINESS,))
    store = SessionStore()
    expires = timezone.now() + timedelta(hours=2)
    clients = []
    sessions = []
    ranks = {entry.pk: rank for rank, entry in enumerate(sorted(entries, key=lambda e: (e.priority_key, e.pk)), 1)}
    for entry in entries:
        key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
        sessions.append(
            Session(session_key=key, session_data=store.encode({SESSION_KEY: entry.visit_id}), expire_date=expires)
        )
        clients.append(Client(entry_id=entry.pk, session_key=key, rank=ranks[entry.pk]))
    Session.objects.bulk_create(sessions, batch_size=1000)
    return Round(n=n, queue_id=queue.pk, clients=clients)


async def _ask_after_gap(client: Client) -> None:
    """What position.js does: a gap that outlives 1 s makes the page ask for a snapshot."""
    await asyncio.sleep(1.0)
    client.gap_task = None
    if client.tracker.gap and client.ws is not None:
        client.snapshots_asked += 1
        await client.ws.send(json.dumps({"type": "resync"}))


async def _read(client: Client) -> None:
    from websockets.exceptions import ConnectionClosed

    from apps.queueing.position import Tracker, position_step, position_view

    client.tracker = Tracker()
    try:
        async for raw in client.ws:
            received = time.monotonic()
            message = json.loads(raw)
            if message.get("type") in ("position", "queue"):
                position_step(client.tracker, message)
                view = position_view(client.tracker)
                if message.get("resync"):
                    client.resyncs.append(received)
                if view["known"] and (not client.positions or client.positions[-1][1] != view["position"]):
                    client.positions.append((received, int(view["position"])))
                if message.get("type") == "position":
                    client.first_position.set()
                if client.tracker.gap and client.gap_task is None:
                    client.gap_task = asyncio.create_task(_ask_after_gap(client))
            elif message.get("type") == "visit":
                client.visit_events.append((received, str(message.get("event"))))
            else:
                client.other.append(message)
    except ConnectionClosed as exc:
        if not client.closing:
            client.error = f"closed by the server: {exc}"
    except Exception as exc:
        client.error = f"{type(exc).__name__}: {exc}"
    else:
        if not client.closing:
            client.error = "closed by the server"
    finally:
        client.first_position.set()


async def _open(client: Client, port: int, limit: asyncio.Semaphore, readers: list[asyncio.Task[None]]) -> None:
    from websockets.asyncio.client import connect

    async with limit:
        try:
            client.ws = await connect(
                f"ws://127.0.0.1:{port}/ws/visit/",
                origin=f"http://127.0.0.1:{port}",  # type: ignore[arg-type]
                additional_headers={"Cookie": f"sessionid={client.session_key}"},
                compression=None,  # Daphne does not offer permessage-deflate
                proxy=None,
                ping_interval=None,  # a browser does not ping; Daphne pings every 20 s
                open_timeout=60,
                close_timeout=10,
            )
        except Exception as exc:
            client.error = f"connect: {type(exc).__name__}: {exc}"
            client.first_position.set()
            return
        readers.append(asyncio.create_task(_read(client)))


async def _settle(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


async def run_round(
    work: Round, *, port: int, daphne_pid: int, dispatcher: Dispatcher, dequeues: int, rate: float, log: DaphneLog
) -> dict[str, Any]:
    from channels.layers import get_channel_layer

    from apps.queueing import events

    result: dict[str, Any] = {"n": work.n}
    clients = work.clients
    limit = asyncio.Semaphore(int(os.environ.get("BENCH_CONNECT_CONCURRENCY", CONNECT_CONCURRENCY)))
    readers: list[asyncio.Task[None]] = []
    rss_before = proc_status(daphne_pid)["VmRSS"]

    # Connect everyone and wait for each first position.
    started = time.monotonic()
    await asyncio.gather(*(_open(client, port, limit, readers) for client in clients))
    await asyncio.wait_for(
        asyncio.gather(*(client.first_position.wait() for client in clients)), timeout=120 + work.n / 20
    )
    result["connect_seconds"] = time.monotonic() - started
    live = [client for client in clients if client.error is None and client.positions]
    result["connected"] = len(live)
    result["connect_errors"] = sorted({client.error for client in clients if client.error})[:3]
    result["positions_ok"] = all(client.initial == client.rank for client in live)
    result["server_errors_connect"] = log.new_errors()
    result["rss_connected_kb"] = proc_status(daphne_pid)["VmRSS"]
    result["rss_per_client_kb"] = (result["rss_connected_kb"] - rss_before) / max(1, len(live))
    by_rank = {client.rank: client for client in clients}

    # A. Dequeues at a steady rate.
    await asyncio.sleep(1.0)
    commits: list[float] = []
    broadcast_seconds: list[float] = []
    wrong_head = 0
    cpu_daphne, cpu_self, phase_started = proc_cpu_seconds(daphne_pid), self_cpu_seconds(), time.monotonic()
    for k in range(1, dequeues + 1):
        await asyncio.sleep(max(0.0, phase_started + (k - 1) / rate - time.monotonic()))
        committed, returned, entry_id = await asyncio.to_thread(dispatcher.dequeue, work.queue_id)
        if committed is None:
            raise RuntimeError("the dispatcher made no offer (no agent or no waiting entry?)")
        commits.append(committed)
        broadcast_seconds.append(returned - committed)
        if by_rank[k].entry_id != entry_id:
            wrong_head += 1

    def expected_a() -> list[tuple[Client, int, float]]:
        return [
            (client, client.initial - k, commits[k - 1])
            for client in live
            for k in range(1, dequeues + 1)
            if client.initial - k >= 1
        ]

    expectations = expected_a()
    await _settle(lambda: all(c.first_at_or_below(p, t) is not None for c, p, t in expectations), timeout=15)
    result["cpu_daphne_a_seconds"] = proc_cpu_seconds(daphne_pid) - cpu_daphne
    result["cpu_daphne_a"] = result["cpu_daphne_a_seconds"] / (time.monotonic() - phase_started)
    result["cpu_self_a"] = (self_cpu_seconds() - cpu_self) / (time.monotonic() - phase_started)
    delays, lost = [], 0
    for client, position, committed in expectations:
        received = client.first_at_or_below(position, committed)
        if received is None:
            lost += 1
        else:
            delays.append(received - committed)
    result.update(
        updates=len(expectations), delays=delays, lost=lost, wrong_head=wrong_head, broadcast=broadcast_seconds
    )
    result["server_errors_a"] = log.new_errors()

    # B. A re-sync (every consumer recounts from the database) and a dequeue 0.1 s into it.
    waiting = [client for client in live if client.initial - dequeues >= 2 and client.error is None]
    layer = get_channel_layer()
    cpu_daphne, phase_started = proc_cpu_seconds(daphne_pid), time.monotonic()
    sent = time.monotonic()
    resync = await asyncio.to_thread(_resync_event, work.queue_id)
    sent = time.monotonic()
    await layer.group_send(events.queue_group(work.queue_id), resync)
    await asyncio.sleep(0.1)
    committed, _returned, _entry = await asyncio.to_thread(dispatcher.dequeue, work.queue_id)
    assert committed is not None
    await _settle(
        lambda: all(
            any(r >= sent for r in c.resyncs) and c.first_at_or_below(c.initial - dequeues - 1, committed) is not None
            for c in waiting
        ),
        timeout=60 + work.n / 50,
    )
    resync_done = time.monotonic()
    await asyncio.sleep(1.0)  # anything still in flight lands before the positions are checked
    recounts = [t - sent for c in waiting if (t := next((r for r in c.resyncs if r >= sent), None)) is not None]
    during = [t - committed for c in waiting if (t := c.first_at_or_below(c.initial - dequeues - 1, committed))]
    result.update(
        resync=recounts,
        resync_missing=len(waiting) - len(recounts),
        during=during,
        during_missing=len(waiting) - len(during),
        drift=Counter(c.positions[-1][1] - (c.initial - dequeues - 1) for c in waiting if c.positions),
        cpu_daphne_b=(proc_cpu_seconds(daphne_pid) - cpu_daphne) / max(0.001, resync_done - phase_started),
    )
    result["server_errors_b"] = log.new_errors()
    result["rss_peak_kb"] = proc_status(daphne_pid)["VmHWM"]
    result["rss_end_kb"] = proc_status(daphne_pid)["VmRSS"]
    result["errors_after"] = sorted({client.error for client in live if client.error})[:3]
    result["unexpected"] = sum(len(client.other) for client in live)
    result["snapshots_asked"] = sum(client.snapshots_asked for client in live)

    # Close every client; Daphne then runs the disconnect handler of each.
    for client in clients:
        client.closing = True

    async def close(client: Client) -> None:
        async with limit:
            if client.ws is not None:
                await client.ws.close()

    await asyncio.gather(*(close(client) for client in clients), return_exceptions=True)
    await asyncio.gather(*readers, return_exceptions=True)
    return result


def _resync_event(queue_id: int) -> dict[str, Any]:
    """The dispatcher's periodic resync for one queue, as run_dispatcher builds it."""
    from django.db import connection

    from apps.queueing import events
    from apps.queueing.models import ServiceQueue
    from apps.queueing.selectors import queue_resync_message

    try:
        message = queue_resync_message(queue=ServiceQueue.objects.get(pk=queue_id))
    finally:
        connection.close()
    return events.queue_message(message, event_type=events.QUEUE_RESYNC)


def wait_for_disconnects(queue_id: int, expected: int, timeout: float) -> tuple[int, float]:
    """Disconnects Daphne recorded (each one an audit record) and the seconds it took; stops when none come for 5 s."""
    from apps.queueing.models import QueueEntry

    started = last_progress = time.monotonic()
    done = -1
    while time.monotonic() - started < timeout:
        count = QueueEntry.objects.filter(queue_id=queue_id, disconnected_at__isnull=False).count()
        if count != done:
            done, last_progress = count, time.monotonic()
        if done >= expected or time.monotonic() - last_progress > 5:
            break
        time.sleep(0.25)
    return done, last_progress - started


# --- Report ------------------------------------------------------------------------


def report(result: dict[str, Any]) -> tuple[bool, float, float, int]:
    n = result["n"]
    delays = result["delays"]
    p99 = percentile(delays, 0.99)
    print(
        f"N={n}: {result['connected']}/{n} connected in {result['connect_seconds']:.1f} s "
        f"({result['connected'] / result['connect_seconds']:.0f}/s); initial positions "
        f"{'all right' if result['positions_ok'] else 'NOT all right'}; Daphne RSS {result['rss_connected_kb'] / 1024:.0f} MB "
        f"({result['rss_per_client_kb']:.0f} kB per client)"
    )
    if result["connect_errors"]:
        print(f"  connection errors: {result['connect_errors']}")
    if result["server_errors_connect"]:
        print(f"  Daphne errors while connecting: {summarize(result['server_errors_connect'])}")
    print(
        f"  A. {len(result['broadcast'])} dequeues → {result['updates']} position updates: delivery p50 {ms(percentile(delays, 0.5))}, "
        f"p99 {ms(p99)}, max {ms(max(delays) if delays else float('nan'))}; lost {result['lost']}; "
        f"broadcast after commit p50 {ms(percentile(result['broadcast'], 0.5))}; "
        f"Daphne CPU {result['cpu_daphne_a'] * 100:.0f} % ({result['cpu_daphne_a_seconds'] / max(1, result['updates']) * 1e6:.0f} µs per update), "
        f"clients' CPU {result['cpu_self_a'] * 100:.0f} % of a core"
    )
    if result["wrong_head"]:
        print(f"  {result['wrong_head']} dequeues did not take the customer at position 1")
    if result["server_errors_a"]:
        print(f"  Daphne errors during the dequeues: {summarize(result['server_errors_a'])}")
    resync, during = result["resync"], result["during"]
    print(
        f"  B. re-sync of {len(resync) + result['resync_missing']} clients: recount received p50 {ms(percentile(resync, 0.5))}, "
        f"p99 {ms(percentile(resync, 0.99))}, max {ms(max(resync) if resync else float('nan'))} "
        f"(missing {result['resync_missing']}); a dequeue 0.1 s in: p99 {ms(percentile(during, 0.99))}, "
        f"max {ms(max(during) if during else float('nan'))} (missing {result['during_missing']}); "
        f"Daphne CPU {result['cpu_daphne_b'] * 100:.0f} %"
    )
    drift = result["drift"]
    wrong = sum(count for offset, count in drift.items() if offset != 0)
    detail = ", ".join(f"{count} off by {offset:+d}" for offset, count in sorted(drift.items()) if offset != 0)
    print(
        f"     positions shown once everything arrived: {wrong} of {sum(drift.values())} wrong"
        + (f" ({detail})" if detail else "")
    )
    if result["lost"]:
        print("     (phase A updates were still arriving: the phase B figures above are not meaningful for this N)")
    if result["server_errors_b"]:
        print(f"  Daphne errors during the re-sync: {summarize(result['server_errors_b'])}")
    print(
        f"  Daphne RSS at the end {result['rss_end_kb'] / 1024:.0f} MB, peak so far {result['rss_peak_kb'] / 1024:.0f} MB"
    )
    print(f"  snapshots the pages asked for (a version gap outlived 1 s): {result['snapshots_asked']}")
    if result["errors_after"] or result["unexpected"]:
        print(f"  errors: {result['errors_after']}; unexpected messages: {result['unexpected']}")
    held = (
        result["connected"] == n
        and not result["lost"]
        and not result["errors_after"]
        and not result["server_errors_connect"]
        and not result["server_errors_a"]
        and result["positions_ok"]
        and p99 <= TARGET_P99_SECONDS
    )
    return held, p99, percentile(resync, 0.99), wrong


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,1000,2000", help="N to try first; then doubling while it holds")
    parser.add_argument("--max-n", type=int, default=16_000)
    parser.add_argument("--dequeues", type=int, default=20)
    parser.add_argument("--rate", type=float, default=2.0, help="dequeues per second in phase A")
    parser.add_argument("--budget", type=float, default=540.0, help="seconds; no new N is started past it")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-db", action="store_true", help=f"do not drop {DB_NAME} at the end")
    parser.add_argument(
        "--layer",
        choices=["core", "pubsub"],
        default="",
        help="channels_redis layer for Daphne and the bench (REMOTEBANK_CHANNEL_LAYER); default: as configured",
    )
    parser.add_argument(
        "--redis-url-options",
        default="",
        help="query string added to REDIS_URL for Daphne and the bench, e.g. "
        "'socket_timeout=10&max_connections=1000' (redis-py pool options); default: the app as configured",
    )
    parser.add_argument(
        "--db-pool",
        type=int,
        default=20,
        help="REMOTEBANK_DB_POOL_SIZE for Daphne, as scripts/run.sh sets it (0: a new connection per database trip)",
    )
    parser.add_argument(
        "--experiment",
        choices=["", "no-close-hop"],
        default="",
        help="no-close-hop: VisitConsumer.queue_changed without channels' per-message sync-thread hop (a what-if)",
    )
    arguments = parser.parse_args()

    bench_started = time.monotonic()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    var_dir = Path(tempfile.mkdtemp(prefix="remotebank-wsbench-"))
    os.environ.update(bench_environment(var_dir, arguments.redis_url_options))
    if arguments.layer:
        os.environ["REMOTEBANK_CHANNEL_LAYER"] = arguments.layer
    os.environ["DATABASE_URL"] = recreate_database(DB_NAME)
    flush_redis_bench_db()
    daphne: subprocess.Popen[bytes] | None = None
    dispatcher: Dispatcher | None = None
    log_path = var_dir / "daphne.log"
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection

        print(
            f"queue WebSocket bench — {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.2f}; open files {hard}"
        )
        print(speed_line())
        call_command("migrate", verbosity=0)
        customers = make_customers(200)
        connection.close()
        port = free_port()
        daphne = start_daphne(port, log_path, experiment=arguments.experiment, db_pool=arguments.db_pool)
        dispatcher = Dispatcher()
        log = DaphneLog(log_path)
        log.new_errors()
        print(
            f"Daphne pid {daphne.pid} on 127.0.0.1:{port}, RSS at start {proc_status(daphne.pid)['VmRSS'] / 1024:.0f} MB"
        )
        print(
            f"per N: {arguments.dequeues} dequeues at {arguments.rate:g}/s (phase A), then one queue.resync "
            f"and one dequeue (phase B); REDIS_URL {os.environ['REDIS_URL']}; channel layer "
            f"{settings.CHANNEL_LAYER_KIND}; Daphne's database pool {arguments.db_pool}; "
            f"Daphne's GC thresholds {settings.GC_THRESHOLDS or 'Python defaults'}"
        )
        if arguments.experiment:
            print(f"EXPERIMENT {arguments.experiment}: not the application as configured")
        rng = random.Random(arguments.seed)
        sizes = [int(part) for part in arguments.sizes.split(",") if part.strip()]
        largest_held = 0
        verdicts: list[tuple[int, bool, float]] = []
        teardown_errors: dict[int, int] = {}
        resync_verdicts: list[tuple[int, float, int]] = []
        agents_start = 0
        last_round_seconds, last_n = 0.0, 0
        stop_reason = ""
        while True:
            n = sizes.pop(0) if sizes else (last_n * 2)
            if n > arguments.max_n:
                stop_reason = f"--max-n {arguments.max_n} reached"
                break
            if n + FD_MARGIN > hard:
                stop_reason = f"N={n} would not fit the open-file limit ({hard})"
                break
            elapsed = time.monotonic() - bench_started
            if last_n and elapsed + last_round_seconds * n / last_n > arguments.budget:
                stop_reason = f"N={n} would pass the {arguments.budget:.0f} s budget"
                break
            round_started = time.monotonic()
            agents = arguments.dequeues + 5
            work = prepare_round(n, agents_start=agents_start, agents=agents, customers=customers, rng=rng)
            agents_start += agents
            connection.close()
            result = asyncio.run(
                run_round(
                    work,
                    port=port,
                    daphne_pid=daphne.pid,
                    dispatcher=dispatcher,
                    dequeues=arguments.dequeues,
                    rate=arguments.rate,
                    log=log,
                )
            )
            held, p99, resync_p99, wrong = report(result)
            recorded, seconds = wait_for_disconnects(work.queue_id, result["connected"], timeout=60 + n / 20)
            errors = log.new_errors()
            print(
                f"  disconnects: Daphne recorded {recorded} of {result['connected']} in {seconds:.1f} s"
                + (f"; Daphne errors: {summarize(errors)}" if errors else "")
                + f"; round took {time.monotonic() - round_started:.0f} s"
            )
            teardown_errors[n] = result["connected"] - recorded
            if daphne.poll() is not None:
                print(f"Daphne exited with {daphne.returncode}")
                held = False
            verdicts.append((n, held, p99))
            resync_verdicts.append((n, resync_p99, wrong))
            last_round_seconds, last_n = time.monotonic() - round_started, n
            if not held:
                stop_reason = f"N={n} missed (p99 > 1 s or errors)"
                break
            largest_held = n
        print()
        print(speed_line())
        print(
            f"stopped: {stop_reason}; bench took {time.monotonic() - bench_started:.0f} s; "
            f"load average now {os.getloadavg()[0]:.2f}"
        )
        for n, held, p99 in verdicts:
            print(f"  {'PASS' if held else 'MISS'}  N={n}: position updates p99 {ms(p99)} ≤ 1 s, no delivery errors")
        for n, resync_p99, wrong in resync_verdicts:
            print(
                f"  {'PASS' if resync_p99 <= TARGET_P99_SECONDS else 'MISS'}  N={n}: re-sync recount p99 {ms(resync_p99)} ≤ 1 s"
                " (updates to a client wait behind its recount)"
            )
            if wrong:
                print(f"  MISS  N={n}: {wrong} clients show a wrong position after a re-sync with a dequeue in it")
        for n, count in teardown_errors.items():
            if count:
                print(f"  MISS  N={n}: {count} disconnects lost or failed in Daphne (entry never marked disconnected)")
        print(f"largest N held by one Daphne process with p99 ≤ 1 s: {largest_held or 'none'}")
        return 0 if largest_held else 1
    finally:
        if dispatcher is not None:
            dispatcher.stop()
        stop_process(daphne)
        if daphne is not None and daphne.returncode not in (0, -15, None):
            print(f"Daphne log (last lines):\n{log_path.read_text(errors='replace')[-2000:]}")
        from django.db import connections

        connections.close_all()
        if not arguments.keep_db:
            drop_database(DB_NAME)
        flush_redis_bench_db()
        if os.environ.get("BENCH_KEEP_LOG"):
            print(f"kept {var_dir}")
        else:
            shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
