"""Benchmark of audit-report exports on PostgreSQL: rows/s and peak memory for 1,000,000 rows.

Usage: .venv/bin/python bench/export_bench.py [--rows 1000000] [--formats csv,xlsx]
       [--tracemalloc] [--verify-chain] [--keep-db]

Builds a fresh database ``remotebank_export_bench`` (dropped, created,
migrated), appends ``--rows`` audit records to the chain with COPY — the
same realistic content as tests/compliance/auditgen.py, with every
``previous_hash``/``record_hash`` computed by ``apps.audit.chain`` so the
chain verifies — then runs the real service ``audit_export_run`` (the body
of the Celery task) for each format, the file going to a FileSystemStorage in
a temporary directory as in production:

(a) a timed run: rows/s, and the process's RSS sampled every 20 ms (peak
    growth over the RSS just before the run);
(b) with ``--tracemalloc``, a second run under tracemalloc: peak of Python
    allocations (about twice as slow, so its time is not the throughput).

Targets: CSV >= 20,000 rows/s; XLSX >= 5,000 rows/s; peak RSS growth < 200 MB
for every format. 4–11 minutes for 1,000,000 rows without --tracemalloc (machine load).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
# Run as a script from anywhere: make the repository importable.
sys.path.insert(0, str(ROOT))

PG_SERVER = "postgres://postgres@127.0.0.1:5432"
DB_NAME = "remotebank_export_bench"

TARGET_ROWS_PER_SECOND = {"csv": 20_000, "xlsx": 5_000}
TARGET_RSS_GROWTH_BYTES = 200 * 1024 * 1024
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


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


def rss_bytes() -> int:
    with Path("/proc/self/statm").open() as handle:
        return int(handle.read().split()[1]) * PAGE_SIZE


class RssSampler:
    """Peak RSS while a block runs, sampled from /proc every 20 ms by a thread."""

    def __init__(self) -> None:
        self.baseline = rss_bytes()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def mb(value: float) -> str:
    return f"{value / (1024 * 1024):.1f} MB"


def load_rows(count: int) -> float:
    """COPY ``count`` chained audit records into the table; returns seconds."""
    from django.db import connection

    from tests.compliance.auditgen import chain_head, generate_rows

    sequence, previous = chain_head()
    columns = (
        "sequence",
        "created_at",
        "actor_kind",
        "actor_id",
        "actor_label",
        "action",
        "target_type",
        "target_id",
        "target_label",
        "data",
        "previous_hash",
        "record_hash",
    )
    started = time.perf_counter()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with connection.cursor() as cursor:
        # The append-only triggers refuse UPDATE/DELETE/TRUNCATE; COPY only inserts.
        with cursor.copy(f"COPY audit_auditrecord ({', '.join(columns)}) FROM STDIN") as copy:
            for number, fields in enumerate(
                generate_rows(
                    count, after_sequence=sequence, previous_hash=previous, start=start, step=timedelta(seconds=2)
                ),
                start=1,
            ):
                fields["data"] = json.dumps(fields["data"], ensure_ascii=False)
                copy.write_row([fields[column] for column in columns])
                if number % 200_000 == 0:
                    print(f"  loaded {number:,} rows ({time.perf_counter() - started:.0f} s)", flush=True)
        cursor.execute("ANALYZE audit_auditrecord")
    return time.perf_counter() - started


def make_officer() -> Any:
    from apps.audit.services import Actor
    from apps.customers.services import branch_upsert
    from apps.staff.roles import Role
    from apps.staff.services import staff_member_upsert

    system = Actor.system("export bench")
    branch = branch_upsert(actor=system, code="BENCH", name="基准测试支行", city="上海")
    profile = staff_member_upsert(
        actor=system,
        username="bench_compliance",
        employee_number="BENCH-C1",
        display_name="合规 基准",
        role=Role.COMPLIANCE_OFFICER,
        branch=branch,
        initial_password="bench-password-not-used",
    )
    return profile.user


def request_export(officer: Any, fmt: str, filters: dict[str, Any]) -> int:
    from apps.compliance.services import audit_export_request

    # The Celery task is not enqueued: the bench runs its body itself, timed.
    with mock.patch("apps.compliance.tasks.compliance_export_run.delay"):
        export = audit_export_request(actor=officer, filters=filters, fmt=fmt, language="zh-hans")
    return export.pk


def run_format(officer: Any, fmt: str, filters: dict[str, Any], *, with_tracemalloc: bool) -> dict[str, Any]:
    from apps.compliance.services import audit_export_run

    export_id = request_export(officer, fmt, filters)
    with RssSampler() as rss:
        started = time.perf_counter()
        export = audit_export_run(export_id=export_id)
        seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "format": fmt,
        "rows": export.rows_written,
        "seconds": seconds,
        "rows_per_second": export.rows_written / seconds,
        "rss_baseline": rss.baseline,
        "rss_peak": rss.peak,
        "rss_growth": rss.peak - rss.baseline,
        "bytes": export.size_bytes,
        "sha256": export.sha256,
    }
    if with_tracemalloc:
        second = request_export(officer, fmt, filters)
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            started = time.perf_counter()
            audit_export_run(export_id=second)
            result["tracemalloc_seconds"] = time.perf_counter() - started
            result["tracemalloc_peak"] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--formats", default="csv,xlsx")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="also a second, traced run of each format (peak Python allocations)"
    )
    parser.add_argument("--verify-chain", action="store_true", help="recompute the whole chain after loading")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = recreate_database(DB_NAME)
    os.environ["DJANGO_SETTINGS_MODULE"] = "remotebank.settings.test"
    os.environ.pop("REDIS_URL", None)
    media = tempfile.TemporaryDirectory(prefix="export-bench-")
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.test import override_settings

        print(f"Database {DB_NAME}: migrating…", flush=True)
        call_command("migrate", verbosity=0)
        officer = make_officer()
        print(f"Loading {args.rows:,} audit records with COPY…", flush=True)
        load_seconds = load_rows(args.rows)
        print(f"Loaded in {load_seconds:.1f} s ({args.rows / load_seconds:,.0f} rows/s).")
        if args.verify_chain:
            from apps.audit.selectors import audit_chain_verify

            started = time.perf_counter()
            report = audit_chain_verify()
            print(
                f"Chain verified: {report.records_checked:,} records, intact={report.intact} "
                f"({time.perf_counter() - started:.1f} s)."
            )
        # Only the generated rows (all dated 2026-01-01 onwards, two seconds apart).
        last = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=2 * args.rows)
        filters = {"from": "2026-01-01T00:00:00+00:00", "to": last.isoformat()}
        storages = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
        results = []
        with override_settings(STORAGES=storages, MEDIA_ROOT=media.name):
            for fmt in [name.strip() for name in args.formats.split(",") if name.strip()]:
                print(f"Exporting {fmt}…", flush=True)
                result = run_format(officer, fmt, filters, with_tracemalloc=args.tracemalloc)
                results.append(result)
                traced = (
                    f"; tracemalloc peak {mb(result['tracemalloc_peak'])} (traced run {result['tracemalloc_seconds']:.1f} s)"
                    if "tracemalloc_peak" in result
                    else ""
                )
                print(
                    f"  {fmt}: {result['rows']:,} rows in {result['seconds']:.1f} s = {result['rows_per_second']:,.0f} rows/s; "
                    f"file {mb(result['bytes'])}; RSS {mb(result['rss_baseline'])} -> peak {mb(result['rss_peak'])} "
                    f"(growth {mb(result['rss_growth'])}){traced}",
                    flush=True,
                )
        print()
        print(f"Process max RSS (ru_maxrss): {mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)}")
        failures = 0
        for result in results:
            target = TARGET_ROWS_PER_SECOND.get(result["format"])
            if target is None:
                print(f"info {result['format']} throughput {result['rows_per_second']:,.0f} rows/s (no target)")
            else:
                ok = result["rows_per_second"] >= target
                failures += not ok
                print(
                    f"{'PASS' if ok else 'FAIL'} {result['format']} throughput {result['rows_per_second']:,.0f} rows/s "
                    f"(target >= {target:,})"
                )
            ok = result["rss_growth"] < TARGET_RSS_GROWTH_BYTES
            failures += not ok
            print(
                f"{'PASS' if ok else 'FAIL'} {result['format']} peak RSS growth {mb(result['rss_growth'])} "
                f"(target < {mb(TARGET_RSS_GROWTH_BYTES)})"
            )
        return 1 if failures else 0
    finally:
        from django.db import connections

        connections.close_all()
        media.cleanup()
        if args.keep_db:
            print(f"Kept database {DB_NAME}.")
        else:
            drop_database(DB_NAME)


if __name__ == "__main__":
    sys.exit(main())
