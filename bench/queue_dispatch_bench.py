"""Benchmark of the queue dispatcher on PostgreSQL: decisions/s and p99 decision latency.

Usage: .venv/bin/python bench/queue_dispatch_bench.py [--waiting 10000] [--agents 1000]
       [--offers 1000] [--duration 15] [--procs 2,4] [--no-redis] [--keep-db]

Builds a fresh database ``remotebank_bench`` (dropped and created, then
migrated), fills it with 4 queues, 1,000 available agents (user, staff profile,
skills, presence with idle times spread) and 10,000 waiting entries (each with
its own queue-ready visit; customers shared), then measures
``apps.queueing.services.offers.dispatch_queue`` — the real service, with its row
locks, audit record and channel-layer broadcasts:

(a) one dispatcher: latency of each decision (an offer made) over ``--offers``;
(b) 2 and 4 dispatcher processes (spawned) for ``--duration`` seconds each:
    total decisions/s, p99, then a check that no agent holds two live entries
    and no entry was offered to two agents;
(c) where the time goes: SQL statements of a decision, time waiting for and
    holding the audit chain's advisory lock, and cProfile over 200 decisions.

The pool of agents is kept topped up while the dispatchers run: every 0.2 s the
bench marks offered entries served and their agents available again (one SQL
statement, as if the agents had taken the calls), and between phases every
entry is put back to waiting. Channel-layer events go to Redis db 14 (the
production layer) unless ``--no-redis``. Redis db 14 is flushed and the
database dropped at the end (``--keep-db`` keeps the database).

Targets: p99 decision latency < 50 ms with one dispatcher; > 100 decisions/s.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import multiprocessing
import os
import pstats
import random
import statistics
import sys
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Run as a script from anywhere: make the repository importable.
sys.path.insert(0, str(ROOT))
# bench/machine.py, also when this file is loaded by path (tests/bench).
sys.path.insert(0, str(ROOT / "bench"))

from machine import speed_line  # noqa: E402 (after the path set-up)

PG_SERVER = "postgres://postgres@127.0.0.1:5432"
# Overridable: several engineers may run benches on one machine at once.
DB_NAME = os.environ.get("BENCH_DB_NAME", "remotebank_bench")
REDIS_BENCH_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")

TARGET_P99_SECONDS = 0.050
TARGET_DECISIONS_PER_SECOND = 100.0
# Issue 18, batched dispatch: assignments per second and p99 of one batch (one transaction).
TARGET_ASSIGNMENTS_PER_SECOND = 500.0
TARGET_BATCH_P99_SECONDS = 0.020

# Queues of the bench: code, businesses, agent strategy.
QUEUES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("personal-a", ("activation", "password_reset"), "longest_idle"),
    ("personal-b", ("lost_report_release", "info_maintenance"), "fewest_services"),
    ("corporate", ("corporate_intent",), "highest_proficiency"),
    ("mixed", ("password_reset", "info_maintenance"), "longest_idle"),
)
BUSINESS_CODES = ("activation", "password_reset", "lost_report_release", "info_maintenance", "corporate_intent")


# --- Helpers shared with queue_websocket_bench.py ------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 1,000 values is the 990th)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def recreate_database(name: str) -> str:
    """Drop and create database ``name`` on the bench server; returns its URL."""
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER}/{name}"


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flush_redis_bench_db() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_BENCH_URL)
    client.flushdb()
    client.close()


def make_branch() -> Any:
    from apps.customers.models import Branch

    return Branch.objects.get_or_create(code="BENCH", defaults={"name": "Bench branch", "city": "Shanghai"})[0]


def make_customers(count: int, *, start: int = 0) -> list[Any]:
    """Customers with encrypted numbers and their blind indexes (``save`` is bypassed by bulk_create)."""
    from apps.common.crypto import id_number_index, mobile_index
    from apps.customers.models import Customer, CustomerLevel

    branch = make_branch()
    levels = [CustomerLevel.ORDINARY] * 6 + [CustomerLevel.GOLD] * 2 + [CustomerLevel.PLATINUM, CustomerLevel.PRIVATE]
    rows = []
    for i in range(start, start + count):
        id_number = f"110101199001{i:06d}"
        mobile = f"139{i:08d}"
        rows.append(
            Customer(
                customer_number=f"B{i:09d}",
                name=f"客户{i}",
                id_number=id_number,
                id_number_index=id_number_index(id_number),
                mobile=mobile,
                mobile_index=mobile_index(mobile),
                level=levels[i % len(levels)],
                home_branch=branch,
            )
        )
    return Customer.objects.bulk_create(rows, batch_size=1000)


def make_waiting_entries(
    queue: Any, customers: list[Any], count: int, *, rng: random.Random, spread_seconds: float = 1800.0
) -> list[Any]:
    """``count`` waiting entries of ``queue``, each with its own queue-ready visit."""
    from django.utils import timezone

    from apps.queueing.models import EntryState, QueueEntry
    from apps.verification.models import Verification, VerificationState
    from apps.visits.models import Visit

    now = timezone.now()
    visits = []
    for i in range(count):
        customer = customers[i % len(customers)]
        visits.append(
            Visit(
                business_code=queue.businesses[i % len(queue.businesses)],
                mobile=customer.mobile,
                customer=customer,
            )
        )
    visits = Visit.objects.bulk_create(visits, batch_size=1000)
    Verification.objects.bulk_create(
        [Verification(visit=visit, state=VerificationState.QUEUE_READY) for visit in visits], batch_size=1000
    )
    entries = []
    first_ticket = (QueueEntry.objects.order_by("-ticket").values_list("ticket", flat=True).first() or 0) + 1
    for ticket, visit in enumerate(visits, start=first_ticket):
        enqueued = now - timedelta(seconds=rng.uniform(0, spread_seconds))
        level = visit.customer.level
        entries.append(
            QueueEntry(
                visit=visit,
                queue=queue,
                business_code=visit.business_code,
                level=level,
                state=EntryState.WAITING,
                enqueued_at=enqueued,
                priority_key=enqueued.timestamp() - queue.bonus_seconds(level=level, business_code=visit.business_code),
                ticket=ticket,
            )
        )
    created = QueueEntry.objects.bulk_create(entries, batch_size=1000)
    recount_waiting()
    return created


def recount_waiting() -> None:
    """Each queue's ``waiting_count`` from its rows: the bench writes entries directly, not through the services."""
    from django.db import connection

    from apps.queueing.models import QueueEntry, ServiceQueue

    queues, entries = ServiceQueue._meta.db_table, QueueEntry._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {queues} SET waiting_count = "
            f"(SELECT count(*) FROM {entries} e WHERE e.queue_id = {queues}.id AND e.state = 'waiting')"
        )


