"""The audit sequencer (issue #18 item 3): queued records chained in commit order, crash-safe, never forked.

Real PostgreSQL and real processes: the records are committed by other
connections and the sequencer runs as ``manage.py run_audit_sequencer`` in
child processes that are killed with SIGKILL. Transactional tests: the
sequencer only sees committed rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.audit.actions import AuditAction
from apps.audit.models import AuditRecord, PendingAuditRecord
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import (
    Actor,
    AuditEntry,
    audit_pending_integrate,
    audit_pending_sweep,
    audit_record,
    audit_record_many,
)
from tests.conftest import CI

ON_POSTGRESQL = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
ROOT = Path(__file__).resolve().parents[2]
SYSTEM = Actor.system("tests")

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _sequencer_mode(settings: Any) -> None:
    if not ON_POSTGRESQL:
        if CI:
            pytest.fail("CI=true but the audit sequencer needs PostgreSQL (DATABASE_URL)", pytrace=False)
        pytest.skip("the audit sequencer needs PostgreSQL (DATABASE_URL)")
    settings.AUDIT_CHAIN_MODE = "sequencer"


@pytest.fixture(autouse=True)
def base() -> int:
    """The chain's length before the test (migrations may have audited something)."""
    audit_pending_integrate()
    return AuditRecord.objects.count()


def _database_url() -> str:
    db = connection.settings_dict
    credentials = quote(db["USER"] or "")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"])
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _connect() -> psycopg.Connection[Any]:
    options = connection.settings_dict.get("OPTIONS", {}).get("options")
    return psycopg.connect(_database_url(), **({"options": options} if options else {}))


def _queue(conn: psycopg.Connection[Any], label: str) -> int:
    """INSERT one pending record on ``conn`` (in its open transaction), as audit_record does."""
    row = conn.execute(
        "INSERT INTO audit_pendingauditrecord (created_at, actor_kind, actor_id, actor_label, action, "
        "target_type, target_id, target_label, data) VALUES (%s, 'system', '', %s, %s, '', '', '', '{}') "
        "RETURNING id",
        [timezone.now(), label, AuditAction.BRANCH_CREATED.value],
    ).fetchone()
    assert row is not None
    return int(row[0])


def _chained_labels(base: int) -> list[str]:
    return list(
        AuditRecord.objects.filter(sequence__gt=base).order_by("sequence").values_list("actor_label", flat=True)
    )


def _wait_until(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}", pytrace=False)
        time.sleep(0.05)
    return value


