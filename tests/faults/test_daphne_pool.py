"""Daphne with its PostgreSQL connection pool (REMOTEBANK_DB_POOL_SIZE), as scripts/run.sh starts it.

Without the pool every request opens and closes a PostgreSQL connection
(CONN_MAX_AGE 0 under Daphne, remotebank/settings/database.py). With it,
requests borrow the pool's connections and hand them back: the connections
stay open between requests, are the same ones afterwards, and never number
more than the pool's size, even when more requests run at once than it has
connections (they wait for one instead of failing).
"""

from __future__ import annotations

import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from tests.faults.conftest import Processes, child_database_url, start_daphne

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]

POOL_SIZE = 2
APPLICATION = "remotebank-pool-test"


def _daphne_backends() -> set[int]:
    """The PostgreSQL backends the Daphne under test holds (by its application name)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [APPLICATION])
        return {pid for (pid,) in cursor.fetchall()}


def _health(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=30) as response:
        return int(response.status)


def test_daphne_reuses_at_most_its_pool_of_connections(processes: Processes) -> None:
    port = start_daphne(
        processes,
        "daphne",
        DATABASE_URL=f"{child_database_url()}?application_name={APPLICATION}",
        REMOTEBANK_DB_POOL_SIZE=str(POOL_SIZE),
    )

    assert _health(port) == 200
    # The request is over, its connection handed back to the pool, not closed.
    first = _daphne_backends()
    assert 1 <= len(first) <= POOL_SIZE, processes.log("daphne")

    # Eight at a time, four times the pool's size: they wait for a connection, none fails.
    with ThreadPoolExecutor(max_workers=4 * POOL_SIZE) as clients:
        statuses = list(clients.map(lambda _: _health(port), range(40)))
    assert statuses == [200] * 40, processes.log("daphne")

    after = _daphne_backends()
    assert 1 <= len(after) <= POOL_SIZE, processes.log("daphne")
    # The connection of the first request served the later ones too: no new login per request.
    assert first <= after, (first, after)