def make_agents(count: int, *, start: int, rng: random.Random, businesses: tuple[str, ...] = BUSINESS_CODES) -> None:
    """``count`` available agents: user, staff profile, 1–2 skills, presence with idle times spread."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from apps.queueing.models import AgentPresence, AgentState
    from apps.staff.models import AgentSkill, StaffProfile
    from apps.staff.roles import Role

    user_model = get_user_model()
    branch = make_branch()
    now = timezone.now()
    users = user_model.objects.bulk_create(
        [user_model(username=f"bench-agent-{i}", password="!", is_staff=True) for i in range(start, start + count)],
        batch_size=1000,
    )
    staff = StaffProfile.objects.bulk_create(
        [
            StaffProfile(
                user=user,
                employee_number=f"BA{start + n:06d}",
                display_name=f"坐席{start + n}",
                role=Role.AGENT,
                branch=branch,
            )
            for n, user in enumerate(users)
        ],
        batch_size=1000,
    )
    skills = []
    for n, member in enumerate(staff):
        # Everyone has the first business of a rotating pair, half also the next one.
        first = businesses[n % len(businesses)]
        codes = {first}
        if n % 2 == 0 and len(businesses) > 1:
            codes.add(businesses[(n + 1) % len(businesses)])
        skills += [AgentSkill(staff=member, business_code=code, proficiency=rng.randint(1, 5)) for code in codes]
    AgentSkill.objects.bulk_create(skills, batch_size=1000)
    AgentPresence.objects.bulk_create(
        [
            AgentPresence(
                staff=member,
                state=AgentState.AVAILABLE,
                state_since=now,
                idle_since=now - timedelta(seconds=rng.uniform(0, 3600)),
                services_date=now.date(),
                services_today=rng.randint(0, 12),
            )
            for member in staff
        ],
        batch_size=1000,
    )


# --- Fixtures of this bench --------------------------------------------------------


def build_fixtures(*, waiting: int, agents: int, seed: int) -> list[int]:
    from apps.queueing.models import ServiceQueue

    rng = random.Random(seed)
    queues = [
        ServiceQueue.objects.create(code=code, name=code, businesses=list(businesses), agent_strategy=strategy)
        for code, businesses, strategy in QUEUES
    ]
    customers = make_customers(max(1, waiting // 20))
    per_queue, extra = divmod(waiting, len(queues))
    for index, queue in enumerate(queues):
        make_waiting_entries(queue, customers, per_queue + (1 if index < extra else 0), rng=rng)
    make_agents(agents, start=0, rng=rng)
    return [queue.pk for queue in queues]


def reset_state() -> None:
    """Every entry back to waiting and every agent available, as at the start of a phase."""
    from django.db import connection

    from apps.queueing.models import AgentPresence, QueueEntry

    entry_table, presence_table = QueueEntry._meta.db_table, AgentPresence._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {entry_table} SET state = 'waiting', agent_id = NULL, offer_expires_at = NULL, "
            "offers_made = 0, answered_at = NULL, ended_at = NULL, end_reason = '' WHERE state <> 'waiting'"
        )
        cursor.execute(
            f"UPDATE {presence_table} SET state = 'available', state_since = now() WHERE state <> 'available'"
        )
    recount_waiting()
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {entry_table}")
        cursor.execute(f"VACUUM ANALYZE {presence_table}")


def recycle_agents() -> int:
    """Agents who were offered a customer "take the call": entry served, agent available again."""
    from django.db import connection, transaction

    from apps.queueing.models import AgentPresence, QueueEntry

    entry_table, presence_table = QueueEntry._meta.db_table, AgentPresence._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH taken AS (
                SELECT id, agent_id FROM {entry_table} WHERE state = 'offered' FOR UPDATE SKIP LOCKED
            ), served AS (
                UPDATE {entry_table} AS e SET state = 'served', answered_at = now(), ended_at = now(),
                       end_reason = 'answered', offer_expires_at = NULL
                FROM taken WHERE e.id = taken.id RETURNING taken.agent_id
            )
            UPDATE {presence_table} AS a SET state = 'available', state_since = now(), idle_since = now()
            FROM served WHERE a.id = served.agent_id
            """
        )
        return cursor.rowcount


