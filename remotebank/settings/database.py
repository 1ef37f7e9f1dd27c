"""Database: SQLite by default (embedded), PostgreSQL when DATABASE_URL says so."""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from remotebank.settings.environment import env_int, env_optional, env_path

_VAR_DIR = env_path("REMOTEBANK_VAR_DIR", Path(__file__).resolve().parent.parent.parent / "var")

DATABASE_URL = env_optional("DATABASE_URL") or f"sqlite:///{_VAR_DIR / 'remotebank.sqlite3'}"

DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        # 0: a connection per request. Under ASGI each request runs its
        # sync code in a thread of its own, and a persistent connection per
        # thread exhausted PostgreSQL's 100 connections in 40 s in the day
        # bench (bench/README.md). Pool in front of PostgreSQL (PgBouncer)
        # when the connect cost matters; see docs/operations.md.
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