@pytest.fixture
def sequencers(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, *arguments: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "manage.py", "run_audit_sequencer", "--interval-ms", "20", *arguments],
            cwd=ROOT,
            env=os.environ
            | {
                "DATABASE_URL": _database_url(),
                "DJANGO_SETTINGS_MODULE": "remotebank.settings.test",
                "REMOTEBANK_AUDIT_CHAIN_MODE": "sequencer",
                "PYTHONUNBUFFERED": "1",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _log(tmp_path: Path, name: str) -> str:
    return (tmp_path / f"{name}.log").read_text(errors="replace")


def test_a_service_write_only_queues_and_waits_for_no_chain_lock(base: int) -> None:
    with transaction.atomic():
        pending = audit_record(actor=SYSTEM, action=AuditAction.BRANCH_CREATED, data={"n": 1})
    assert isinstance(pending, PendingAuditRecord)
    assert AuditRecord.objects.count() == base
    assert audit_pending_integrate() == 1
    assert not PendingAuditRecord.objects.exists()
    (record,) = AuditRecord.objects.filter(sequence__gt=base)
    assert (record.sequence, record.pending_id, record.data) == (base + 1, pending.pk, {"n": 1})
    assert audit_chain_verify().intact


def test_the_queued_row_holds_exactly_what_the_service_was_given(base: int) -> None:
    """audit_record's plain INSERT stores the same columns as the model would, and the chain hashes them."""
    target = PendingAuditRecord.objects.create(
        created_at=timezone.now(), actor_kind="system", action=AuditAction.BRANCH_CREATED.value
    )
    data = {"名称": "黎暐霈", "list": [1, 2.5, None, True], "nested": {"a": "b"}, "quote": 'it\'s "x"'}
    with transaction.atomic():
        pending = audit_record(
            actor=Actor.system("写入者"), action=AuditAction.BRANCH_UPDATED, target=target, data=data
        )
    stored = PendingAuditRecord.objects.get(pk=pending.pk)
    columns = ("created_at", "actor_kind", "actor_id", "actor_label", "action", "target_type", "target_id")
    assert [getattr(stored, column) for column in columns] == [getattr(pending, column) for column in columns]
    assert (stored.actor_label, stored.action, stored.data) == ("写入者", AuditAction.BRANCH_UPDATED.value, data)
    assert (stored.target_type, stored.target_id) == ("audit.pendingauditrecord", str(target.pk))
    assert stored.target_label == str(target)
    assert not pending._state.adding
    assert audit_pending_integrate() == 2
    assert AuditRecord.objects.get(pending_id=pending.pk).data == data
    assert audit_chain_verify().intact


def test_a_batch_is_queued_by_one_insert_in_the_given_order_and_chained_in_that_order(base: int) -> None:
    """audit_record_many (the batched dispatcher's audit): one row each, ids in the order given, each its own data."""
    actions = [AuditAction.BRANCH_CREATED, AuditAction.BRANCH_UPDATED, AuditAction.BRANCH_CREATED]
    entries = [
        AuditEntry(actor=Actor.system(f"写入者{n}"), action=action, data={"n": n, "名": "頔" * (n + 1)})
        for n, action in enumerate(actions)
    ]
    with transaction.atomic():
        pending = audit_record_many(entries=entries)
    assert [record.pk for record in pending] == sorted(record.pk for record in pending)
    stored = list(PendingAuditRecord.objects.filter(pk__in=[record.pk for record in pending]).order_by("pk"))
    assert [(row.actor_label, row.action, row.data) for row in stored] == [
        (f"写入者{n}", action.value, {"n": n, "名": "頔" * (n + 1)}) for n, action in enumerate(actions)
    ]
    assert audit_pending_integrate() == 3
    chained = AuditRecord.objects.filter(sequence__gt=base).order_by("sequence")
    assert [record.data["n"] for record in chained] == [0, 1, 2]
    assert audit_chain_verify().intact


def test_rows_committed_out_of_order_are_chained_in_commit_order_and_none_is_skipped(base: int) -> None:
    late, early = _connect(), _connect()
    try:
        late_id = _queue(late, "late")  # lower id, transaction still open
        early_id = _queue(early, "early")
        early.commit()
        assert late_id < early_id
        assert audit_pending_integrate() == 1  # only what is committed
        late.commit()
        assert audit_pending_integrate() == 1  # the late one was not skipped
    finally:
        late.close()
        early.close()
    assert _chained_labels(base) == ["early", "late"]
    chained = AuditRecord.objects.filter(sequence__gt=base).order_by("sequence")
    assert list(chained.values_list("pending_id", flat=True)) == [early_id, late_id]
    report = audit_chain_verify()
    assert report.intact and report.records_checked == base + 2


def test_a_pending_record_cannot_be_changed_or_removed_before_it_is_chained(base: int) -> None:
    conn = _connect()
    try:
        pending_id = _queue(conn, "queued")
        conn.commit()
        for statement in (
            "DELETE FROM audit_pendingauditrecord WHERE id = %s",
            "UPDATE audit_pendingauditrecord SET actor_label = 'forged' WHERE id = %s",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement, [pending_id])
            conn.rollback()
    finally:
        conn.close()
    assert audit_pending_integrate() == 1
    assert _chained_labels(base) == ["queued"]


def test_the_sequencer_killed_mid_batch_leaves_a_consistent_chain_and_the_next_run_continues(
    sequencers: Callable[..., subprocess.Popen[bytes]], tmp_path: Path, base: int, settings: Any
) -> None:
    settings.AUDIT_CHAIN_BOUND_SECONDS = 3600  # the queue is meant to wait here
    with transaction.atomic():
        audit_record(actor=SYSTEM, action=AuditAction.BRANCH_CREATED, data={"n": 0})
    assert audit_pending_integrate() == 1
    base += 1
    with _connect() as writer:
        for index in range(50):
            _queue(writer, f"r{index}")
        writer.commit()
    probe = psycopg.connect(_database_url(), autocommit=True)  # pg_stat_activity is per-transaction otherwise
    # Hold the last pending row: the batch inserts its 50 chained records,
    # then its DELETE of the queue stops on this row, mid-transaction.
    holder = psycopg.connect(_database_url())  # the test's tool, as the owner (FOR UPDATE needs UPDATE rights)
    try:
        last = holder.execute("SELECT max(id) FROM audit_pendingauditrecord").fetchone()
        assert last is not None
        holder.execute("SELECT 1 FROM audit_pendingauditrecord WHERE id = %s FOR UPDATE", [last[0]])
        holder_pid = holder.info.backend_pid
        victim = sequencers("victim", "--checkpoint-seconds", "0")

        def blocked_backends() -> list[tuple[int, str]]:
            return [
                (int(pid), str(query))
                for pid, query in probe.execute(
                    "SELECT pid, query FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", [holder_pid]
                ).fetchall()
            ]

        ((backend, query),) = _wait_until(
            blocked_backends, timeout=30, what=f"the batch to stop: {_log(tmp_path, 'victim')}"
        )
        assert "DELETE" in query  # the chained records are inserted, not committed
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        holder.rollback()
        holder.close()
    # Nothing of the killed batch is visible: the chain is as before, the queue whole.
    try:
        _wait_until(
            lambda: not probe.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [backend]).fetchone(),
            timeout=30,
            what="the killed sequencer's backend to end",
        )
    finally:
        probe.close()
    assert AuditRecord.objects.count() == base
    assert PendingAuditRecord.objects.count() == 50
    assert audit_chain_verify().intact
    successor = sequencers("successor", "--once", "--checkpoint-seconds", "0")
    assert successor.wait(timeout=60) == 0, _log(tmp_path, "successor")
    assert _chained_labels(base) == [f"r{index}" for index in range(50)]
    assert not PendingAuditRecord.objects.exists()
    report = audit_chain_verify()
    assert report.intact and report.records_checked == base + 50