# --- Measuring ------------------------------------------------------------------------


class LockTimer:
    """Times audit_record as the dispatcher calls it, and the audit chain's advisory lock: wait and hold (to COMMIT)."""

    def __init__(self) -> None:
        self.audits: list[float] = []
        self.waits: list[float] = []
        self.holds: list[float] = []
        # perf_counter() right after the last COMMIT of a transaction that took the lock.
        self.last_commit: float | None = None

    def install(self) -> None:
        from django.db import transaction

        import apps.audit.services as audit_services

        original = audit_services._lock_chain_head

        def timed_lock() -> None:
            started = time.perf_counter()
            original()
            acquired = time.perf_counter()
            self.waits.append(acquired - started)
            # Registered before the dispatcher's own broadcasts, so it runs right after COMMIT.
            transaction.on_commit(lambda: self._committed(acquired))

        audit_services._lock_chain_head = timed_lock

        import apps.queueing.services.offers as queueing_offers

        original_record = queueing_offers.audit_record

        def timed_record(**kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original_record(**kwargs)
            finally:
                self.audits.append(time.perf_counter() - started)

        queueing_offers.audit_record = timed_record  # type: ignore[assignment]

    def _committed(self, acquired: float) -> None:
        self.last_commit = time.perf_counter()
        self.holds.append(self.last_commit - acquired)

    def clear(self) -> None:
        self.audits.clear()
        self.waits.clear()
        self.holds.clear()


def run_decisions(
    queue_ids: list[int],
    *,
    offers: int,
    deadline: float | None,
    timer: LockTimer,
    recycle_every: int = 0,
    batch: int = 0,
) -> dict[str, Any]:
    """Call dispatch_queue (or dispatch_batch when ``batch``) round-robin over the queues; time each call.

    With ``batch``, ``offers`` counts batches that made at least one offer
    (each timed until it returns, COMMIT included) and ``assigned`` the offers.
    """
    from apps.queueing.services.offers import dispatch_batch, dispatch_queue

    offer_times: list[float] = []
    commit_times: list[float] = []
    empty_times: list[float] = []
    errors: list[str] = []
    index = 0
    empty_in_row = 0
    assigned = 0
    cpu_started = time.process_time()
    started = time.perf_counter()
    while len(offer_times) < offers and (deadline is None or time.monotonic() < deadline):
        queue_id = queue_ids[index % len(queue_ids)]
        index += 1
        timer.last_commit = None
        t0 = time.perf_counter()
        try:
            if batch:
                made = dispatch_batch(queue_id=queue_id, limit=batch)
                offer = made[0] if made else None
            else:
                offer = dispatch_queue(queue_id=queue_id)
                made = [offer] if offer is not None else []
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        elapsed = time.perf_counter() - t0
        assigned += len(made)
        if offer is None:
            empty_times.append(elapsed)
            empty_in_row += 1
            if recycle_every and empty_in_row >= len(queue_ids):
                recycle_agents()
                empty_in_row = 0
            elif not recycle_every and empty_in_row >= len(queue_ids):
                time.sleep(0.01)  # no agent free right now: the recycler will free some
        else:
            offer_times.append(elapsed)
            if timer.last_commit is not None:
                commit_times.append(timer.last_commit - t0)
            empty_in_row = 0
            if recycle_every and (assigned // recycle_every) != ((assigned - len(made)) // recycle_every):
                recycle_agents()
    return {
        "assigned": assigned,
        "cpu": time.process_time() - cpu_started,
        "offers": offer_times,
        "to_commit": commit_times,
        "empty": empty_times,
        "errors": errors,
        "wall": time.perf_counter() - started,
    }


def _worker(
    queue_ids: list[int], worker_index: int, ready: Any, go: Any, duration: float, results: Any, batch: int = 0
) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from apps.common.collector import gc_tune

    timer = LockTimer()
    timer.install()
    connection.ensure_connection()
    gc_tune(settings.GC_THRESHOLDS)  # as run_dispatcher does
    # Each worker starts on a different queue so that they spread like real dispatchers.
    rotated = queue_ids[worker_index % len(queue_ids) :] + queue_ids[: worker_index % len(queue_ids)]
    ready.set()
    go.wait()
    outcome = run_decisions(rotated, offers=10**9, deadline=time.monotonic() + duration, timer=timer, batch=batch)
    outcome["lock_waits"] = timer.waits
    outcome["lock_holds"] = timer.holds
    outcome["audits"] = timer.audits
    results.put(outcome)
    connection.close()


def concurrent_phase(queue_ids: list[int], *, processes: int, duration: float, batch: int = 0) -> dict[str, Any]:
    from django.db import connection

    context = multiprocessing.get_context("spawn")
    ready = [context.Event() for _ in range(processes)]
    go = context.Event()
    results = context.Queue()
    connection.close()
    workers = [
        context.Process(target=_worker, args=(queue_ids, n, ready[n], go, duration, results, batch))
        for n in range(processes)
    ]
    for worker in workers:
        worker.start()
    for event in ready:
        if not event.wait(120):
            raise RuntimeError("a dispatcher process did not start")
    go.set()
    started = time.monotonic()
    recycled = 0
    while time.monotonic() - started < duration:
        time.sleep(0.2)
        recycled += recycle_agents()
        chain_pending()  # the sequencer's work, as run_dispatcher does it beside the dispatchers
    outcomes = [results.get(timeout=120) for _ in workers]
    wall = time.monotonic() - started
    for worker in workers:
        worker.join(30)
    merged: dict[str, Any] = {
        "offers": [],
        "to_commit": [],
        "empty": [],
        "errors": [],
        "lock_waits": [],
        "lock_holds": [],
        "audits": [],
    }
    for outcome in outcomes:
        for key in merged:
            merged[key] += outcome[key]
    merged["wall"] = wall
    merged["recycled"] = recycled
    merged["assigned"] = sum(outcome["assigned"] for outcome in outcomes)
    merged["cpu"] = sum(outcome["cpu"] for outcome in outcomes)
    return merged


def invariant_check(since_sequence: int) -> list[str]:
    """Problems found: an agent with two live entries, an entry offered twice, states out of step."""
    from django.db import connection
    from django.db.models import Count

    from apps.audit.actions import AuditAction
    from apps.audit.models import AuditRecord
    from apps.queueing.models import AgentPresence, QueueEntry

    entry_table, presence_table = QueueEntry._meta.db_table, AgentPresence._meta.db_table
    problems = []
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT agent_id, count(*) FROM {entry_table} WHERE state IN ('offered', 'connected') "
            "GROUP BY agent_id HAVING count(*) > 1"
        )
        if rows := cursor.fetchall():
            problems.append(f"{len(rows)} agents hold two or more live entries")
        cursor.execute(
            f"SELECT count(*) FROM {entry_table} e JOIN {presence_table} a ON a.id = e.agent_id "
            "WHERE e.state = 'offered' AND a.state <> 'offered'"
        )
        if (count := cursor.fetchone()[0]) > 0:
            problems.append(f"{count} offered entries whose agent is not ringing")
        cursor.execute(
            f"SELECT count(*) FROM {presence_table} a WHERE a.state = 'offered' AND NOT EXISTS "
            f"(SELECT 1 FROM {entry_table} e WHERE e.agent_id = a.id AND e.state = 'offered')"
        )
        if (count := cursor.fetchone()[0]) > 0:
            problems.append(f"{count} ringing agents without an offered entry")
        cursor.execute(
            f"SELECT count(*) FROM {entry_table} WHERE state IN ('offered', 'connected') AND agent_id IS NULL"
        )
        if (count := cursor.fetchone()[0]) > 0:
            problems.append(f"{count} live entries without an agent")
    # Within a phase an entry goes waiting → offered → served once: two offer
    # records for one entry would be one customer given to two agents.
    offered_twice = (
        AuditRecord.objects.filter(sequence__gt=since_sequence, action=AuditAction.QUEUE_OFFERED)
        .values("target_id")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .count()
    )
    if offered_twice:
        problems.append(f"{offered_twice} entries offered more than once in the phase")
    return problems


def chain_pending() -> int:
    """Chain the committed pending audit records (sequencer mode; nothing to do inline)."""
    from apps.audit.services import audit_pending_integrate

    total = 0
    while chained := audit_pending_integrate():
        total += chained
    return total


def audit_head() -> int:
    from apps.audit.models import AuditRecord

    return AuditRecord.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0


def audit_offers_since(sequence: int) -> int:
    from apps.audit.actions import AuditAction
    from apps.audit.models import AuditRecord

    return AuditRecord.objects.filter(sequence__gt=sequence, action=AuditAction.QUEUE_OFFERED).count()


def sql_breakdown(queue_ids: list[int], *, decisions: int) -> list[tuple[str, float, float]]:
    """SQL statements per decision, grouped by kind: (statement, count per decision, mean ms as the client sees it)."""
    from django.db import connection

    from apps.queueing.services.offers import dispatch_queue

    grouped: dict[str, list[float]] = defaultdict(list)
    current: list[tuple[str, float]] = []

    def timed(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            current.append((" ".join(sql.split()), time.perf_counter() - started))

    made = 0
    index = 0
    with connection.execute_wrapper(timed):
        while made < decisions:
            current.clear()
            offer = dispatch_queue(queue_id=queue_ids[index % len(queue_ids)])
            index += 1
            if offer is None:
                recycle_agents()
                continue
            made += 1
            for sql, seconds in current:
                grouped[_statement_label(sql)].append(seconds)
    # BEGIN and COMMIT do not go through execute wrappers: COMMIT is timed by the profile below.
    return [(label, len(times) / decisions, statistics.mean(times) * 1000) for label, times in grouped.items()]


def _statement_label(sql: str) -> str:
    upper = sql.upper()
    table = ""
    for keyword in (" FROM ", "INSERT INTO ", "UPDATE "):
        position = upper.find(keyword)
        if position >= 0:
            table = sql[position + len(keyword) :].split(maxsplit=1)[0].strip('"')
            break
    verb = sql.split(maxsplit=1)[0].upper()
    if "pg_advisory_xact_lock" in sql:
        return "SELECT pg_advisory_xact_lock (audit chain)"
    if verb == "SELECT":
        suffix = " FOR UPDATE SKIP LOCKED" if "SKIP LOCKED" in upper else ""
        return f"SELECT {table}{suffix}"
    return f"{verb} {table}"


def profile_decisions(queue_ids: list[int], *, decisions: int) -> tuple[cProfile.Profile, float]:
    from apps.queueing.services.offers import dispatch_queue

    profiler = cProfile.Profile()
    made = 0
    index = 0
    total = 0.0
    while made < decisions:
        queue_id = queue_ids[index % len(queue_ids)]
        index += 1
        t0 = time.perf_counter()
        profiler.enable()
        offer = dispatch_queue(queue_id=queue_id)
        profiler.disable()
        if offer is None:
            recycle_agents()
            continue
        total += time.perf_counter() - t0
        made += 1
    return profiler, total


def cumulative_of(stats: pstats.Stats, *names: str, path_part: str = "") -> float:
    """Cumulative seconds of the functions called ``names`` (outermost calls only, via primitive counts)."""
    total = 0.0
    for (filename, _line, function), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if function in names and path_part in filename:
            total += ct
    return total


def print_latency(label: str, values: list[float], wall: float) -> tuple[float, float]:
    rate = len(values) / wall if wall else 0.0
    p99 = percentile(values, 0.99)
    print(
        f"{label}: {len(values)} decisions in {wall:.1f} s = {rate:.0f} decisions/s; "
        f"p50 {ms(percentile(values, 0.50))}, p95 {ms(percentile(values, 0.95))}, "
        f"p99 {ms(p99)}, max {ms(max(values) if values else math.nan)}"
    )
    return rate, p99


def print_to_commit(values: list[float]) -> None:
    print(
        f"  of which until COMMIT (the decision itself, before the broadcasts): p50 {ms(percentile(values, 0.50))}, "
        f"p99 {ms(percentile(values, 0.99))}"
    )


def print_locks(waits: list[float], holds: list[float], wall: float, audits: list[float], in_calls: float) -> None:
    if not waits:
        return
    print(
        f"  audit_record inside dispatch_queue: p50 {ms(percentile(audits, 0.5))}, p99 {ms(percentile(audits, 0.99))}; "
        f"{sum(audits) / in_calls * 100:.0f} % of the time spent in dispatch_queue (COMMIT not included)"
    )
    print(
        f"  audit chain lock: wait p50 {ms(percentile(waits, 0.5))}, p99 {ms(percentile(waits, 0.99))}; "
        f"held (until COMMIT) p50 {ms(percentile(holds, 0.5))}, p99 {ms(percentile(holds, 0.99))}; "
        f"held {sum(holds) / wall * 100:.0f} % of the wall time "
        f"(ceiling ≈ {1 / statistics.mean(holds):.0f} offers/s while every offer takes it)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=1_000)
    parser.add_argument("--offers", type=int, default=1_000, help="decisions timed with one dispatcher")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per concurrent run")
    parser.add_argument("--procs", default="2,4", help="dispatcher process counts, comma-separated")
    parser.add_argument("--profile", type=int, default=200, help="decisions under cProfile")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--batch", type=int, default=16, help="offers per dispatch_batch transaction (16: DISPATCH_BATCH_SIZE)"
    )
    parser.add_argument(
        "--audit-mode",
        choices=("sequencer", "inline"),
        default="sequencer",
        help="audit chain mode of the batched runs (d): sequencer, as deployed on PostgreSQL, or inline",
    )

    parser.add_argument("--no-redis", action="store_true", help="in-memory channel layer instead of Redis db 14")
    parser.add_argument("--keep-db", action="store_true", help=f"do not drop {DB_NAME} at the end")
    arguments = parser.parse_args()
    process_counts = [int(part) for part in arguments.procs.split(",") if part.strip()]

    bench_started = time.monotonic()
    os.environ["DATABASE_URL"] = recreate_database(DB_NAME)
    os.environ["DJANGO_SETTINGS_MODULE"] = "remotebank.settings.test"
    os.environ["REMOTEBANK_DB_CONN_MAX_AGE"] = "600"
    if arguments.no_redis:
        os.environ.pop("REDIS_URL", None)
    else:
        os.environ["REDIS_URL"] = REDIS_BENCH_URL
        flush_redis_bench_db()
    try:
        return _run(arguments, process_counts, bench_started)
    finally:
        from django.db import connections

        connections.close_all()
        if not arguments.keep_db:
            drop_database(DB_NAME)
        if not arguments.no_redis:
            flush_redis_bench_db()


def _run(arguments: argparse.Namespace, process_counts: list[int], bench_started: float) -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from apps.common.collector import gc_tune

    print(
        f"queue dispatch bench — {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(speed_line())
    t0 = time.monotonic()
    call_command("migrate", verbosity=0)
    migrate_seconds = time.monotonic() - t0
    t0 = time.monotonic()
    queue_ids = build_fixtures(waiting=arguments.waiting, agents=arguments.agents, seed=arguments.seed)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # planner statistics, as a live database has them
    reset_state()
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        pg_version = cursor.fetchone()[0].split(" on ")[0]
        cursor.execute("SHOW synchronous_commit")
        synchronous_commit = cursor.fetchone()[0]
    print(
        f"{pg_version} (synchronous_commit={synchronous_commit}); channel layer: "
        f"{settings.CHANNEL_LAYERS['default']['BACKEND'].rsplit('.', 1)[-1]}; "
        f"migrate {migrate_seconds:.1f} s; fixtures {time.monotonic() - t0:.1f} s: "
        f"{len(queue_ids)} queues, {arguments.agents} available agents, {arguments.waiting} waiting entries"
    )
    verdicts: list[tuple[str, bool, str]] = []
    # The one-process phases run here: the collector as run_dispatcher sets it up (the workers do the same).
    gc_tune(settings.GC_THRESHOLDS)

    # (a) One dispatcher.
    timer = LockTimer()
    timer.install()
    run_decisions(queue_ids, offers=50, deadline=None, timer=timer, recycle_every=100)  # warm-up
    reset_state()
    timer.clear()
    head = audit_head()
    single = run_decisions(queue_ids, offers=arguments.offers, deadline=None, timer=timer, recycle_every=100)
    print()
    print("(a) one dispatcher (recycling agents every 100 offers, outside the timed calls)")
    busy = sum(single["offers"]) + sum(single["empty"])
    single_rate, single_p99 = print_latency("  dispatch_queue", single["offers"], busy)
    print_to_commit(single["to_commit"])
    if single["empty"]:
        print(f"  + {len(single['empty'])} calls that found no match, p50 {ms(percentile(single['empty'], 0.5))}")
    print_locks(timer.waits, timer.holds, busy, timer.audits, busy)
    print(f"  errors: {len(single['errors'])}; offer records written: {audit_offers_since(head)}")
    verdicts.append(
        ("p99 decision latency, one dispatcher", single_p99 < TARGET_P99_SECONDS, f"{ms(single_p99)} < 50 ms")
    )
    verdicts.append(
        (
            "throughput, one dispatcher",
            single_rate > TARGET_DECISIONS_PER_SECOND,
            f"{single_rate:.0f} > 100 decisions/s",
        )
    )

    # (d) The batched dispatcher (issue 18): one and several processes, with
    # the audit chain mode as deployed (the sequencer: services only insert
    # pending rows; the bench's main process chains them as it runs).
    settings.AUDIT_CHAIN_MODE = arguments.audit_mode
    os.environ["REMOTEBANK_AUDIT_CHAIN_MODE"] = arguments.audit_mode  # for the spawned dispatchers
    for processes in [1, *process_counts]:
        reset_state()
        head = audit_head()
        if processes == 1:
            batch_timer = LockTimer()
            batch_timer.install()
            outcome = run_decisions(
                queue_ids,
                offers=10**9,
                deadline=time.monotonic() + arguments.duration,
                timer=batch_timer,
                recycle_every=arguments.agents // 2,
                batch=arguments.batch,
            )
        else:
            outcome = concurrent_phase(
                queue_ids, processes=processes, duration=arguments.duration, batch=arguments.batch
            )
        chain_pending()
        in_calls = sum(outcome["offers"]) + sum(outcome["empty"])
        rate = outcome["assigned"] / in_calls if processes == 1 else outcome["assigned"] / outcome["wall"]
        p99 = percentile(outcome["offers"], 0.99) if outcome["offers"] else float("inf")
        problems = invariant_check(head)
        recorded = audit_offers_since(head)
        if outcome["errors"]:
            problems.append(f"{len(outcome['errors'])} errors, first: {outcome['errors'][0]}")
        if recorded != outcome["assigned"]:
            problems.append(f"{recorded} offer records for {outcome['assigned']} offers returned")
        print()
        print(
            f"(d) batched dispatch (dispatch_batch, limit {arguments.batch}), {processes} process(es), "
            f"{arguments.duration:.0f} s, audit chain mode {arguments.audit_mode}"
        )
        print(
            f"  {outcome['assigned']} assignments in {len(outcome['offers'])} batches "
            f"({outcome['assigned'] / max(len(outcome['offers']), 1):.1f} per batch): {rate:.0f} assignments/s "
            f"({'time in calls' if processes == 1 else 'wall'}); per batch p50 {ms(percentile(outcome['offers'], 0.5))}, "
            f"p99 {ms(p99)}; dispatcher CPU {outcome['cpu']:.1f} s = "
            f"{outcome['cpu'] / max(outcome['assigned'], 1) * 1000:.2f} CPU-ms per assignment"
        )
        print(f"  invariants: {'OK' if not problems else 'FAILED: ' + '; '.join(problems)}")
        verdicts.append(
            (
                f"batched: assignments/s, {processes} process(es)",
                rate >= TARGET_ASSIGNMENTS_PER_SECOND,
                f"{rate:.0f} >= 500/s",
            )
        )
        verdicts.append(
            (f"batched: p99 per batch, {processes} process(es)", p99 < TARGET_BATCH_P99_SECONDS, f"{ms(p99)} < 20 ms")
        )
        verdicts.append((f"batched: no double assignment, {processes} process(es)", not problems, "invariant check"))

    # (b) Several dispatcher processes.
    for processes in process_counts:
        reset_state()
        head = audit_head()
        outcome = concurrent_phase(queue_ids, processes=processes, duration=arguments.duration)
        print()
        print(f"(b) {processes} dispatcher processes for {arguments.duration:.0f} s")
        rate, p99 = print_latency("  total", outcome["offers"], outcome["wall"])
        print_to_commit(outcome["to_commit"])
        print(
            f"  + {len(outcome['empty'])} calls that found no match; {outcome['recycled']} agents freed by the recycler"
        )
        in_calls = sum(outcome["offers"]) + sum(outcome["empty"])
        print_locks(outcome["lock_waits"], outcome["lock_holds"], outcome["wall"], outcome["audits"], in_calls)
        recorded = audit_offers_since(head)
        problems = invariant_check(head)
        if outcome["errors"]:
            problems.append(f"{len(outcome['errors'])} errors, first: {outcome['errors'][0]}")
        if recorded != len(outcome["offers"]):
            problems.append(f"{recorded} offer records for {len(outcome['offers'])} offers returned")
        print(f"  invariants: {'OK' if not problems else 'FAILED: ' + '; '.join(problems)}")
        verdicts.append(
            (
                f"throughput, {processes} dispatchers",
                rate > TARGET_DECISIONS_PER_SECOND,
                f"{rate:.0f} > 100 decisions/s",
            )
        )
        verdicts.append(
            (f"p99 decision latency, {processes} dispatchers", p99 < TARGET_P99_SECONDS, f"{ms(p99)} < 50 ms")
        )
        verdicts.append((f"no double assignment, {processes} dispatchers", not problems, "invariant check"))

    # (c) Where the time goes.
    reset_state()
    print()
    print("(c) where the time goes (one dispatcher)")
    print("  SQL statements per decision (mean over 100 decisions, time seen by Django):")
    for label, count, mean_ms in sorted(sql_breakdown(queue_ids, decisions=100), key=lambda row: -row[1] * row[2]):
        print(f"    {count:.0f} × {label:<55} {mean_ms:6.2f} ms")
    if arguments.profile > 0:  # --profile 0 skips the profiler
        reset_state()
        profiler, total = profile_decisions(queue_ids, decisions=arguments.profile)
        stats = pstats.Stats(profiler)
        buckets = {
            "audit_record (lock + chain head + insert)": cumulative_of(stats, "audit_record", path_part="apps/audit"),
            "COMMIT": cumulative_of(stats, "commit", path_part="psycopg"),
            "channel-layer broadcasts after commit": cumulative_of(stats, "broadcast_now", path_part="apps/queueing"),
            "entry.save() + agent.save()": cumulative_of(stats, "save", path_part="django_fsm")
            or cumulative_of(stats, "save", path_part="django/db/models/base.py"),
            "SQL execute (all statements)": cumulative_of(stats, "execute", path_part="psycopg/cursor"),
        }
        print(
            f"  cProfile over {arguments.profile} decisions: {ms(total / arguments.profile)} per decision under the profiler"
        )
        for label, seconds in buckets.items():
            print(f"    {label:<45} {seconds / total * 100:5.1f} %  ({ms(seconds / arguments.profile)} per decision)")
        print("  top functions by own time:")
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats("tottime").print_stats(12)
        for line in _stats_rows(buffer.getvalue()):
            print(f"    {line}")
        print("  top functions by cumulative time:")
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats("cumulative").print_stats(22)
        for line in _stats_rows(buffer.getvalue()):
            print(f"    {line}")

    print()
    print(speed_line())
    print(f"targets (bench took {time.monotonic() - bench_started:.0f} s; load average now {os.getloadavg()[0]:.2f}):")
    for label, passed, detail in verdicts:
        print(f"  {'PASS' if passed else 'MISS'}  {label}: {detail}")
    return 0 if all(passed for _label, passed, _detail in verdicts) else 1


def _stats_rows(text: str) -> list[str]:
    """pstats rows without the header noise, paths shortened to the repository or site-packages."""
    rows = []
    started = False
    for line in text.splitlines():
        if line.strip().startswith("ncalls"):
            started = True
            rows.append(line.strip())
            continue
        if started and line.strip():
            short = line.replace(f"{sys.prefix}/lib/python3.11/site-packages/", "").replace(f"{ROOT}/", "")
            rows.append(short.rstrip())
    return rows


if __name__ == "__main__":
    sys.exit(main())
