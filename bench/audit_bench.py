"""Benchmark of the audit trail on PostgreSQL: audited writes/s and how far the chain lags behind.

Usage: .venv/bin/python bench/audit_bench.py [--writers 4] [--duration 15] [--modes sequencer,inline] [--keep-db]

Builds a fresh database ``remotebank_audit_bench`` (dropped, created,
migrated), then for each mode runs ``--writers`` writer processes for
``--duration`` seconds, each committing transactions of one
``apps.audit.services.audit_record`` call (the real service) as fast as it can:

- ``sequencer``: records are queued; one ``manage.py run_audit_sequencer``
  process (default settings: 100 ms poll, batches of up to 5,000, a signed
  checkpoint every 10 s here) chains them. Every 50 ms the bench lists the
  queue: the chain's lag is the time from a record's first sight there
  (committed) to its leaving it (chained), 50 ms resolution; it also prints
  the age of the oldest pending record since its write, which adds the
  writer's own insert-to-commit time (long on a loaded machine). Then it waits
  for the queue to drain and verifies the whole chain and its checkpoint.
- ``inline``: the old way, every write chained under the global advisory lock,
  for comparison.

Prints writes/s, the lag (p99 and max), CPU-seconds per 1,000 writes of the
writers and of the sequencer, the load average, and PASS/MISS against issue
#18's target: >= 2,000 audited writes/s sustained with the chain <= 1 s behind.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# bench/machine.py, also when this file is loaded by path (tests/bench).
sys.path.insert(0, str(ROOT / "bench"))

from machine import speed_line  # noqa: E402 (after the path set-up)

PG_SERVER = "postgres://postgres@127.0.0.1:5432"
DB_NAME = "remotebank_audit_bench"
TARGET_WRITES_PER_SECOND = 2000.0
TARGET_LAG_SECONDS = 1.0
RUN_MODES_DONE: list[str] = []


def recreate_database(name: str) -> str:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER}/{name}"


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def writer(number: int, mode: str, duration: float, ready: Any, results: Any) -> None:
    os.environ["REMOTEBANK_AUDIT_CHAIN_MODE"] = mode
    import django

    django.setup()
    from django.db import transaction

    from apps.audit.actions import AuditAction
    from apps.audit.services import Actor, audit_record

    actor = Actor.system(f"bench-writer-{number}")
    with transaction.atomic():  # connect and warm up before the clock starts
        audit_record(actor=actor, action=AuditAction.BRANCH_UPDATED, data={"warm-up": number})
    ready.wait()  # every writer starts together
    stop_at = time.time() + duration
    count = 0
    cpu_before = time.process_time()
    while time.time() < stop_at:
        with transaction.atomic():
            audit_record(actor=actor, action=AuditAction.BRANCH_UPDATED, data={"n": count, "writer": number})
        count += 1
    results.put((count, time.process_time() - cpu_before))


def _process_cpu(pid: int) -> float:
    """CPU-seconds (user + system) a running process has used so far (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_mode(mode: str, *, writers: int, duration: float) -> dict[str, Any]:
    from django.db import connection

    from apps.audit.models import AuditRecord, PendingAuditRecord

    sequencer = None
    if mode == "sequencer":
        sequencer = subprocess.Popen(
            [sys.executable, "manage.py", "run_audit_sequencer", "--checkpoint-seconds", "10"],
            cwd=ROOT,
            env=os.environ | {"REMOTEBANK_AUDIT_CHAIN_MODE": "sequencer"},
            stdout=subprocess.DEVNULL,
        )
        time.sleep(2.0)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    ready = context.Barrier(writers + 1)
    processes = [context.Process(target=writer, args=(n, mode, duration, ready, results)) for n in range(writers)]
    for process in processes:
        process.start()
    warmed = time.monotonic() + 300
    # Every writer connected and its warm-up record chained before the clock starts.
    while AuditRecord.objects.filter(data__has_key="warm-up").count() < writers * (1 + len(RUN_MODES_DONE)):
        assert time.monotonic() < warmed, "the writers did not start"
        time.sleep(0.05)
    before = AuditRecord.objects.count()
    sequencer_cpu_before = _process_cpu(sequencer.pid) if sequencer is not None else 0.0
    ready.wait(timeout=60)
    RUN_MODES_DONE.append(mode)
    start_at = time.time()
    stop_at = start_at + duration
    lags: list[float] = []  # age of the oldest pending record, from its write (includes the writer's commit delay)
    chain_lags: list[float] = []  # from a record's first sight in the queue (committed) to its leaving (chained)
    first_seen: dict[int, float] = {}
    with connection.cursor() as cursor:
        while time.time() < stop_at + 0.5 or first_seen:
            now = time.time()
            cursor.execute(
                "SELECT id, extract(epoch FROM clock_timestamp() - created_at) FROM audit_pendingauditrecord"
            )
            rows = cursor.fetchall()
            if now < stop_at + 0.5:
                lags.append(max((float(age) for _id, age in rows), default=0.0))
            seen = {int(row[0]) for row in rows}
            for gone in set(first_seen) - seen:
                chain_lags.append(now - first_seen.pop(gone))
            for new in seen - set(first_seen):
                first_seen[new] = now
            if now > stop_at + 60:
                break
            time.sleep(0.05)
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    drain_started = time.monotonic()
    while PendingAuditRecord.objects.exists():
        time.sleep(0.05)
    drain = time.monotonic() - drain_started
    sequencer_cpu = 0.0
    if sequencer is not None:
        sequencer_cpu = _process_cpu(sequencer.pid) - sequencer_cpu_before
        sequencer.terminate()
        sequencer.wait(timeout=30)
    writes = sum(count for count, _cpu in outcomes)
    writer_cpu = sum(cpu for _count, cpu in outcomes)
    assert AuditRecord.objects.count() - before == writes, "a write was lost"
    lags.sort()
    chain_lags.sort()
    return {
        "chain_p99": chain_lags[max(int(len(chain_lags) * 0.99) - 1, 0)] if chain_lags else 0.0,
        "chain_max": chain_lags[-1] if chain_lags else 0.0,
        "mode": mode,
        "writes": writes,
        "per_second": writes / duration,
        "lag_p99": lags[int(len(lags) * 0.99) - 1] if lags else 0.0,
        "lag_max": lags[-1] if lags else 0.0,
        "lag_median": statistics.median(lags) if lags else 0.0,
        "drain": drain,
        "writer_cpu_per_1000": writer_cpu / writes * 1000 if writes else 0.0,
        "sequencer_cpu_per_1000": sequencer_cpu / writes * 1000 if writes else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--modes", default="sequencer,inline")
    parser.add_argument("--keep-db", action="store_true")
    options = parser.parse_args()

    os.environ["DATABASE_URL"] = recreate_database(DB_NAME)
    os.environ["DJANGO_SETTINGS_MODULE"] = "remotebank.settings.test"
    os.environ["REMOTEBANK_DB_CONN_MAX_AGE"] = "600"
    os.environ["REMOTEBANK_AUDIT_CHECKPOINT_DIR"] = tempfile.mkdtemp(prefix="audit-bench-checkpoints-")
    os.environ.pop("REMOTEBANK_DATABASE_SET_ROLE", None)
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from apps.audit.selectors import audit_chain_verify

    print(f"audit bench: {options.writers} writer processes x {options.duration:.0f} s per mode, PostgreSQL, 2 cores")
    print(f"load average before: {tuple(round(value, 2) for value in os.getloadavg())}")
    print(speed_line())
    figures = []
    try:
        for mode in options.modes.split(","):
            result = run_mode(mode, writers=options.writers, duration=options.duration)
            figures.append(result)
            print(
                f"  {mode:9s}: {result['writes']:7d} writes, {result['per_second']:7.0f} writes/s; "
                f"committed->chained p99 {result['chain_p99']:.3f} s, max {result['chain_max']:.3f} s; "
                f"oldest pending since its write: median {result['lag_median']:.3f} s, p99 {result['lag_p99']:.3f} s, "
                f"max {result['lag_max']:.3f} s; drained {result['drain']:.2f} s after the writers stopped; "
                f"CPU-s per 1,000 writes: writers {result['writer_cpu_per_1000']:.3f}, "
                f"sequencer {result['sequencer_cpu_per_1000']:.3f}; "
                f"load {tuple(round(value, 2) for value in os.getloadavg())}"
            )
        report = audit_chain_verify()
        print(
            f"  audit_verify: {'intact' if report.intact else 'BROKEN'}, {report.records_checked} records "
            f"(against the newest signed checkpoint)" + ("" if report.intact else f": {report.first_break}")
        )
    finally:
        from django.db import connections

        connections.close_all()
        if not options.keep_db:
            drop_database(DB_NAME)
    sequenced = next((result for result in figures if result["mode"] == "sequencer"), None)
    if sequenced is None:
        return 0
    per_write = (sequenced["writer_cpu_per_1000"] + sequenced["sequencer_cpu_per_1000"]) / 1000
    if per_write:
        print(
            f"  CPU bound of this machine's 2 cores for the Python side alone (writers + sequencer, PostgreSQL "
            f"not counted): {2 / per_write:.0f} audited writes/s"
        )
    passed = (
        sequenced["per_second"] >= TARGET_WRITES_PER_SECOND
        and sequenced["chain_max"] <= TARGET_LAG_SECONDS
        and report.intact
    )
    print(speed_line())
    print(
        f"target >= {TARGET_WRITES_PER_SECOND:.0f} audited writes/s with the chain <= {TARGET_LAG_SECONDS:.0f} s "
        f"behind: {'PASS' if passed else 'MISS'} ({sequenced['per_second']:.0f}/s, committed->chained max "
        f"{sequenced['chain_max']:.3f} s); load average after: {tuple(round(v, 2) for v in os.getloadavg())}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
