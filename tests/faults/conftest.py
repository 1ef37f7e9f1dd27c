"""Fault survival (issue #10): real processes on PostgreSQL and Redis, killed on purpose.

Every test here starts real OS processes (Celery workers, Daphne) on the
test database, so it is transactional: those processes only see committed
rows. They need PostgreSQL (row locks, ``pg_terminate_backend``) and Redis
(broker, channel layer); a local run on SQLite skips them, and under CI=true
tests/conftest.py stops the session before that could happen.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Model
from psycopg import sql

from apps.audit.selectors import audit_chain_verify
from tests.conftest import CI
from tests.queueing.conftest import make_queued_customer, make_skilled_staff  # noqa: F401 - fixtures reused

ON_POSTGRESQL = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
ROOT = Path(__file__).resolve().parents[2]


def require_postgresql_and_redis() -> None:
    """Skip locally without PostgreSQL and Redis; under CI=true, fail instead."""
    missing = [
        name for name, present in (("PostgreSQL", ON_POSTGRESQL), ("Redis", bool(settings.REDIS_URL))) if not present
    ]
    if missing:
        reason = f"needs {' and '.join(missing)} (DATABASE_URL / REDIS_URL): real processes share them"
        if CI:
            pytest.fail(f"CI=true but this test {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def _real_services(request: pytest.FixtureRequest) -> None:
    require_postgresql_and_redis()


def child_database_url() -> str:
    """The TEST database Django created, for the child processes."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"])
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], Any], *, timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}", pytrace=False)
        time.sleep(every)


class Processes:
    """Child processes of one test, each in a session of its own so that a kill takes its children too."""

    def __init__(self, logs: Path, media_root: Path) -> None:
        self.logs = logs
        self.media_root = media_root
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def env(self, **extra: str) -> dict[str, str]:
        return os.environ | {
            "DJANGO_SETTINGS_MODULE": "tests.faults.worker_settings",
            "DATABASE_URL": child_database_url(),
            "REMOTEBANK_MEDIA_ROOT": str(self.media_root),
            "PYTHONUNBUFFERED": "1",
            **extra,
        }

    def start(self, name: str, arguments: list[str], **extra_env: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, *arguments],
            cwd=ROOT,
            env=self.env(**extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.started.append((name, process))
        return process

    def log(self, name: str, tail: int = 4000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else "(no log)"

    @staticmethod
    def kill(process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the process and everything it started: no cleanup, no goodbye (a lost machine)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for _name, process in self.started:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(timeout=10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    self.kill(process)


def start_daphne(processes: Processes, name: str, *, startup_seconds: float = 60, **extra_env: str) -> int:
    """A Daphne on a free port, as scripts/run.sh starts it (with its connection pool); its port once it listens."""
    port = free_port()
    processes.start(
        name,
        ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "remotebank.asgi:application"],
        **({"REMOTEBANK_DB_POOL_SIZE": "20"} | extra_env),
    )

    def listening() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
        return False

    wait_until(listening, timeout=startup_seconds, what=f"Daphne on port {port}: {processes.log(name)}", every=0.2)
    return port


@pytest.fixture
def processes(tmp_path: Path, settings: Any) -> Iterator[Processes]:
    """Start real processes on the test database; files go to a folder both sides share."""
    media_root = tmp_path / "media"
    media_root.mkdir()
    settings.MEDIA_ROOT = str(media_root)
    settings.STORAGES = settings.STORAGES | {
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(media_root)},
        }
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    started = Processes(logs, media_root)
    try:
        yield started
    finally:
        started.stop_all()


def assert_audit_chain_verifies() -> None:
    report = audit_chain_verify()
    assert report.intact, report


class HeldLock:
    """A database lock held from a connection of its own (a row's, or an advisory lock).

    A process whose next statement needs the lock stops there, mid-way through
    its work, until the lock is released: a deterministic place to kill it or
    its connection. ``blocked()`` lists the database backends waiting on it.
    """

    def __init__(self, statement: sql.Composable, parameters: list[Any]) -> None:
        self.connection = psycopg.connect(child_database_url())
        self.connection.execute(statement, parameters)  # opens the transaction that holds the lock
        self.backend_pid = self.connection.info.backend_pid

    @classmethod
    def row(cls, model: type[Model], pk: int) -> HeldLock:
        table = sql.Identifier(model._meta.db_table)
        return cls(sql.SQL("SELECT 1 FROM {} WHERE id = %s FOR UPDATE").format(table), [pk])

    @classmethod
    def advisory(cls, key: int) -> HeldLock:
        return cls(sql.SQL("SELECT pg_advisory_xact_lock(%s)"), [key])

    def blocked(self) -> list[int]:
        with psycopg.connect(child_database_url(), autocommit=True) as probe:
            rows = probe.execute(
                "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", [self.backend_pid]
            ).fetchall()
        return [int(row[0]) for row in rows]

    def release(self) -> None:
        if not self.connection.closed:
            self.connection.rollback()
            self.connection.close()