def test_two_sequencers_at_once_do_not_fork_the_chain(
    sequencers: Callable[..., subprocess.Popen[bytes]], tmp_path: Path, base: int
) -> None:
    first = sequencers("first", "--checkpoint-seconds", "0")
    second = sequencers("second", "--checkpoint-seconds", "0")
    writers, per_writer = 4, 60
    # Both running before the writers start: on a loaded machine their start-up
    # once outlasted the writes, and the integrator below chained everything alone.
    _wait_until(
        lambda: (
            all("Audit sequencer started." in _log(tmp_path, name) for name in ("first", "second"))
            and any("Audit sequencer active." in _log(tmp_path, name) for name in ("first", "second"))
        ),
        timeout=60,
        what="both sequencers to start and one to be active",
    )

    def write(number: int) -> None:
        try:
            for index in range(per_writer):
                with transaction.atomic():
                    audit_record(actor=Actor.system(f"w{number}"), action=AuditAction.BRANCH_CREATED, data={"i": index})
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(number,)) for number in range(writers)]
    for thread in threads:
        thread.start()
    # Meanwhile a third integrator, with no sequencer lock at all, competes
    # batch by batch: only the chain lock keeps them apart.
    while any(thread.is_alive() for thread in threads):
        audit_pending_integrate(limit=7)
    for thread in threads:
        thread.join()
    total = base + writers * per_writer
    _wait_until(lambda: AuditRecord.objects.count() == total, timeout=30, what="every record to be chained")
    assert not PendingAuditRecord.objects.exists()
    sequences = list(AuditRecord.objects.order_by("sequence").values_list("sequence", flat=True))
    assert sequences == list(range(1, total + 1))
    report = audit_chain_verify()
    assert report.intact and report.records_checked == total
    # Each writer's records in its own commit order.
    for number in range(writers):
        mine = AuditRecord.objects.filter(actor_label=f"w{number}").order_by("sequence")
        assert [record.data["i"] for record in mine] == list(range(per_writer))
    active = [name for name in ("first", "second") if "Audit sequencer active." in _log(tmp_path, name)]
    assert len(active) == 1, (_log(tmp_path, "first"), _log(tmp_path, "second"))
    assert first.poll() is None and second.poll() is None
    # The standby takes over when the active one dies.
    standby_name = "second" if active == ["first"] else "first"
    os.killpg((first if active == ["first"] else second).pid, signal.SIGKILL)
    with transaction.atomic():
        audit_record(actor=SYSTEM, action=AuditAction.BRANCH_CREATED, data={"after": "failover"})
    _wait_until(lambda: AuditRecord.objects.count() == total + 1, timeout=30, what="the standby to take over")
    assert "Audit sequencer active." in _log(tmp_path, standby_name)


def test_the_housekeeping_sweep_chains_the_queue_when_no_sequencer_runs(
    sequencers: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    with transaction.atomic():
        for index in range(3):
            audit_record(actor=SYSTEM, action=AuditAction.BRANCH_CREATED, data={"i": index})
    assert audit_pending_sweep() == 3
    assert audit_chain_verify().intact
    # With a sequencer active the sweep steps aside.
    active = sequencers("active", "--checkpoint-seconds", "0", "--interval-ms", "60000")
    _wait_until(lambda: "Audit sequencer active." in _log(tmp_path, "active"), timeout=30, what="the sequencer")
    with transaction.atomic():
        audit_record(actor=SYSTEM, action=AuditAction.BRANCH_CREATED, data={"i": 3})
    assert audit_pending_sweep() == 0
    assert active.poll() is None


def test_audit_verify_reports_records_left_unchained_past_the_bound(settings: Any) -> None:
    with transaction.atomic():
        audit_record(actor=SYSTEM, action=AuditAction.BRANCH_CREATED)
    settings.AUDIT_CHAIN_BOUND_SECONDS = 1
    time.sleep(1.2)
    report = audit_chain_verify()
    assert report.first_break is not None
    assert "not chained within 1 s" in report.first_break.reason
    audit_pending_integrate()
    assert audit_chain_verify().intact
