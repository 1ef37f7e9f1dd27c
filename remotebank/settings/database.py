"""Database: SQLite by default (embedded), PostgreSQL when DATABASE_URL says so.

Least privilege on PostgreSQL (docs/operations.md, "Database roles"): the
application connects as DATABASE_URL's role, which owns nothing; migrations
run as DATABASE_OWNER_URL's role (``manage.py migrate`` switches to it by
itself) and grant the application role its rights: no UPDATE, DELETE or
TRUNCATE of the audit trail, and, not owning the tables, no way to drop or
disable their triggers.
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url

from remotebank.settings.environment import env_int, env_optional, env_path

_VAR_DIR = env_path("REMOTEBANK_VAR_DIR", Path(__file__).resolve().parent.parent.parent / "var")

DATABASE_URL = env_optional("DATABASE_URL") or f"sqlite:///{_VAR_DIR / 'remotebank.sqlite3'}"
# The owner of the schema, for migrations only. Unset: DATABASE_URL's role
# does everything (embedded mode, or a development database).
DATABASE_OWNER_URL = env_optional("DATABASE_OWNER_URL")
# The role migrations grant the application's rights to: by default the user
# of DATABASE_URL when an owner URL is set; unset and no owner: no grants.
DATABASE_APP_ROLE = env_optional("REMOTEBANK_DATABASE_APP_ROLE") or (
    urlsplit(DATABASE_URL).username if DATABASE_OWNER_URL and DATABASE_URL.startswith("postgres") else None
)
# A role every connection switches to (SET ROLE) right after it logs in as
# DATABASE_URL's user: how the test suite and CI log in as the owner that
# creates the test database, yet run every query with the application's
# rights. Migrations never switch.
DATABASE_SET_ROLE = env_optional("REMOTEBANK_DATABASE_SET_ROLE")
_MIGRATING = sys.argv[1:2] == ["migrate"]

DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_OWNER_URL if (_MIGRATING and DATABASE_OWNER_URL) else DATABASE_URL,
        # 0: a connection per request. Under ASGI each request runs its
        # sync code in a thread of its own, and a persistent connection per
        # thread exhausted PostgreSQL's 100 connections in 40 s in the day
        # bench (bench/README.md). Daphne uses the pool below instead.
        conn_max_age=env_int("REMOTEBANK_DB_CONN_MAX_AGE", 0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets Daphne's threads read while a request writes; the busy timeout
    # makes a writer wait instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
else:
    # Options from DATABASE_URL's query string (application_name=…, sslmode=…) are kept.
    _options: dict[str, object] = dict(DATABASES["default"].get("OPTIONS", {}))
    if DATABASE_SET_ROLE and not _MIGRATING:
        _options["options"] = f"-c role={DATABASE_SET_ROLE}"
    # A pool of at most this many connections per process (psycopg_pool, Django's
    # "pool" option); 0: none. scripts/run.sh sets it for Daphne only: a new
    # PostgreSQL connection costs about 5 CPU-ms (server fork and login, measured
    # 2026-12-03), paid by every request and every WebSocket consumer's database
    # call under CONN_MAX_AGE 0, while a pooled connection is handed back when
    # the request ends, so no thread keeps one. Not for Celery's prefork pools or
    # anything that forks after its first query: a pool must not cross a fork.
    _pool_size = env_int("REMOTEBANK_DB_POOL_SIZE", 0)
    if _pool_size > 0 and not _MIGRATING:
        _options["pool"] = {
            "min_size": 1,
            "max_size": _pool_size,
            # A request that finds every connection busy waits this long, then fails
            # (PoolTimeout, a database error: answered as a server error and logged).
            "timeout": env_int("REMOTEBANK_DB_POOL_TIMEOUT_SECONDS", 10),
            "max_idle": 300,
        }
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django's pool requires it
    if _options:
        DATABASES["default"]["OPTIONS"] = _options
